"""KMeans speed and quality against scikit-learn and dask-ml, in one process, same data.

    python benchmarks/bench_kmeans.py                 # 2,000,000 x 32 float32, k=64
    python benchmarks/bench_kmeans.py --n-samples 200000 --repeat 1   # quick look

Prints per-iteration Lloyd time (fixed init, fixed iteration count, tol=0) for scikit-learn,
bigclust on the threaded scheduler and on a LocalCluster of 2 single-thread worker processes,
and dask-ml; then k-means|| initialization time and initial/final inertia against
scikit-learn's k-means++; then the peak RSS of a fit. Ratios are bigclust / peer (lower is
better). Medians of ``--repeat`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import warnings

import dask
import dask.array as da
import numpy as np
import psutil
from sklearn.cluster import KMeans as SkKMeans
from sklearn.cluster import kmeans_plusplus

import bigclust
from bigclust.datasets import make_blobs


def median_time(fn, repeat):
    fn()  # warm-up: first touch of memory, imports, worker start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class PeakRSS:
    """Peak resident memory of this process (and its children) while the block runs."""

    def __enter__(self):
        self._proc, self._stop, self.peak = psutil.Process(), False, 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop:
            rss = self._proc.memory_info().rss
            rss += sum(c.memory_info().rss for c in self._proc.children(recursive=True))
            self.peak = max(self.peak, rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()


def row(name, ours, peer, unit="s"):
    ratio = ours / peer if peer else float("nan")
    print(f"{name:<48} {ours:>10.4g} {unit:<3} {peer:>10.4g} {unit:<3} {ratio:>7.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=2_000_000)
    parser.add_argument("--n-features", type=int, default=32)
    parser.add_argument("--n-clusters", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-cluster", action="store_true", help="no LocalCluster run")
    parser.add_argument("--skip-dask-ml", action="store_true")
    parser.add_argument("--skip-init", action="store_true")
    args = parser.parse_args()

    k, iters = args.n_clusters, args.iterations
    Xd, _ = make_blobs(args.n_samples, args.n_features, centers=k, random_state=0)
    X = Xd.compute()
    init = X[np.random.default_rng(1).choice(len(X), k, replace=False)]
    print(f"data: {X.shape[0]} x {X.shape[1]} {X.dtype}, k={k}, {X.nbytes / 1e6:.0f} MB")
    print(f"{'':<48} {'bigclust':>14} {'peer':>14} {'ratio':>7}")

    sk = lambda: SkKMeans(k, init=init, n_init=1, max_iter=iters, tol=0).fit(X)  # noqa: E731
    ours = lambda data: bigclust.KMeans(k, init=init, max_iter=iters, tol=0).fit(data)  # noqa: E731
    fitted = ours(X)
    assert fitted.n_iter_ == iters, fitted.n_iter_
    sk_time = median_time(sk, args.repeat) / iters
    with dask.config.set(scheduler="threads"):
        ours_time = median_time(lambda: ours(X), args.repeat) / iters
    row("Lloyd s/iter, threaded vs scikit-learn", ours_time, sk_time)

    if not args.skip_cluster:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster):
            cluster_time = median_time(lambda: ours(X), args.repeat) / iters
        row("Lloyd s/iter, LocalCluster 2x1 vs scikit-learn", cluster_time, sk_time)

    if not args.skip_dask_ml:
        try:
            from dask_ml.cluster import KMeans as DaskMLKMeans
        except ImportError as err:
            print(f"dask-ml not available: {err}")
        else:
            chunked = da.from_array(X, chunks=(X.shape[0] // 8, X.shape[1]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dml = lambda: DaskMLKMeans(k, init=init, max_iter=iters, tol=0).fit(chunked)  # noqa: E731
                dml_time = median_time(dml, max(1, args.repeat - 2)) / iters
            with dask.config.set(scheduler="threads"):
                ours_chunked = median_time(lambda: ours(chunked), args.repeat) / iters
            row("Lloyd s/iter, threaded vs dask-ml (same dask array)", ours_chunked, dml_time)

    if not args.skip_init:
        rng_seeds = range(args.repeat)
        t_ours, t_pp, i_ours, i_pp, f_ours, f_sk = [], [], [], [], [], []
        for seed in rng_seeds:
            start = time.perf_counter()
            centers = bigclust.cluster._init.kmeans_parallel(Xd.rechunk((X.shape[0] // 8, -1)),
                                                             k, None, seed)
            t_ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            pp, _ = kmeans_plusplus(X, k, random_state=seed)
            t_pp.append(time.perf_counter() - start)
            i_ours.append(-bigclust.KMeans(k, init=centers, max_iter=1).fit(X).score(X))
            i_pp.append(-bigclust.KMeans(k, init=pp, max_iter=1).fit(X).score(X))
            f_ours.append(bigclust.KMeans(k, init=centers).fit(X).inertia_)
            f_sk.append(SkKMeans(k, random_state=seed).fit(X).inertia_)
        row("k-means|| time vs scikit-learn k-means++", statistics.median(t_ours),
            statistics.median(t_pp))
        row("initial inertia: k-means|| vs k-means++", statistics.mean(i_ours),
            statistics.mean(i_pp), unit="")
        row("final inertia after Lloyd vs scikit-learn", statistics.mean(f_ours),
            statistics.mean(f_sk), unit="")

    with PeakRSS() as mem:
        ours(X)
    print(f"peak RSS of a threaded fit: {mem.peak / 1e6:.0f} MB "
          f"(data {X.nbytes / 1e6:.0f} MB; budget 1.5x data + 200 MB = "
          f"{1.5 * X.nbytes / 1e6 + 200:.0f} MB)")


if __name__ == "__main__":
    main()
