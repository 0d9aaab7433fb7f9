"""Small in-memory data: bigclust's in-process path against scikit-learn on the notebook's sizes.

Below ``bigclust.driver.SMALL_DATA_BYTES`` a fit runs every pass in this process without a
Dask graph. Parts (``--parts``, comma-separated; default all but ``threshold``):

Each figure is the median over ``--repeat`` runs of the seconds per call, a run calling the
fit as many times in a row as last a quarter of a second.

- ``fits``: whole fits (``n_init`` included) against scikit-learn's on the same data, the
  notebook's sizes (1,250 x 2 and digits, 1,797 x 64); the note gives the inertia (or mean
  log-likelihood) ratio, bigclust over scikit-learn (<= 1 for inertia: no worse);
- ``large``: the same at 60,000 x 784 float64 (376 MB, MNIST's shape; blobs);
- ``grid``: ``GridSearchCV(KMeans(), {"n_clusters": 2..10}, cv=3)`` on digits;
- ``client``: small fits with an in-process ``distributed`` LocalCluster active against the
  same fits without a client (they must not pay a round trip per pass);
- ``threshold``: one Lloyd pass in process vs through the threaded scheduler at growing
  sizes (how ``SMALL_DATA_BYTES`` was chosen).
- ``direct``: greedy k-means++ with the seedings' distances as direct differences vs through
  the BLAS product, by number of features (how ``DIRECT_MAX_FEATURES`` was chosen).

    python -m benchmarks.bench_small                      # fits, large, grid, client
    python -m benchmarks.bench_small --parts fits,grid --repeat 3
    python -m benchmarks.bench_small --parts threshold
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import dask
import numpy as np
from sklearn.cluster import KMeans as SkKMeans
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.model_selection import GridSearchCV

import bigclust
from benchmarks._common import Row, machine_info, measure, measure_side_by_side, print_table
from bigclust import driver
from bigclust.cluster import _kernels as kern


def _notebook_blobs():
    centers = np.array([[0.2, 2.3], [-1.5, 2.3], [-2.8, 1.8], [-2.8, 2.8], [-2.8, 1.3]])
    std = np.array([0.4, 0.3, 0.1, 0.1, 0.1])
    X, _ = make_blobs(n_samples=2000, centers=centers, cluster_std=std, random_state=7)
    return X


def _ellipsoids():
    X1, _ = make_blobs(n_samples=1000, centers=((4, -4), (0, 0)), random_state=42)
    X1 = X1.dot(np.array([[0.374, 0.95], [0.732, 0.598]]))
    X2, _ = make_blobs(n_samples=250, centers=1, random_state=42)
    return np.vstack([X1, X2 + np.array([6, -8])])


def _quality(ours, theirs, X) -> str:
    """bigclust's inertia over scikit-learn's (KMeans), or the mean log-likelihoods (mixtures)."""
    if hasattr(theirs, "inertia_"):
        return f"inertia ratio {ours.inertia_ / theirs.inertia_:.4f}"
    return f"loglik {ours.score(X):.4f} vs {theirs.score(X):.4f}"


#: Seconds each timed run of :func:`_per_call` lasts at least: a fit of a few milliseconds
#: timed alone varies by +-30% on this machine; a run of many in a row does not.
MIN_RUN_SECONDS = 0.25


def _per_call(fn, repeat: int) -> float:
    """Median over ``repeat`` runs of the seconds per call of ``fn``, each run calling it as
    many times as fill :data:`MIN_RUN_SECONDS` (counted from the warm-up call)."""
    start = time.perf_counter()
    fn()  # warm-up, and the count
    calls = max(1, math.ceil(MIN_RUN_SECONDS / max(time.perf_counter() - start, 1e-6)))

    def run():
        for _ in range(calls):
            fn()

    return measure(run, repeat=repeat, warmup=0).median / calls


def _time_fits(cases, repeat: int) -> list[Row]:
    rows = []
    for name, ours, theirs, X in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # scikit-learn's OpenMP threads spin after a call: time each library in a run of
            # its own calls (benchmarks/README.md), ours first.
            t_ours = _per_call(lambda e=ours, X=X: e.fit(X), repeat)
            t_theirs = _per_call(lambda e=theirs, X=X: e.fit(X), repeat)
        rows.append(Row(name, t_ours, t_theirs, "s", _quality(ours, theirs, X)))
    return rows


def fits(repeat: int) -> list[Row]:
    digits = load_digits().data
    blobs = _notebook_blobs()[:1250]
    ellipsoids = _ellipsoids()
    cases = [
        ("KMeans(8) 1,250 x 2", bigclust.KMeans(8, random_state=0),
         SkKMeans(8, random_state=0), blobs),
        ("KMeans(5, n_init=10) 1,250 x 2", bigclust.KMeans(5, n_init=10, random_state=0),
         SkKMeans(5, n_init=10, random_state=0), blobs),
        ("KMeans(50, n_init=10) digits", bigclust.KMeans(50, n_init=10, random_state=0),
         SkKMeans(50, n_init=10, random_state=0), digits),
        ("MiniBatchKMeans(8) 1,250 x 2", bigclust.MiniBatchKMeans(8, random_state=0, n_init=3),
         SkMiniBatchKMeans(8, random_state=0, n_init=3), blobs),
        ("MiniBatchKMeans(50) digits", bigclust.MiniBatchKMeans(50, random_state=0, n_init=3),
         SkMiniBatchKMeans(50, random_state=0, n_init=3), digits),
        ("GaussianMixture(3, n_init=10) 1,250 x 2",
         bigclust.GaussianMixture(3, n_init=10, random_state=42),
         SkGaussianMixture(3, n_init=10, random_state=42), ellipsoids),
        ("GaussianMixture(10, diag) digits",
         bigclust.GaussianMixture(10, covariance_type="diag", random_state=0),
         SkGaussianMixture(10, covariance_type="diag", random_state=0), digits),
    ]  # fmt: skip
    return _time_fits(cases, repeat)


def large(repeat: int) -> list[Row]:
    """60,000 x 784 float64 (MNIST's shape): above SMALL_DATA_BYTES, the threaded path."""
    X, _ = make_blobs(60_000, 784, centers=10, cluster_std=8.0, random_state=0)
    cases = [
        ("KMeans(10) 60,000 x 784", bigclust.KMeans(10, random_state=0),
         SkKMeans(10, random_state=0), X),
        ("MiniBatchKMeans(10) 60,000 x 784", bigclust.MiniBatchKMeans(10, random_state=0, n_init=3),
         SkMiniBatchKMeans(10, random_state=0, n_init=3), X),
        ("GaussianMixture(10, diag) 60,000 x 784",
         bigclust.GaussianMixture(10, covariance_type="diag", random_state=0),
         SkGaussianMixture(10, covariance_type="diag", random_state=0), X),
    ]  # fmt: skip
    return _time_fits(cases, repeat)


def grid(repeat: int) -> list[Row]:
    """A grid search of small fits: every fold's fit and score pays the fixed costs."""
    digits = load_digits().data
    grid_of = {"n_clusters": list(range(2, 11))}

    def search(estimator):
        return GridSearchCV(estimator, grid_of, cv=3).fit(digits)

    t_ours = _per_call(lambda: search(bigclust.KMeans(random_state=0)), repeat)
    t_theirs = _per_call(lambda: search(SkKMeans(random_state=0)), repeat)
    return [Row("GridSearchCV(KMeans(), n_clusters 2..10, cv=3) digits", t_ours, t_theirs)]


def client(repeat: int) -> list[Row]:
    """Small fits with an in-process distributed cluster active, against no client."""
    from distributed import Client, LocalCluster

    blobs, ellipsoids = _notebook_blobs()[:1250], _ellipsoids()
    cases = [
        ("KMeans(8) 1,250 x 2", lambda: bigclust.KMeans(8, random_state=0).fit(blobs)),
        ("MiniBatchKMeans(8) 1,250 x 2",
         lambda: bigclust.MiniBatchKMeans(8, random_state=0, n_init=3).fit(blobs)),
        ("GaussianMixture(3, n_init=10) 1,250 x 2",
         lambda: bigclust.GaussianMixture(3, n_init=10, random_state=42).fit(ellipsoids)),
    ]  # fmt: skip
    rows = []
    with (
        warnings.catch_warnings(),
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                     dashboard_address=":0") as cluster,
        Client(cluster) as the_client,
    ):  # fmt: skip
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, fit in cases:

            def on(scheduler, fit=fit):
                with dask.config.set(scheduler=scheduler):
                    fit()

            # Interleaved rounds: the load of other processes hits both alike.
            t = measure_side_by_side(
                {"client": lambda on=on: on(the_client), "none": lambda on=on: on("threads")},
                repeat=repeat,
            )
            t_client, t_none = t["client"].median, t["none"].median
            rows.append(Row(name, t_client, t_none, note=f"{(t_client - t_none) * 1e3:+.1f} ms"))
    return rows


def threshold(repeat: int) -> list[Row]:
    """One Lloyd pass over n x 16 float64, k=8: in process vs the threaded scheduler."""
    rows = []
    rng = np.random.default_rng(0)
    for n in (2_000, 20_000, 100_000, 400_000, 1_000_000, 3_000_000):
        X = rng.normal(size=(n, 16))
        params = kern.LloydParams(X[:8].copy())
        lazy = bigclust.as_dask_array(X)

        def one_pass(data, params=params):
            return driver.map_reduce(kern.lloyd_chunk, data, params=params)

        t_process = measure(lambda X=X, f=one_pass: f(X), repeat=repeat).median
        t_dask = measure(lambda lazy=lazy, f=one_pass: f(lazy), repeat=repeat).median
        rows.append(Row(f"Lloyd pass {n:,} x 16 ({X.nbytes / 2**20:.1f} MiB)", t_process, t_dask))
    return rows


def direct(repeat: int) -> list[Row]:
    """Greedy k-means++ (k=8) over n x d float32 in this process: the seeding's distances as
    direct differences (bigclust column) against through the BLAS product (peer column), how
    ``DIRECT_MAX_FEATURES`` was chosen."""
    from bigclust.cluster import _init

    rows = []
    rng = np.random.default_rng(0)
    chosen = kern.DIRECT_MAX_FEATURES
    try:
        for d in (2, 4, 8, 16):
            for n in (2_000, 200_000):
                X = rng.normal(size=(n, d)).astype(np.float32)

                def seeding(limit, X=X):
                    kern.DIRECT_MAX_FEATURES = limit
                    return _init.kmeans_plusplus_greedy(X, 8, None, 1)

                t = measure_side_by_side(
                    {"direct": lambda f=seeding, d=d: f(d), "product": lambda f=seeding: f(0)},
                    repeat=repeat,
                )
                rows.append(Row(f"k-means++ k=8, {n:,} x {d}", t["direct"].median,
                                t["product"].median))  # fmt: skip
    finally:
        kern.DIRECT_MAX_FEATURES = chosen
    return rows


PARTS = {
    "fits": ("whole fits, in-memory input", fits, "scikit-learn"),
    "large": ("whole fits, 60,000 x 784 float64 in memory", large, "scikit-learn"),
    "grid": ("GridSearchCV over small fits", grid, "scikit-learn"),
    "client": ("with a distributed client active (bigclust) vs none (peer)", client, "no client"),
    "threshold": ("one pass: in process (bigclust column) vs threaded Dask (peer)", threshold,
                  "threaded"),
    "direct": ("seeding distances: direct differences (bigclust column) vs product (peer)",
               direct, "product"),
}  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--parts", default="fits,large,grid,client", help=", ".join(PARTS))
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; valid: {', '.join(PARTS)}")
    print(f"# bench_small on {machine_info()}")
    for part in parts:
        title, run, peer = PARTS[part]
        print_table(title, run(args.repeat), peer_name=peer)


if __name__ == "__main__":
    main()
