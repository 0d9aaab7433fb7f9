"""Small in-memory data: bigclust's in-process path against scikit-learn on the notebook's sizes.

Below ``bigclust.driver.SMALL_DATA_BYTES`` a fit runs every pass in this process without a
Dask graph; this measures whole fits (``n_init`` included) against scikit-learn's on the same
data, and, with ``--threshold``, one Lloyd pass in process vs through the threaded scheduler
at growing sizes (how the threshold was chosen).

    python -m benchmarks.bench_small            # whole fits, ratios vs scikit-learn
    python -m benchmarks.bench_small --threshold
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.cluster import KMeans as SkKMeans
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import bigclust
from benchmarks._common import Row, machine_info, measure, print_table
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
    rows = []
    for name, ours, theirs, X in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # scikit-learn's OpenMP threads spin after a call: time each library in a run of
            # its own calls (benchmarks/README.md), ours first.
            t_ours = measure(lambda e=ours, X=X: e.fit(X), repeat=repeat).median
            t_theirs = measure(lambda e=theirs, X=X: e.fit(X), repeat=repeat).median
        rows.append(Row(name, t_ours, t_theirs, "s"))
    return rows


def threshold(repeat: int) -> list[Row]:
    """One Lloyd pass over n x 16 float64, k=8: in process vs the threaded scheduler."""
    rows = []
    rng = np.random.default_rng(0)
    for n in (2_000, 20_000, 100_000, 400_000, 1_000_000):
        X = rng.normal(size=(n, 16))
        params = kern.LloydParams(X[:8].copy())
        lazy = bigclust.as_dask_array(X)

        def one_pass(data, params=params):
            return driver.map_reduce(kern.lloyd_chunk, data, params=params)

        t_process = measure(lambda X=X, f=one_pass: f(X), repeat=repeat).median
        t_dask = measure(lambda lazy=lazy, f=one_pass: f(lazy), repeat=repeat).median
        rows.append(Row(f"Lloyd pass {n:,} x 16 ({X.nbytes / 2**20:.1f} MiB)", t_process, t_dask))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threshold", action="store_true", help="the in-process threshold")
    args = parser.parse_args(argv)
    print(f"# bench_small on {machine_info()}")
    if args.threshold:
        rows = threshold(args.repeat)
        print_table("one pass: in process (bigclust column) vs threaded Dask (peer)", rows,
                    peer_name="threaded")  # fmt: skip
    else:
        print_table("whole fits, in-memory input", fits(args.repeat), peer_name="scikit-learn")


if __name__ == "__main__":
    main()
