"""KMeans speed, init quality and memory against scikit-learn and dask-ml, on the same data.

    python -m benchmarks.bench_kmeans                       # 2,000,000 x 32 float32, k=64
    python -m benchmarks.bench_kmeans --parts lloyd --n-samples 200000   # a quick look

Parts:

- ``lloyd``: steady-state seconds per Lloyd iteration from a fixed init, measured as
  ``(fit(max_iter=1 + n) - fit(max_iter=1)) / n`` with ``tol=0`` so fixed costs (validation,
  the first pass, the final assignment, moving data to workers) cancel. bigclust on the
  threaded scheduler and on a LocalCluster of 2 single-thread worker processes (data scattered
  to the workers once, as ``fit`` does for NumPy input), and dask-ml's KMeans on the same dask
  array, against scikit-learn: each variant in fresh processes of its own, taking turns for
  ``--repeat`` rounds (see :data:`LLOYD_VARIANTS` for why not in one process).
- ``init``: k-means|| time against scikit-learn's k-means++ (``kmeans_plusplus``), the initial
  inertia of both (mean over seeds), and the final inertia after Lloyd against scikit-learn's
  default ``KMeans``.
- ``memory``: in a fresh subprocess, the process's peak RSS during a threaded fit on in-memory
  data, next to the RSS before the fit (data and libraries loaded).
- ``compile``: the first-call cost of the compiled passes (numba): in fresh processes with
  numba's disk cache empty, then warm, the first compiled Lloyd chunk, mini-batch step and
  mini-batch fit segment (131,072 rows: the compiled loop of steps)
  against the second; and the first Lloyd pass in a fresh Dask worker process (warm cache)
  against its second.

``--dtypes float32,float64`` runs ``lloyd`` for each dtype (the data cast from float32).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import dask
import numpy as np
from sklearn.cluster import KMeans as SkKMeans
from sklearn.cluster import kmeans_plusplus

import bigclust
from benchmarks._common import PeakRSS, Row, format_bytes, measure_side_by_side, print_table
from bigclust.cluster._init import kmeans_parallel
from bigclust.datasets import make_blobs


def machine() -> str:
    """CPU model, cores and BLAS kernel (threadpoolctl): figures move between machines."""
    from threadpoolctl import threadpool_info

    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    blas = ", ".join(
        f"{lib['internal_api']} {lib.get('version')} ({lib.get('architecture')}, "
        f"{lib['num_threads']} threads)"
        for lib in threadpool_info()
        if lib["user_api"] == "blas"
    )
    return f"machine: {cpu}, {os.cpu_count()} cores; BLAS: {blas}; load {os.getloadavg()[0]:.1f}"


def data(args):
    X = make_blobs(args.n_samples, args.n_features, centers=args.n_clusters, random_state=0)[0]
    return X.compute(scheduler="threads")


def per_iteration(fit, n: int, repeat: int) -> dict[str, float]:
    """Steady-state seconds per iteration of each fit(max_iter), interleaved."""
    runs = {}
    for name, f in fit.items():
        runs[f"{name} short"] = lambda f=f: f(1)
        runs[f"{name} long"] = lambda f=f: f(1 + n)
    t = measure_side_by_side(runs, repeat=repeat)
    return {name: (t[f"{name} long"].median - t[f"{name} short"].median) / n for name in fit}


#: The variants of the ``lloyd`` part, each timed in processes of its own: scikit-learn's
#: OpenMP threads spin after a call and steal a core from whatever runs next in the process,
#: so timing two estimators in one process (interleaved, or one after the other) measures
#: which one ran first as much as either: interleaved, scikit-learn's seconds per iteration
#: doubled (0.33-0.39 s against 0.15-0.18 s alone) and put bigclust at 0.48x where fresh
#: processes put it at 0.9x.
LLOYD_VARIANTS = {
    "sklearn": "scikit-learn",
    "threaded": "bigclust, threaded",
    "cluster": "bigclust, LocalCluster 2 procs x 1 thread",
    "dask-ml": "dask-ml, threaded, same dask array",
}


def part_lloyd(args, dtype, rows):
    """Seconds per iteration of each variant, in fresh processes taking turns (``--repeat``
    rounds), on the same generated data; the ratios of their medians."""
    variants = [v for v in LLOYD_VARIANTS if not (v == "dask-ml" and args.skip_dask_ml)]
    runs: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.repeat):
        for variant in variants:
            cmd = [
                sys.executable, "-m", "benchmarks.bench_kmeans", "--lloyd-child", variant,
                "--dtypes", dtype, "--n-samples", str(args.n_samples),
                "--n-features", str(args.n_features), "--n-clusters", str(args.n_clusters),
                "--iterations", str(args.iterations),
            ]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
            if out and out[-1] != "unavailable":
                runs[variant].append(float(out[-1]))
    peer = statistics.median(runs["sklearn"])
    for variant in variants[1:]:
        if not runs[variant]:
            print(f"{LLOYD_VARIANTS[variant]}: not available, row skipped")
            continue
        times = ", ".join(f"{t:.3f}" for t in runs[variant])
        rows.append(
            Row(
                f"Lloyd s/iter, {dtype}, {LLOYD_VARIANTS[variant]}",
                statistics.median(runs[variant]),
                peer,
                note=f"peer: scikit-learn ({', '.join(f'{t:.3f}' for t in runs['sklearn'])}); "
                f"runs {times}",
            )
        )


def lloyd_child(args):
    """One variant's steady-state seconds per iteration, in this fresh process."""
    X = data(args).astype(args.dtypes, copy=False)
    k = args.n_clusters
    init = X[np.random.default_rng(1).choice(len(X), k, replace=False)]
    variant = args.lloyd_child

    def ours(on):
        return lambda max_iter: bigclust.KMeans(k, init=init, max_iter=max_iter, tol=0).fit(on)

    with contextlib.ExitStack() as stack:
        if variant == "sklearn":

            def fit(max_iter):
                SkKMeans(k, init=init, n_init=1, max_iter=max_iter, tol=0).fit(X)

        elif variant == "threaded":
            stack.enter_context(dask.config.set(scheduler="threads"))
            fit = ours(X)
        elif variant == "cluster":
            from distributed import Client, LocalCluster, wait

            from bigclust.driver import keep_in_memory

            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
                )
            )
            stack.enter_context(Client(cluster))
            on_workers = keep_in_memory(bigclust.as_dask_array(X), X)  # as fit does for NumPy
            wait(on_workers)
            fit = ours(on_workers)
        else:
            try:
                from dask_ml.cluster import KMeans as DaskMLKMeans
            except ImportError:
                print("unavailable")
                return
            stack.enter_context(dask.config.set(scheduler="threads"))
            chunked = bigclust.as_dask_array(X)

            def fit(max_iter):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    DaskMLKMeans(k, init=init, max_iter=max_iter, tol=0).fit(chunked)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn: "distinct clusters" on blobs
            t = per_iteration({variant: fit}, args.iterations, 3)
    print(t[variant])


def part_init(args, X, rows):
    k = args.n_clusters
    chunked = bigclust.as_dask_array(X)
    seeds = range(args.repeat)
    ours_time, pp_time, ours_init, pp_init, ours_final, sk_final = [], [], [], [], [], []

    def inertia(centers):
        return -bigclust.KMeans(k, init=centers, max_iter=1).fit(X).score(X)

    for seed in seeds:
        start = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            centers = kmeans_parallel(chunked, k, None, seed).centers
        ours_time.append(time.perf_counter() - start)
        start = time.perf_counter()
        pp, _ = kmeans_plusplus(X, k, random_state=seed)
        pp_time.append(time.perf_counter() - start)
        ours_init.append(inertia(centers))
        pp_init.append(inertia(pp))
        ours_final.append(bigclust.KMeans(k, init=centers).fit(X).inertia_)
        sk_final.append(SkKMeans(k, random_state=seed).fit(X).inertia_)
    rows.append(
        Row(
            "k-means|| init time vs scikit-learn k-means++",
            statistics.median(ours_time),
            statistics.median(pp_time),
        )
    )
    rows.append(
        Row(
            "initial inertia, k-means|| vs k-means++ (mean)",
            statistics.mean(ours_init),
            statistics.mean(pp_init),
            unit="",
        )
    )
    rows.append(
        Row(
            "final inertia after Lloyd vs scikit-learn KMeans",
            statistics.mean(ours_final),
            statistics.mean(sk_final),
            unit="",
        )
    )


def part_memory(args, rows):
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_kmeans",
        "--memory-child",
        "--n-samples",
        str(args.n_samples),
        "--n-features",
        str(args.n_features),
        "--n-clusters",
        str(args.n_clusters),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
    before, peak, nbytes = (float(v) for v in out[-3:])
    budget = 1.5 * nbytes + 200e6
    rows.append(
        Row(
            "peak RSS of a threaded fit (whole process)",
            peak,
            budget,
            unit="B",
            note=f"peer: 1.5 x data + 200 MB; before fit {format_bytes(before)}, "
            f"data {format_bytes(nbytes)}, fit added {format_bytes(peak - before)}",
        )
    )


def memory_child(args):
    X = data(args)
    init = X[: args.n_clusters].copy()
    with PeakRSS() as before:
        time.sleep(0.2)
    with dask.config.set(scheduler="threads"), PeakRSS() as during:
        bigclust.KMeans(args.n_clusters, init=init, max_iter=args.iterations, tol=0).fit(X)
    print(before.bytes, during.bytes, X.nbytes)


def part_compile(args, rows):
    with tempfile.TemporaryDirectory(prefix="bigclust-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "BIGCLUST_COMPILED": "1"}
        for state in ("empty", "warm"):
            cmd = [sys.executable, "-m", "benchmarks.bench_kmeans", "--compile-child"]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            for line in out.stdout.splitlines():
                name, first, second = line.rsplit(" ", 2)
                rows.append(
                    Row(
                        f"first {name}, fresh process, {state} numba cache",
                        float(first),
                        float(second),
                        note="peer: the second call",
                    )
                )
        # A fresh worker process: the warm cache above, as a deployed image would hold it.
        from distributed import Client, LocalCluster

        os.environ["NUMBA_CACHE_DIR"] = cache  # inherited by the worker processes
        try:
            with (
                LocalCluster(
                    n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster,
                Client(cluster) as client,
            ):
                first, second = client.submit(_time_lloyd_chunks, pure=False).result()
        finally:
            del os.environ["NUMBA_CACHE_DIR"]
        rows.append(
            Row(
                "first compiled Lloyd chunk (float32), fresh Dask worker process, warm cache",
                first,
                second,
                note="peer: the second call",
            )
        )


def _time_lloyd_chunks(dtype=np.float32):
    """Seconds of the first and the second compiled Lloyd chunk (131,072 x 32, k=64)."""
    from bigclust.cluster import _kernels as kern

    rng = np.random.default_rng(0)
    X = rng.standard_normal((131_072, 32)).astype(dtype)
    params = kern.LloydParams(X[:64].astype(np.float64), with_inertia=True)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        kern._lloyd(X, None, params, passes=kern._fused_module())
        times.append(time.perf_counter() - start)
    return times


def compile_child():
    from threadpoolctl import threadpool_limits

    from bigclust.cluster import _kernels as kern
    from bigclust.cluster import _minibatch_kernels as mbk

    threadpool_limits(1)  # as in a Dask task: the second call then times the work alone
    for dtype in (np.float32, np.float64):
        first, second = _time_lloyd_chunks(dtype)
        print(f"compiled Lloyd chunk ({np.dtype(dtype).name}) {first} {second}")
        X = np.random.default_rng(1).standard_normal((1024, 32)).astype(dtype)
        Xa, centers = mbk.augment(X), X[:64].copy()
        times = []
        for _ in range(2):
            start = time.perf_counter()
            mbk.minibatch_step(
                Xa,
                None,
                centers,
                np.ones(64),
                reassign=False,
                reassignment_ratio=0.01,
                rng=None,
                passes=kern._fused_module(),
            )
            times.append(time.perf_counter() - start)
        print(f"compiled mini-batch step ({np.dtype(dtype).name}) {times[0]} {times[1]}")
        # A fit's segment: its runs of batches go through the compiled loop of steps.
        X = np.random.default_rng(2).standard_normal((131_072, 32)).astype(dtype)
        params = mbk.FitParams(0, len(X), 1024, 10**9, 0.01, 0.0, None, None)
        piece = mbk.Piece(0, len(X), 0, 0)
        segment, _ = mbk.shuffle_segment(X, None, params, piece)
        state = mbk.FitState(X[:64].copy(), np.full(64, 1000.0))
        times = []
        for _ in range(2):
            start = time.perf_counter()
            mbk.fit_segment(segment, None, state, params, piece)
            times.append(time.perf_counter() - start)
        print(f"compiled mini-batch segment ({np.dtype(dtype).name}) {times[0]} {times[1]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=2_000_000)
    parser.add_argument("--n-features", type=int, default=32)
    parser.add_argument("--n-clusters", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts", default="lloyd,init,memory")
    parser.add_argument("--skip-dask-ml", action="store_true")
    parser.add_argument("--dtypes", default="float32", help="for lloyd, e.g. float32,float64")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lloyd-child", choices=list(LLOYD_VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.lloyd_child:
        return lloyd_child(args)
    if args.memory_child:
        return memory_child(args)
    if args.compile_child:
        return compile_child()

    X = data(args)
    print(machine())
    print(
        f"data: {X.shape[0]} x {X.shape[1]} {X.dtype} ({format_bytes(X.nbytes)}), "
        f"k={args.n_clusters}"
    )
    rows: list[Row] = []
    parts = args.parts.split(",")
    if "lloyd" in parts:
        for dtype in args.dtypes.split(","):
            part_lloyd(args, dtype, rows)
    if "init" in parts:
        part_init(args, X, rows)
    if "memory" in parts:
        part_memory(args, rows)
    if "compile" in parts:
        part_compile(args, rows)
    print_table("KMeans", rows)


if __name__ == "__main__":
    main()
