"""MiniBatchKMeans: streaming throughput, partial_fit speed, quality, out-of-core memory.

    python -m benchmarks.bench_minibatch                  # (1) (2) (3), 2,000,000 x 32, k=64
    python -m benchmarks.bench_minibatch --out-of-core    # also (4): writes a 4.1 GB store
    python -m benchmarks.bench_minibatch --n-samples 200000 --repeat 1   # quick look

(1) One epoch of ``fit`` (given init, no early stop, no final labels) over a float32 Zarr
    store on local disk, against ``dask.array.from_zarr(path).sum()`` on the same scheduler:
    ratio of throughputs (goal >= 0.70), threaded scheduler and a LocalCluster of 2
    single-thread worker processes. Twice: with the store in the page cache (reads at memory
    speed), and read from the disk (the page cache dropped before every run; needs root).
(2) ``partial_fit`` on in-memory batches of 10,000 rows, bigclust and scikit-learn in one
    process from the same init: median seconds per batch (goal: <= 0.8x), each estimator
    taking the batches in a row (blocked) and the two taking turns (interleaved; see
    bench_partial_fit for why that favours scikit-learn).
(3) Inertia after one epoch of ``fit`` (k-means|| init) against full-batch ``KMeans``
    on the same data (goal: within 2%).
(4) ``fit`` over a >= 4 GB Zarr store on a LocalCluster whose worker memory limits sum to
    2 GB: peak RSS of every process (goal: each under 1 GB).

Stores are written under /tmp/bigclust-bench and deleted at the end (only the ones this script
wrote: other benchmarks share the folder). Medians of
``--repeat`` runs after one warm-up; the machine may be shared, so compare ratios measured
side by side, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
import warnings

import dask
import dask.array as da
import numpy as np
import zarr
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans

import bigclust
from benchmarks._common import PeakRSSPerProcess, measure
from benchmarks.bench_kmeans import machine
from bigclust.datasets import make_blobs, write_zarr

ROOT = "/tmp/bigclust-bench"
WRITTEN: list[str] = []  # stores to delete at the end


def median_time(fn, repeat):
    """Median of ``repeat`` runs after one warm-up."""
    return measure(fn, repeat=repeat).median


def epoch(path, k, batch_size, init):
    est = bigclust.MiniBatchKMeans(
        k,
        init=init,
        max_iter=1,
        batch_size=batch_size,
        max_no_improvement=None,
        compute_labels=False,
        random_state=0,
    )
    est.fit(path)
    assert est.n_iter_ == 1
    return est


def drop_page_cache() -> bool:
    """Evict every file from the page cache (Linux, root only), so the next read comes from
    the disk. Returns whether it could."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as control:
            control.write("3\n")
        return True
    except OSError:
        return False


def median_time_cold(fn, repeat):
    """Median of ``repeat`` runs, each starting with an empty page cache (None if not root)."""
    times = []
    for _ in range(repeat):
        if not drop_page_cache():
            return None
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_throughput(path, k, repeat, batch_sizes):
    store = zarr.open_array(path, mode="r")
    nbytes = store.nbytes
    init = np.asarray(store[:k], dtype=np.float64)
    print(f"\n(1) one epoch over {path} ({nbytes / 2**20:.0f} MiB, {store.shape}, k={k})")

    def run(label):
        def read():
            return da.from_zarr(path).sum().compute()

        for cache, timer in (("warm", median_time), ("cold", median_time_cold)):
            t_read = timer(read, repeat)
            if t_read is None:
                print(f"  [{label}, {cache}] skipped: dropping the page cache needs root")
                continue
            print(
                f"  [{label}, {cache} page cache] from_zarr(...).sum(): {t_read:.3f} s "
                f"({nbytes / t_read / 2**20:.0f} MiB/s)"
            )
            for bs in batch_sizes:
                t = timer(lambda bs=bs: epoch(path, k, bs, init), repeat)
                print(
                    f"  [{label}, {cache} page cache] fit 1 epoch, batch_size={bs}: {t:.3f} s "
                    f"({nbytes / t / 2**20:.0f} MiB/s), throughput ratio vs sum {t_read / t:.2f}"
                )

    with dask.config.set(scheduler="threads"):
        run("threads")
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        run("LocalCluster 2 procs")


def bench_partial_fit(X, k, repeat, rows=10_000):
    """Seconds per partial_fit call, median over every batch and run.

    Blocked: each estimator takes all the batches in a row (as in a user's loop), the two
    estimators alternating which goes first, the first call after a switch not counted.
    Interleaved: one batch each in turn. Interleaving penalises whoever runs right after
    scikit-learn: its OpenMP threads spin for a while after each call (libgomp's default
    wait policy) and take a core from the next caller. ``OMP_WAIT_POLICY=passive`` shows it.
    """
    print(f"\n(2) partial_fit on in-memory batches of {rows} rows, d={X.shape[1]}, k={k}")
    init = X[:k].copy()
    batches = [X[i : i + rows] for i in range(0, min(len(X), 60 * rows), rows)]

    def run(estimator, times):
        for b in batches[1:]:
            start = time.perf_counter()
            estimator.partial_fit(b)
            times.append(time.perf_counter() - start)
        del times[-len(batches) + 1]  # the first call after a switch

    for compute_labels in (True, False):
        kw = dict(random_state=0, compute_labels=compute_labels)
        ours = bigclust.MiniBatchKMeans(k, init=init, **kw).partial_fit(batches[0])
        theirs = SkMiniBatchKMeans(k, init=init, n_init=1, **kw).partial_fit(batches[0])
        t_ours, t_theirs = [], []
        for r in range(2 * repeat):
            pair = [(ours, t_ours), (theirs, t_theirs)]
            for estimator, times in pair if r % 2 == 0 else pair[::-1]:
                run(estimator, times)
        blocked = statistics.median(t_ours), statistics.median(t_theirs)
        t_ours, t_theirs = [], []
        for _ in range(repeat):
            for b in batches[1:]:
                for estimator, times in ((ours, t_ours), (theirs, t_theirs)):
                    start = time.perf_counter()
                    estimator.partial_fit(b)
                    times.append(time.perf_counter() - start)
        interleaved = statistics.median(t_ours), statistics.median(t_theirs)
        for label, (mo, mt) in (("blocked", blocked), ("interleaved", interleaved)):
            print(
                f"  [compute_labels={compute_labels}, {label}] bigclust {mo * 1e3:.2f} ms/batch; "
                f"scikit-learn {mt * 1e3:.2f} ms/batch; ratio {mo / mt:.2f} (goal <= 0.8)"
            )


def bench_quality(X, k):
    print(f"\n(3) quality on {X.shape} float32, k={k}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        full = bigclust.KMeans(k, random_state=0).fit(X)
        t_full = time.perf_counter() - start
        for seed in (0, 1):
            start = time.perf_counter()
            mini = bigclust.MiniBatchKMeans(k, random_state=seed, max_iter=1).fit(X)
            t_mini = time.perf_counter() - start
            print(
                f"  seed {seed}: KMeans inertia {full.inertia_:.6g} ({full.n_iter_} iter, "
                f"{t_full:.1f} s); MiniBatchKMeans 1 epoch {mini.inertia_:.6g} "
                f"({mini.n_steps_} steps, {t_mini:.1f} s); ratio "
                f"{mini.inertia_ / full.inertia_:.4f} (goal <= 1.02)"
            )


def bench_out_of_core(k):
    from distributed import Client, LocalCluster

    n, d = 32_000_000, 32  # 4.1 GB float32
    path = os.path.join(ROOT, "minibatch-big.zarr")
    WRITTEN.append(path)
    print(f"\n(4) out-of-core: {n} x {d} float32 ({n * d * 4 / 1e9:.1f} GB) on 2 workers x 1 GB")
    X, _ = make_blobs(n, d, centers=k, random_state=0)
    start = time.perf_counter()
    write_zarr(X, path, overwrite=True)
    print(f"  written in {time.perf_counter() - start:.0f} s")
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit="1GB",
            dashboard_address=None,
        ) as cluster,
        Client(cluster),
        PeakRSSPerProcess() as rss,
    ):
        start = time.perf_counter()
        est = bigclust.MiniBatchKMeans(k, random_state=0, max_iter=1).fit(path)
        took = time.perf_counter() - start
    print(
        f"  fit (k-means|| init on a sample, 1 epoch, labels/inertia pass): {took:.0f} s, "
        f"{est.n_steps_} steps, inertia {est.inertia_:.6g}"
    )
    for name, peak in sorted(rss.peaks.items(), key=lambda kv: -kv[1]):
        print(f"  peak RSS {peak / 2**20:7.0f} MiB  {name}")
    worst = max(rss.peaks.values())
    print(f"  largest peak {worst / 2**20:.0f} MiB (goal < 1024 MiB)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=2_000_000)
    parser.add_argument("--n-features", type=int, default=32)
    parser.add_argument("--n-clusters", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--out-of-core", action="store_true", help="run (4): writes 4.1 GB")
    parser.add_argument("--skip", nargs="*", default=[], choices=["1", "2", "3"])
    args = parser.parse_args()
    k = args.n_clusters
    print(machine())
    os.makedirs(ROOT, exist_ok=True)
    path = os.path.join(ROOT, "minibatch-blobs.zarr")
    WRITTEN.append(path)
    try:
        X, _ = make_blobs(args.n_samples, args.n_features, centers=k, random_state=0)
        if "1" not in args.skip:
            write_zarr(X, path, overwrite=True)
            bench_throughput(path, k, args.repeat, args.batch_sizes)
        if "2" not in args.skip or "3" not in args.skip:
            Xn = X.compute()
            if "2" not in args.skip:
                bench_partial_fit(Xn, k, args.repeat)
            if "3" not in args.skip:
                bench_quality(Xn, k)
            del Xn  # not held by the client during (4)
        if args.out_of_core:
            bench_out_of_core(k)
    finally:
        for written in WRITTEN:
            shutil.rmtree(written, ignore_errors=True)


if __name__ == "__main__":
    main()
