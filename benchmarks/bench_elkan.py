"""KMeans(algorithm="elkan"): a fit to convergence against scikit-learn's Lloyd and Elkan.

Issue 13, part 2. Overlapping blobs (so that the fit takes 20+ iterations), 2M x 32 float32,
k=64 and k=256, the same fixed initial centers (random rows) and default ``tol`` for every
fit, all in this process: bigclust lloyd, bigclust elkan (bounds of groups of
``--group-sizes`` centers: 0, the default, is Hamerly's single bound, 10 Yinyang's k/10
groups, 1 Elkan's bound per center), scikit-learn lloyd and elkan. Each is timed in a run of its own
calls (scikit-learn's OpenMP threads spin after a call and would steal a core from the next
caller), medians of ``--repeat``. Prints the ratios, each fit's ``n_iter_`` and whether its
labels equal scikit-learn Lloyd's, and for bigclust elkan the share of the row-center
distances skipped per iteration.

    python -m benchmarks.bench_elkan                      # threaded, k=64 and 256
    python -m benchmarks.bench_elkan --cluster            # also a LocalCluster 2 x 1 thread
    python -m benchmarks.bench_elkan --n-clusters 64 --group-sizes 0 10 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import dask
import numpy as np
from sklearn.cluster import KMeans as SkKMeans

import bigclust
from benchmarks._common import machine_info
from bigclust.cluster import _elkan
from bigclust.datasets import make_blobs


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out, times


def skipped(model, k) -> str:
    rows = _elkan.describe(model._bound_history, k)
    return " ".join(f"{r['skipped']:.2f}" for r in rows)


def run(args, X, k, data, label, peers=None):
    """Time every fit (scikit-learn's: taken from ``peers`` if given); returns the results."""
    init = X[np.random.default_rng(1).choice(len(X), k, replace=False)].astype(np.float64)
    fits = {
        "sklearn lloyd": lambda: SkKMeans(k, init=init, n_init=1, algorithm="lloyd").fit(X),
        "sklearn elkan": lambda: SkKMeans(k, init=init, n_init=1, algorithm="elkan").fit(X),
        "bigclust lloyd": lambda: bigclust.KMeans(k, init=init).fit(data),
    }
    if peers:
        fits = {name: fn for name, fn in fits.items() if name not in peers}
    fits = {n: f for n, f in fits.items() if not n.startswith("sklearn") or n[8:] in args.sklearn}
    for size in args.group_sizes:
        fits[f"bigclust elkan g={size}"] = lambda size=size: _ours_elkan(k, init, data, size)
    results = dict(peers or {})
    for name, fn in fits.items():
        results[name] = timed(fn, args.repeat)
    ref, ours = results["sklearn lloyd"][1], np.asarray(results["bigclust lloyd"][1].labels_)
    print(f"\n== {label}: {X.shape[0]:,} x {X.shape[1]} {X.dtype}, k={k} ==")
    head = f"{'fit':24s} {'s':>8s} {'n_iter':>7s} {'/sk lloyd':>10s} {'/sk elkan':>10s}"
    print(f"{head} =sk lloyd =our lloyd  runs")
    ours_centers = results["bigclust lloyd"][1].cluster_centers_
    for name, (seconds, model, times) in results.items():
        labels = np.asarray(model.labels_)
        same = f"{bool((labels == ref.labels_).all())!s:9s} {bool((labels == ours).all())!s:9s}"
        runs = " ".join(f"{t:.2f}" for t in times)
        print(
            f"{name:24s} {seconds:8.2f} {model.n_iter_:7d} "
            f"{seconds / results['sklearn lloyd'][0]:10.2f} "
            f"{seconds / results.get('sklearn elkan', (np.nan,))[0]:10.2f} {same}  {runs}"
        )
        if name.startswith("bigclust elkan"):
            diff = np.abs(model.cluster_centers_ - ours_centers).max()
            print(f"  centers vs bigclust lloyd: max abs difference {diff:.3g}")
    for name, (_, model, _) in results.items():
        if name.startswith("bigclust elkan"):
            print(f"{name} skipped share per pass (the last: the final inertia): "
                  f"{skipped(model, k)}")  # fmt: skip
    print(f"load after: {os.getloadavg()}")
    return results


def _ours_elkan(k, init, data, group_size):
    before = _elkan.CENTERS_PER_GROUP
    _elkan.CENTERS_PER_GROUP = group_size or None
    try:
        return bigclust.KMeans(k, init=init, algorithm="elkan").fit(data)
    finally:
        _elkan.CENTERS_PER_GROUP = before


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-samples", type=int, default=2_000_000)
    p.add_argument("--n-features", type=int, default=32)
    p.add_argument("--n-clusters", type=int, nargs="+", default=[64, 256])
    p.add_argument("--cluster-std", type=float, default=4.0)
    p.add_argument(
        "--group-sizes",
        type=int,
        nargs="+",
        default=[0],
        help="centers per group of lower bounds; 0: one group (the default)",
    )
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--sklearn",
        nargs="*",
        default=["lloyd", "elkan"],
        choices=["lloyd", "elkan"],
        help="scikit-learn's algorithms to run (lloyd is needed)",
    )
    p.add_argument("--cluster", action="store_true", help="also on a LocalCluster 2 x 1")
    args = p.parse_args(argv)
    print(machine_info())
    print(f"load before: {os.getloadavg()}")
    for k in args.n_clusters:
        X = make_blobs(args.n_samples, args.n_features, centers=k, cluster_std=args.cluster_std,
                       random_state=0)[0].compute(scheduler="threads")  # fmt: skip
        # numba's compiled passes loaded (and compiled, the first time) outside the timings.
        bigclust.KMeans(k, init=X[:k], algorithm="elkan", max_iter=2).fit(X[:200_000])
        with dask.config.set(scheduler="threads"):
            results = run(args, X, k, X, "threaded")
        peers = {name: results[name] for name in results if name.startswith("sklearn")}
        if args.cluster:
            from distributed import Client, LocalCluster, wait

            from bigclust.driver import keep_in_memory

            with (
                LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                             dashboard_address=None) as cluster,
                Client(cluster),
            ):  # fmt: skip
                on_workers = keep_in_memory(bigclust.as_dask_array(X), X)
                wait(on_workers)
                run(args, X, k, on_workers, "LocalCluster 2 procs x 1 thread (scikit-learn: "
                    "the threaded run's figures)", peers)  # fmt: skip


if __name__ == "__main__":
    main()
