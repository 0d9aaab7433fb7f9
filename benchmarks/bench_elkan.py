"""KMeans(algorithm="elkan"): a fit to convergence against scikit-learn's Lloyd and Elkan.

Issue 13, part 2. Overlapping blobs (so that the fit takes 20+ iterations), 2M x 32 float32,
k=64 and k=256, the same fixed initial centers (random rows) and default ``tol`` for every
fit: bigclust lloyd, bigclust elkan (bounds of groups of ``--group-sizes`` centers: 0, the
default, is Hamerly's single bound, 10 Yinyang's k/10 groups, 1 Elkan's bound per center),
scikit-learn lloyd and elkan.

Each fit runs in a fresh process of its own, the variants taking turns for ``--repeat``
rounds (as ``bench_kmeans --parts lloyd``): scikit-learn's OpenMP threads spin after a call
and steal a core from whatever runs next in the process, so fits timed one after another in
one process measure their order as much as themselves. Each process generates the same data
(``bigclust.datasets.make_blobs``, seeded) and loads numba's compiled passes before the
timed fit. Prints the medians and their ratios, each fit's ``n_iter_`` and whether its labels
equal scikit-learn Lloyd's and bigclust Lloyd's, and for bigclust elkan the share of the
row-center distances skipped per iteration.

    python -m benchmarks.bench_elkan                      # threaded, k=64 and 256
    python -m benchmarks.bench_elkan --cluster            # also a LocalCluster 2 x 1 thread
    python -m benchmarks.bench_elkan --n-clusters 64 --group-sizes 0 10 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask
import numpy as np

from benchmarks._common import machine_info


def _variants(args) -> list[str]:
    """``sklearn-lloyd``, ``sklearn-elkan``, ``lloyd``, ``elkan-<g>`` (and ``cluster-``
    forms of bigclust's with ``--cluster``)."""
    ours = ["lloyd", *(f"elkan-{g}" for g in args.group_sizes)]
    names = [f"sklearn-{a}" for a in ("lloyd", "elkan") if a in args.sklearn] + ours
    if args.cluster:
        names += [f"cluster-{name}" for name in ours]
    return names


def _label(variant: str) -> str:
    cluster = variant.startswith("cluster-")
    name = variant.removeprefix("cluster-")
    if name.startswith("sklearn-"):
        return f"sklearn {name[8:]}"
    if name.startswith("elkan-"):
        name = f"elkan g={name[6:]}"
    return f"bigclust {name}" + (" (LocalCluster 2 x 1)" if cluster else "")


def child(args) -> None:
    """Time one fit in this fresh process; write its labels and centers under ``--out``."""
    from sklearn.cluster import KMeans as SkKMeans

    import bigclust
    from bigclust.cluster import _elkan
    from bigclust.datasets import make_blobs

    k, variant = args.n_clusters[0], args.child
    X = make_blobs(args.n_samples, args.n_features, centers=k, cluster_std=args.cluster_std,
                   random_state=0)[0].compute(scheduler="threads")  # fmt: skip
    init = X[np.random.default_rng(1).choice(len(X), k, replace=False)].astype(np.float64)
    name = variant.removeprefix("cluster-")
    with contextlib.ExitStack() as stack:
        data = X
        if name.startswith("sklearn-"):

            def fit():
                return SkKMeans(k, init=init, n_init=1, algorithm=name[8:]).fit(X)

        else:
            algorithm = "elkan" if name.startswith("elkan-") else "lloyd"
            if algorithm == "elkan":
                _elkan.CENTERS_PER_GROUP = int(name[6:]) or None
            if variant.startswith("cluster-"):
                from distributed import Client, LocalCluster, wait

                from bigclust.driver import keep_in_memory

                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
                    )
                )
                client = stack.enter_context(Client(cluster))
                data = keep_in_memory(bigclust.as_dask_array(X), X)  # as fit does for NumPy
                wait(data)
                warm = bigclust.as_dask_array(X[:200_000])
            else:
                stack.enter_context(dask.config.set(scheduler="threads"))
                warm = X[:200_000]
            # numba's compiled passes loaded (and compiled, the first time) before the timing,
            # in every worker process too.
            bigclust.KMeans(k, init=init, algorithm="elkan", max_iter=2).fit(warm)
            if variant.startswith("cluster-"):
                client.run(lambda: None)

            def fit():
                return bigclust.KMeans(k, init=init, algorithm=algorithm).fit(data)

        start = time.perf_counter()
        model = fit()
        seconds = time.perf_counter() - start
        labels = np.asarray(model.labels_)  # lazy on a cluster: read while it is up
    out = Path(args.out)
    np.save(out / f"{variant}-labels.npy", labels)
    np.save(out / f"{variant}-centers.npy", np.asarray(model.cluster_centers_, np.float64))
    skipped = []
    if name.startswith("elkan-"):
        skipped = [r["skipped"] for r in _elkan.describe(model._bound_history, k)]
    print(json.dumps({"seconds": seconds, "n_iter": int(model.n_iter_), "skipped": skipped}))


def run_k(args, k: int) -> None:
    variants = _variants(args)
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="bigclust-bench-elkan-") as out:
        for _ in range(args.repeat):
            for variant in variants:
                cmd = [
                    sys.executable, "-m", "benchmarks.bench_elkan", "--child", variant,
                    "--out", out, "--n-samples", str(args.n_samples),
                    "--n-features", str(args.n_features), "--n-clusters", str(k),
                    "--cluster-std", str(args.cluster_std),
                ]  # fmt: skip
                result = subprocess.run(cmd, check=True, capture_output=True, text=True)
                runs[variant].append(json.loads(result.stdout.strip().splitlines()[-1]))
        labels = {v: np.load(Path(out) / f"{v}-labels.npy") for v in variants}
        centers = {v: np.load(Path(out) / f"{v}-centers.npy") for v in variants}
    seconds = {v: statistics.median(r["seconds"] for r in runs[v]) for v in variants}
    sk_lloyd, sk_elkan = seconds["sklearn-lloyd"], seconds.get("sklearn-elkan", np.nan)
    print(f"\n== {args.n_samples:,} x {args.n_features} float32, k={k}: fresh processes, "
          f"{args.repeat} rounds taking turns ==")  # fmt: skip
    head = f"{'fit':38s} {'s':>8s} {'n_iter':>7s} {'/sk lloyd':>10s} {'/sk elkan':>10s}"
    print(f"{head} =sk lloyd =our lloyd  runs")
    for v in variants:
        same_sk = bool((labels[v] == labels["sklearn-lloyd"]).all())
        same_ours = bool((labels[v] == labels["lloyd"]).all())
        times = " ".join(f"{r['seconds']:.2f}" for r in runs[v])
        print(
            f"{_label(v):38s} {seconds[v]:8.2f} {runs[v][-1]['n_iter']:7d} "
            f"{seconds[v] / sk_lloyd:10.2f} {seconds[v] / sk_elkan:10.2f} "
            f"{same_sk!s:9s} {same_ours!s:9s}  {times}"
        )
        if "elkan-" in v and not v.startswith("sklearn"):
            diff = np.abs(centers[v] - centers["lloyd"]).max()
            print(f"  centers vs bigclust lloyd: max abs difference {diff:.3g}")
    for v in variants:
        if runs[v][-1]["skipped"]:
            shares = " ".join(f"{s:.2f}" for s in runs[v][-1]["skipped"])
            print(f"{_label(v)} skipped share per pass (the last: the final inertia): {shares}")
    print(f"load after: {os.getloadavg()}")


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
    p.add_argument("--repeat", type=int, default=3, help="rounds of fresh processes")
    p.add_argument(
        "--sklearn",
        nargs="*",
        default=["lloyd", "elkan"],
        choices=["lloyd", "elkan"],
        help="scikit-learn's algorithms to run (lloyd is needed)",
    )
    p.add_argument("--cluster", action="store_true", help="also on a LocalCluster 2 x 1")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    if "lloyd" not in args.sklearn:
        p.error("--sklearn must include lloyd (the ratios are to it)")
    print(machine_info())
    print(f"load before: {os.getloadavg()}")
    for k in args.n_clusters:
        run_k(args, k)


if __name__ == "__main__":
    main()
