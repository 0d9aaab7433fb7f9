"""Clustering metrics against scikit-learn: same data, one process.

    python -m benchmarks.bench_metrics                  # 1,000,000 x 16 float64, k=16
    python -m benchmarks.bench_metrics --n-samples 200000 --n-exact 10000   # a quick look

Parts:

- ``sqeuclidean``: the exact squared-Euclidean silhouette of all rows (two passes, O(n k))
  with bigclust. scikit-learn's is O(n^2) in time: it is timed on a 20,000-row subsample
  (``--n-subsample``), where bigclust is timed too and the two scores are compared.
- ``scores``: Calinski-Harabasz and Davies-Bouldin on all rows, bigclust against
  scikit-learn (ratio) and the largest relative difference of the scores.
- ``sampled``: on ``--n-exact`` rows (where the exact Euclidean silhouette is feasible), the
  exact silhouette with bigclust (blockwise) and scikit-learn, then bigclust's stratified
  estimate (``sample_size`` rows, each scored against all rows) over several seeds: time,
  mean absolute error against the exact score, mean reported standard error; next to
  scikit-learn's own ``sample_size`` (the sample scored against itself).

Data: ``bigclust.datasets.make_blobs`` with ``cluster_std=3`` (overlapping blobs, so the
silhouette is far from 1), labels the true blobs. bigclust runs on the threaded scheduler.
scikit-learn (OpenMP/BLAS threads) is timed in runs of its own, not interleaved.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import dask
import numpy as np
import sklearn
import sklearn.metrics as skm
from threadpoolctl import threadpool_info

from benchmarks._common import Row, format_bytes, measure, print_table
from bigclust import metrics
from bigclust.datasets import make_blobs


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    blas = [
        f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, "
        f"{i['num_threads']} threads)"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]
    return f"{cpu}; BLAS: {', '.join(blas) or 'unknown'}; scikit-learn {sklearn.__version__}"


def data(args):
    X, y = make_blobs(
        args.n_samples,
        args.n_features,
        centers=args.n_clusters,
        cluster_std=3.0,
        random_state=0,
        dtype=np.float64,
    )
    return dask.compute(X, y, scheduler="threads")


def part_sqeuclidean(args, X, y, rows):
    ours = measure(lambda: metrics.silhouette_score(X, y, metric="sqeuclidean"), repeat=args.repeat)
    score = metrics.silhouette_score(X, y, metric="sqeuclidean")
    name = f"silhouette sqeuclidean, all {len(X)} rows"
    rows.append(Row(name, ours.median, None, "s", f"{ours}; score {score:.6f}"))
    sub = slice(0, args.n_subsample)
    peer = measure(
        lambda: skm.silhouette_score(X[sub], y[sub], metric="sqeuclidean"), repeat=args.repeat
    )
    small = measure(
        lambda: metrics.silhouette_score(X[sub], y[sub], metric="sqeuclidean"), repeat=args.repeat
    )
    theirs = skm.silhouette_score(X[sub], y[sub], metric="sqeuclidean")
    mine = metrics.silhouette_score(X[sub], y[sub], metric="sqeuclidean")
    rows.append(
        Row(
            f"silhouette sqeuclidean, {args.n_subsample} rows",
            small.median,
            peer.median,
            "s",
            f"sklearn {peer.median / small.median:.0f}x slower; |diff| {abs(mine - theirs):.1e}",
        )
    )


def part_scores(args, X, y, rows):
    for name in ("calinski_harabasz_score", "davies_bouldin_score"):
        ours, peer = getattr(metrics, name), getattr(skm, name)
        t_ours = measure(lambda ours=ours: ours(X, y), repeat=args.repeat)
        t_peer = measure(lambda peer=peer: peer(X, y), repeat=args.repeat)
        a, b = ours(X, y), peer(X, y)
        rows.append(
            Row(
                f"{name}, {len(X)} rows",
                t_ours.median,
                t_peer.median,
                "s",
                f"rel diff {abs(a - b) / abs(b):.1e}; ours {t_ours}; sklearn {t_peer}",
            )
        )


def part_sampled(args, X, y, rows):
    X, y = X[: args.n_exact], y[: args.n_exact]
    t_exact = measure(lambda: metrics.silhouette_score(X, y), repeat=args.repeat)
    t_peer = measure(lambda: skm.silhouette_score(X, y), repeat=args.repeat)
    exact, theirs = metrics.silhouette_score(X, y), skm.silhouette_score(X, y)
    rows.append(
        Row(
            f"silhouette euclidean exact, {len(X)} rows",
            t_exact.median,
            t_peer.median,
            "s",
            f"|diff| {abs(exact - theirs):.1e}; score {exact:.6f}",
        )
    )
    seeds = range(args.seeds)
    times, errors, stds = [], [], []
    for seed in seeds:
        start = time.perf_counter()
        score, std = metrics.silhouette_score(
            X, y, sample_size=args.sample_size, random_state=seed, return_std=True
        )
        times.append(time.perf_counter() - start)
        errors.append(abs(score - exact))
        stds.append(std)
    peer_times, peer_errors = [], []
    for seed in seeds:
        start = time.perf_counter()
        score = skm.silhouette_score(X, y, sample_size=args.sample_size, random_state=seed)
        peer_times.append(time.perf_counter() - start)
        peer_errors.append(abs(score - exact))
    rows.append(
        Row(
            f"silhouette sample_size={args.sample_size} of {len(X)}",
            statistics.median(times),
            statistics.median(peer_times),
            "s",
            f"mean |error| ours {np.mean(errors):.1e} (mean std error {np.mean(stds):.1e}), "
            f"sklearn {np.mean(peer_errors):.1e}; {args.seeds} seeds",
        )
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-clusters", type=int, default=16)
    parser.add_argument("--n-subsample", type=int, default=20_000)
    parser.add_argument("--n-exact", type=int, default=30_000)
    parser.add_argument("--sample-size", type=int, default=2_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts", default="sqeuclidean,scores,sampled")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    X, y = data(args)
    print(
        f"data: {X.shape[0]} x {X.shape[1]} {X.dtype} ({format_bytes(X.nbytes)}), "
        f"k={args.n_clusters}"
    )
    rows: list[Row] = []
    parts = args.parts.split(",")
    with dask.config.set(scheduler="threads"):
        if "sqeuclidean" in parts:
            part_sqeuclidean(args, X, y, rows)
        if "scores" in parts:
            part_scores(args, X, y, rows)
        if "sampled" in parts:
            part_sampled(args, X, y, rows)
    print_table("clustering metrics", rows, peer_name="sklearn")


if __name__ == "__main__":
    main()
