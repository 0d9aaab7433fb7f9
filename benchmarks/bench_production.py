"""Larger than the cluster: KMeans and GaussianMixture over stores bigger than worker memory.

Two stores (default ~6 GB, held by the page cache, and ~30 GB, larger than this machine's
RAM when it has 24 GiB, so every pass reads the disk) on a LocalCluster of two single-thread
worker processes with 1 GiB memory limits. On each store: KMeans (10 Lloyd iterations from
a fixed init, ``tol=0``) and GaussianMixture (diag, 5 EM iterations from fixed parameters).
Reported for each fit: worker restarts, bytes spilled, peak RSS of every process, and the
median per-iteration time divided by the time of one plain read of the store on the same
cluster (``da.from_zarr(path).sum(axis=0)``; goal <= 1.2x).

    python -m benchmarks.bench_production                       # 6 GB and 30 GB stores
    python -m benchmarks.bench_production --sizes-gb 1 --reads 3  # a quick look

Each store is written chunk by chunk by the workers (``write_zarr`` of a lazy
``make_blobs``) under ``--workdir`` after checking the free disk space, and deleted at the
end, whatever happens. Per-iteration times come from the estimators' own per-pass progress
records (logger ``bigclust.progress``), not from whole-fit times: initialization and final
passes are left out of them and reported apart.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import time
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import psutil
from distributed import Client
from sklearn.exceptions import ConvergenceWarning

import bigclust
from benchmarks._common import (
    PeakRSSPerProcess,
    machine_info,
    memory_limited_cluster,
    spilled_bytes,
)
from bigclust.datasets import make_blobs, write_zarr

N_FEATURES = 32
N_CLUSTERS = 16
DTYPE = np.float32
GOAL = 1.2
#: Overlapping blobs: Lloyd keeps moving the centers for the 10 iterations (tol=0 stops at
#: strict convergence, which well separated blobs reach in 2 or 3).
CLUSTER_STD = 8.0


class PassRecords(logging.Handler):
    """Collects the per-pass records of ``bigclust.progress`` (their ``seconds``)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def seconds(self, estimator: str) -> list[float]:
        # Per-pass records carry ``figures``; the one a loop logs when it ends (its total) not.
        return [
            r.seconds
            for r in self.records
            if getattr(r, "estimator", None) == estimator and hasattr(r, "figures")
        ]


def worker_pids(client) -> set[int]:
    return set(client.run(lambda: psutil.Process().pid).values())


READERS = {
    # zarr's own reader, as a Dask user reads a store
    "da.from_zarr": lambda path: da.from_zarr(str(path)),
    # bigclust's reader (chunk files read straight, checksums verified), the fits' own
    "bigclust.as_dask_array": lambda path: bigclust.as_dask_array(str(path)),
}


def plain_read(path: Path, client, repeats: int, reader: str) -> list[float]:
    """Seconds of one plain read of every chunk of the store on the cluster (a column sum:
    the least arithmetic that still touches every value)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        client.compute(READERS[reader](path).sum(axis=0)).result()
        times.append(time.perf_counter() - start)
    return times


def fixed_start(centers: np.ndarray, seed: int = 1) -> np.ndarray:
    """The blobs' centers moved a little: a fixed init that still needs its iterations."""
    rng = np.random.default_rng(seed)
    return centers + rng.normal(scale=0.5, size=centers.shape)


def estimators(centers: np.ndarray, kmeans_iter: int, gmm_iter: int):
    start = fixed_start(centers)
    k = len(centers)
    yield (
        "KMeans",
        "KMeans Lloyd",
        bigclust.KMeans(k, init=start, n_init=1, max_iter=kmeans_iter, tol=0),
        kmeans_iter,
    )
    yield (
        "GaussianMixture",
        "GaussianMixture iterations",
        bigclust.GaussianMixture(
            k,
            covariance_type="diag",
            weights_init=np.full(k, 1 / k),
            means_init=start,
            precisions_init=np.ones((k, centers.shape[1])),
            max_iter=gmm_iter,
            tol=0,
        ),
        gmm_iter,
    )


def role_of(label: str, workers: set[int]) -> str:
    pid = int(label.split()[0])
    if pid in workers:
        return "worker"
    return "client" if pid == psutil.Process().pid else "other"


def run_size(size_gb: float, args, records: PassRecords) -> list[str]:
    n_samples = int(size_gb * 1e9 / (N_FEATURES * np.dtype(DTYPE).itemsize))
    nbytes = n_samples * N_FEATURES * np.dtype(DTYPE).itemsize
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(workdir).free
    if free < nbytes * 1.05 + 2e9:
        raise SystemExit(
            f"{size_gb} GB store: {free / 1e9:.1f} GB free under {workdir}, need "
            f"{(nbytes * 1.05 + 2e9) / 1e9:.1f} GB; pass a smaller --sizes-gb or another --workdir."
        )
    ram = psutil.virtual_memory().total
    path = workdir / f"production-{size_gb:g}GB.zarr"
    lines = []
    try:
        with (
            memory_limited_cluster(args.workers, args.memory_limit) as cluster,
            Client(cluster) as client,
        ):
            X, _, centers = make_blobs(
                n_samples,
                N_FEATURES,
                centers=N_CLUSTERS,
                cluster_std=CLUSTER_STD,
                random_state=0,
                dtype=DTYPE,
                return_centers=True,
            )
            start = time.perf_counter()
            write_zarr(X, path)
            written = time.perf_counter() - start
            head = (
                f"## {nbytes / 1e9:.1f} GB store ({n_samples:,} x {N_FEATURES} {np.dtype(DTYPE)},"
                f" {X.numblocks[0]} chunks), RAM {ram / 2**30:.1f} GiB "
                f"({'larger' if nbytes > ram else 'smaller'} than RAM), "
                f"{args.workers} workers x {args.memory_limit}; written in {written:.0f} s"
            )
            print(head, flush=True)
            lines.append(head)
            medians = {}
            for reader in READERS:
                reads = plain_read(path, client, args.reads, reader)
                medians[reader] = statistics.median(reads)
                line = (
                    f"plain read ({reader}): median {medians[reader]:.2f} s of {args.reads} "
                    f"({', '.join(f'{t:.2f}' for t in reads)}), "
                    f"{nbytes / medians[reader] / 1e9:.2f} GB/s"
                )
                print(line, flush=True)
                lines.append(line)
            # The ratio is taken against the faster reader: the floor a pass could reach.
            read = min(medians.values())
            for name, loop, est, iterations in estimators(centers, args.kmeans_iter, args.gmm_iter):
                pids = worker_pids(client)
                spilled = spilled_bytes(client)
                records.records.clear()
                with PeakRSSPerProcess() as peaks, warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    start = time.perf_counter()
                    est.fit(str(path))
                    seconds = time.perf_counter() - start
                per_iter = records.seconds(loop)
                restarts = len(pids - worker_pids(client))
                spilled = spilled_bytes(client) - spilled
                median = statistics.median(per_iter)
                rss = ", ".join(
                    f"{role_of(label, pids)} {label.split()[0]} {peak / 2**20:.0f} MiB"
                    for label, peak in sorted(peaks.peaks.items())
                )
                block = [
                    f"{name}: fit {seconds:.1f} s, {len(per_iter)} iterations"
                    f" (max_iter {iterations}),"
                    f" per iteration median {median:.2f} s"
                    f" [{', '.join(f'{t:.2f}' for t in per_iter)}]",
                    f"  per iteration / plain read = {median / read:.2f}x (goal <= {GOAL}x)"
                    f"; outside the iterations {seconds - sum(per_iter):.1f} s",
                    f"  worker restarts {restarts}; bytes spilled {spilled}",
                    f"  peak RSS: {rss}",
                ]
                for line in block:
                    print(line, flush=True)
                lines.extend(block)
            after = plain_read(path, client, 1, min(medians, key=medians.get))[0]
            line = f"plain read again after the fits: {after:.2f} s"
            print(line, flush=True)
            lines.append(line)
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[6, 30])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--kmeans-iter", type=int, default=10)
    parser.add_argument("--gmm-iter", type=int, default=5)
    parser.add_argument("--reads", type=int, default=3, help="plain reads per store (median)")
    parser.add_argument("--workdir", default="/tmp/bigclust-bench")
    args = parser.parse_args()

    print(f"# bench_production on {machine_info()}", flush=True)
    records = PassRecords()
    progress = logging.getLogger("bigclust.progress")
    progress.addHandler(records)
    progress.setLevel(logging.DEBUG)
    report = []
    for size in args.sizes_gb:
        report.extend(run_size(size, args, records))
    print("\n# summary\n" + "\n".join(report))


if __name__ == "__main__":
    main()
