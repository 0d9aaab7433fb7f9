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
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                memory_limit=args.memory_limit,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
    else:
        with Client(args.scheduler) as client:
            yield client


def _add_scheduler_arguments(parser):
    parser.add_argument(
        "--scheduler",
        default="local",
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
            "--scheduler",
            default="threads",
            help="'threads' (default: bounded memory, no cluster), 'local', or an address",
        )
        p.add_argument(
            "--threads",
            type=int,
            default=MAKE_BLOBS_THREADS,
            help="threads of the 'threads' scheduler (default: %(default)s); each holds about "
            "two chunks, so peak memory is about 150 MB + threads x 2 x chunk bytes",
        )
        p.add_argument("--workers", type=int, default=2)
        p.add_argument("--memory-limit", default="auto")

    @staticmethod
    def run(args) -> int:
        X, _, centers = make_blobs(
            args.n_samples,
            args.n_features,
            centers=args.centers,
            cluster_std=args.cluster_std,
            random_state=args.seed,
            dtype=np.dtype(args.dtype),
            chunk_rows=args.chunk_rows,
            return_centers=True,
        )
        attributes = {
            "generator": "bigclust.datasets.make_blobs",
            "seed": args.seed,
            "centers": centers.tolist(),
            "cluster_std": args.cluster_std,
        }
        start = time.perf_counter()
        with scheduler_from_args(args):
            write_zarr(
                X,
                args.out,
                codec=args.codec,
                overwrite=args.overwrite,
                progress=not args.no_progress,
                attributes=attributes,
            )
        seconds = time.perf_counter() - start
        gb = X.nbytes / 1e9
        print(
            f"wrote {X.shape[0]} x {X.shape[1]} {X.dtype} ({gb:.2f} GB) to {args.out} "
            f"in {seconds:.1f} s ({gb / seconds:.2f} GB/s)"
        )
        return 0


def _add_kmeans_arguments(p):
    from bigclust.cluster._init import INITS

    p.add_argument("--n-clusters", type=int, default=8)
    p.add_argument("--init", choices=INITS, default="k-means||")
    p.add_argument("--n-init", default="auto", help="'auto' or a number of runs")
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true")


def _kmeans_from_args(args):
    from bigclust import KMeans

    n_init = args.n_init if args.n_init == "auto" else int(args.n_init)
    return KMeans(
        args.n_clusters,
        init=args.init,
        n_init=n_init,
        max_iter=args.max_iter,
        tol=args.tol,
        random_state=args.seed,
        verbose=int(args.verbose),
    )


class Cluster:
    help = "fit KMeans to a Zarr array or .npy file and write the centers (and labels)"

    @staticmethod
    def add_arguments(p):
        p.add_argument("data", help="path or fsspec URL of a Zarr array, or a .npy file")
        _add_kmeans_arguments(p)
        p.add_argument("--centers-out", help="write the centers to this .npy file")
        p.add_argument("--labels-out", help="write the labels to this new Zarr array")
        p.add_argument(
            "--persist",
            action="store_true",
            help="keep the data in worker memory between passes (if it fits)",
        )
        _add_scheduler_arguments(p)

    @staticmethod
    def run(args) -> int:
        from bigclust import as_dask_array

        with scheduler_from_args(args) as client:
            X = as_dask_array(args.data)
            if args.persist and client is not None:
                X = client.persist(X)
            start = time.perf_counter()
            model = _kmeans_from_args(args).fit(X)
            seconds = time.perf_counter() - start
            print(
                f"KMeans(n_clusters={args.n_clusters}) on {X.shape[0]} x {X.shape[1]} "
                f"{X.dtype}: inertia {model.inertia_:.6g}, {model.n_iter_} iterations, "
                f"{seconds:.1f} s"
            )
            if args.centers_out:
                np.save(args.centers_out, model.cluster_centers_)
                print(f"centers written to {args.centers_out}")
            if args.labels_out:
                model.labels_.to_zarr(args.labels_out)
                print(f"labels written to {args.labels_out}")
        return 0


class Demo:
    help = "the main job on an embedded default: cluster generated blobs on a local cluster"

    @staticmethod
    def add_arguments(p):
        p.add_argument("--n-samples", type=int, default=1_000_000)
        p.add_argument("--n-features", type=int, default=16)
        p.add_argument("--centers", type=int, default=8, help="true number of blobs")
        _add_kmeans_arguments(p)
        _add_scheduler_arguments(p)

    @staticmethod
    def run(args) -> int:
        from sklearn.metrics import adjusted_rand_score

        X, y = make_blobs(
            args.n_samples, args.n_features, centers=args.centers, random_state=args.seed
        )
        with scheduler_from_args(args) as client:
            where = "threads" if client is None else f"{len(client.nthreads())} workers"
            print(
                f"generated {X.shape[0]} x {X.shape[1]} {X.dtype} blobs "
                f"({X.nbytes / 1e6:.0f} MB, {args.centers} true clusters) on {where}"
            )
            if client is not None:
                X = client.persist(X)
            start = time.perf_counter()
            model = _kmeans_from_args(args).fit(X)
            seconds = time.perf_counter() - start
            agreement = adjusted_rand_score(*dask.compute(y, model.labels_))
        print(
            f"KMeans(n_clusters={args.n_clusters}, init={args.init!r}): "
            f"{model.n_iter_} iterations in {seconds:.1f} s, inertia {model.inertia_:.6g}"
        )
        print(f"adjusted Rand index against the true blobs: {agreement:.4f}")
        return 0


COMMANDS = {"demo": Demo, "kmeans": Cluster, "make-blobs": MakeBlobs}


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
