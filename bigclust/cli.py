"""The ``bigclust`` command line: batch jobs on a local in-process cluster or a remote one.

Subcommands are registered in ``COMMANDS``; each has an ``add_arguments(parser)`` and a
``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import dask
import numpy as np

from bigclust.datasets import CODECS, make_blobs, write_zarr


@contextlib.contextmanager
def scheduler_from_args(args):
    """Connect to ``--scheduler`` (an address), start a local in-process cluster
    (``local``, the default), or use the threaded scheduler (``threads``)."""
    if args.scheduler == "threads":
        threads = getattr(args, "threads", None)
        if threads is not None and threads < 1:
            raise ValueError(f"--threads={threads} should be >= 1.")
        with dask.config.set(num_workers=threads) if threads else contextlib.nullcontext():
            yield None
        return
    from distributed import Client, LocalCluster

    if args.scheduler == "local":
        with LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True,
            dashboard_address=None, memory_limit=args.memory_limit,
        ) as cluster, Client(cluster) as client:
            yield client
    else:
        with Client(args.scheduler) as client:
            yield client


def _add_scheduler_arguments(parser):
    parser.add_argument(
        "--scheduler", default="local",
        help="'local' (an in-process LocalCluster, default), 'threads' (no cluster), or the "
        "address of a running scheduler, e.g. tcp://scheduler:8786",
    )
    parser.add_argument("--workers", type=int, default=2, help="workers of the local cluster")
    parser.add_argument(
        "--memory-limit", default="auto", help="memory limit per local worker, e.g. 2GiB"
    )


#: Threads that ``make-blobs`` uses by default: enough to keep a disk busy (each generates
#: about 0.2 GB/s), few enough that peak RSS stays under 600 MB on any machine (measured with
#: 64 MiB chunks, 10M x 32 float32: 2 threads 317 MB, 4 threads 467 MB, 8 threads 767 MB).
MAKE_BLOBS_THREADS = min(4, os.cpu_count() or 1)


class MakeBlobs:
    help = "write Gaussian blobs of any size to a Zarr store, chunk by chunk"

    @staticmethod
    def add_arguments(p):
        p.add_argument("out", help="path or fsspec URL of the new Zarr array")
        p.add_argument("--n-samples", type=int, default=1_000_000)
        p.add_argument("--n-features", type=int, default=32)
        p.add_argument("--centers", type=int, default=8, help="number of blobs")
        p.add_argument("--cluster-std", type=float, default=1.0)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
        p.add_argument("--codec", choices=CODECS, default="none")
        p.add_argument("--chunk-rows", type=int, default=None, help="rows per Zarr chunk")
        p.add_argument("--overwrite", action="store_true", help="replace an existing array")
        p.add_argument("--no-progress", action="store_true")
        p.add_argument(
            "--scheduler", default="threads",
            help="'threads' (default: bounded memory, no cluster), 'local', or an address",
        )
        p.add_argument(
            "--threads", type=int, default=MAKE_BLOBS_THREADS,
            help="threads of the 'threads' scheduler (default: %(default)s); each holds about "
            "two chunks, so peak memory is about 150 MB + threads x 2 x chunk bytes",
        )
        p.add_argument("--workers", type=int, default=2)
        p.add_argument("--memory-limit", default="auto")

    @staticmethod
    def run(args) -> int:
        X, _, centers = make_blobs(
            args.n_samples, args.n_features, centers=args.centers, cluster_std=args.cluster_std,
            random_state=args.seed, dtype=np.dtype(args.dtype), chunk_rows=args.chunk_rows,
            return_centers=True,
        )
        attributes = {
            "generator": "bigclust.datasets.make_blobs",
            "seed": args.seed, "centers": centers.tolist(), "cluster_std": args.cluster_std,
        }
        start = time.perf_counter()
        with scheduler_from_args(args):
            write_zarr(
                X, args.out, codec=args.codec, overwrite=args.overwrite,
                progress=not args.no_progress, attributes=attributes,
            )
        seconds = time.perf_counter() - start
        gb = X.nbytes / 1e9
        print(f"wrote {X.shape[0]} x {X.shape[1]} {X.dtype} ({gb:.2f} GB) to {args.out} "
              f"in {seconds:.1f} s ({gb / seconds:.2f} GB/s)")
        return 0


COMMANDS = {"make-blobs": MakeBlobs}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bigclust", description="Clustering for data larger than memory, on Dask."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except (ValueError, TypeError, FileExistsError) as err:
        print(f"bigclust {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
