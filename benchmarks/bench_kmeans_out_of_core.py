"""KMeans over a Zarr store larger than the workers' memory limits: completes, no spill, no restart.

    python -m benchmarks.bench_kmeans_out_of_core                  # 4 GB store, 2 x 1 GiB workers
    python -m benchmarks.bench_kmeans_out_of_core --n-samples 2000000 --memory-limit 512MiB

Writes the store under --workdir (deleted at the end), fits KMeans(k-means||) on a LocalCluster of
single-thread worker processes with the given memory limit, and reports the fit time, the peak
RSS of every process (sampled), bytes spilled to disk, and worker restarts.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import psutil
from distributed import Client

import bigclust
from benchmarks._common import PeakRSSPerProcess, memory_limited_cluster, spilled_bytes
from bigclust.datasets import make_blobs, write_zarr


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=32_000_000)
    parser.add_argument("--n-features", type=int, default=32)
    parser.add_argument("--n-clusters", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--workdir", default="/tmp/bigclust-bench")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "out_of_core.zarr"
    try:
        X, _ = make_blobs(args.n_samples, args.n_features, centers=args.n_clusters, random_state=0)
        start = time.perf_counter()
        write_zarr(X, path, overwrite=True)
        print(
            f"store: {X.shape} {X.dtype}, {X.nbytes / 1e9:.2f} GB, written in "
            f"{time.perf_counter() - start:.1f} s"
        )
        with (
            memory_limited_cluster(args.workers, args.memory_limit) as cluster,
            Client(cluster) as client,
            PeakRSSPerProcess() as peaks,
        ):
            worker_pids = set(client.run(lambda: psutil.Process().pid).values())
            start = time.perf_counter()
            km = bigclust.KMeans(
                args.n_clusters, random_state=0, max_iter=args.max_iter, tol=0
            ).fit(str(path))
            seconds = time.perf_counter() - start
            restarts = len(worker_pids - set(client.run(lambda: psutil.Process().pid).values()))
            spilled = spilled_bytes(client)
        passes = km.n_iter_ + 1 + 6 + 1  # Lloyd + final + k-means|| rounds/weighting + labels
        print(
            f"fit: {seconds:.1f} s, {km.n_iter_} Lloyd iterations, inertia {km.inertia_:.5g}"
            f" (~{passes} passes, {passes * X.nbytes / seconds / 1e9:.2f} GB/s)"
        )
        print(
            f"memory limit per worker {args.memory_limit} x {args.workers}; "
            f"worker restarts {restarts}; bytes spilled {spilled}"
        )
        for label, peak in sorted(peaks.peaks.items()):
            pid = int(label.split()[0])
            role = (
                "worker"
                if pid in worker_pids
                else ("client" if pid == psutil.Process().pid else "other")
            )
            print(f"  peak RSS {role:<7} {label}: {peak / 1e6:.0f} MB")
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
