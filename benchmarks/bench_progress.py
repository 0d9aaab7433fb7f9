"""What progress reporting costs a fit on a distributed cluster: the bar must not slow a pass.

    python -m benchmarks.bench_progress                     # 500,000 x 32 float32, k=16
    python -m benchmarks.bench_progress --n-samples 100000 --rounds 3   # a quick look

A 20-pass KMeans fit (fixed init, ``tol=0``, ``max_iter=20``) on a LocalCluster of 2
single-thread worker processes, the data persisted on the workers once. Each round runs
every variant once, in a rotated order; a variant's figure is the median over rounds of its
time divided by the no-reporting fit's time *in the same round* (so slow drifts of a shared
machine's load cancel), with the wall and client CPU seconds (medians) beside it. The
variants:

- ``bar``: ``bigclust.set_progress(True)`` with ``verbose=0`` (what the command line shows
  on a terminal) against the same fit without it;
- ``verbose=1``: bar, INFO records (handled by a logging handler writing to a buffer) and
  the printed lines; this also computes the inertia in every pass (scikit-learn prints it),
  which is work, not reporting;
- ``verbose=2``: also a bar over the chunks of each pass (the futures of the kernel tasks).

On a loaded shared machine those ratios move by tens of percent from round to round, far
more than the 2% goal, so two exact figures follow. The bar runs only on the client, between
passes (the workers never see it), so its whole cost is the time the fit spends inside the
reporting calls: that time is summed during real fits with the bar (``share of the fit``).
And one ``pass_done`` with a bar open is timed over many calls.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import platform
import statistics
import sys
import time

import dask
import numpy as np
from threadpoolctl import threadpool_info

import bigclust
from benchmarks._common import Row, print_table
from bigclust import KMeans, _progress
from bigclust._progress import Progress
from bigclust.datasets import make_blobs


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def blas() -> str:
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i['internal_api']} {i.get('architecture', '')}".strip() for i in info)


def pass_done_cost(calls: int) -> float:
    """Seconds per ``pass_done`` with a bar open (writing to a buffer, as to a terminal)."""
    import tqdm.std

    with contextlib.redirect_stderr(io.StringIO()):
        progress = Progress("bench", 1, total=calls, rows=1_000_000)
        with bigclust.set_progress(True), progress:
            if not isinstance(progress._bar, tqdm.std.tqdm):
                raise RuntimeError("no bar was opened")
            start = time.perf_counter()
            for i in range(calls):
                progress.pass_done(i, inertia=1.0 / (i + 1), center_shift=0.5)
            seconds = time.perf_counter() - start
    return seconds / calls


def reporting_share(fit, repeat: int) -> list[float]:
    """Per fit: seconds spent inside the reporting calls over the fit's wall seconds."""
    spent = [0.0]

    def timed(function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start

        return wrapper

    patched = [(Progress, name) for name in ("__enter__", "pass_done", "__exit__")]
    patched.append((_progress, "watch_chunks"))  # the driver's check before every pass
    originals = [getattr(owner, name) for owner, name in patched]
    for (owner, name), original in zip(patched, originals, strict=True):
        setattr(owner, name, timed(original))
    shares = []
    try:
        for _ in range(repeat):
            spent[0] = 0.0
            start = time.perf_counter()
            fit()
            shares.append(spent[0] / (time.perf_counter() - start))
    finally:
        for (owner, name), original in zip(patched, originals, strict=True):
            setattr(owner, name, original)
    return shares


def _runs(values, digits=3) -> str:
    return "[" + ", ".join(f"{v:.{digits}g}" for v in values) + "]"


def paired_rounds(baseline, variants, rounds):
    """Wall and client CPU seconds of every run, and each variant's time over the baseline's
    in the same round; one warm-up round first."""
    fns = {"none": baseline, **variants}
    names = list(fns)
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for r in range(rounds + 1):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            fns[name]()
            if r:  # round 0 warms up
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    ratio = {n: [v / b for v, b in zip(wall[n], wall["none"], strict=True)] for n in variants}
    return wall, cpu, ratio


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=500_000)
    parser.add_argument("--n-features", type=int, default=32)
    parser.add_argument("--n-clusters", type=int, default=16)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    from distributed import Client, LocalCluster

    print(
        f"# bench_progress: {cpu_model()}, {os.cpu_count()} cores, BLAS {blas()}, "
        f"dask {dask.__version__}"
    )
    # The records of verbose>=1 go to a handler, as a user's logging configuration would.
    sink = logging.StreamHandler(io.StringIO())
    logging.getLogger("bigclust").addHandler(sink)
    logging.getLogger("bigclust").setLevel(logging.INFO)

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        X = make_blobs(args.n_samples, args.n_features, centers=args.n_clusters, random_state=0)[0]
        X = client.persist(X)
        init = np.asarray(X[: args.n_clusters])
        n_chunks = X.numblocks[0]

        def fit(verbose=0, bar=None):
            def run():
                km = KMeans(
                    args.n_clusters, init=init, max_iter=args.passes, tol=0.0, verbose=verbose
                )
                with bigclust.set_progress(bar), contextlib.redirect_stdout(io.StringIO()):
                    km.fit(X)
                assert km.n_iter_ == args.passes

            return run

        variants = {
            "bar (set_progress)": fit(bar=True),
            "verbose=1": fit(verbose=1),
            "verbose=2 (chunk bars)": fit(verbose=2),
        }
        wall, cpu, ratio = paired_rounds(fit(), variants, args.rounds)
        shares = reporting_share(fit(bar=True), 3)
    note = f"{args.passes} passes over {n_chunks} chunks"
    base = statistics.median(wall["none"])
    rows = [
        Row(
            "fit, no reporting",
            base,
            None,
            "s",
            f"client CPU {statistics.median(cpu['none']):.3g} s; walls {_runs(wall['none'])}",
        )
    ]
    for name in variants:
        rows.append(
            Row(
                f"fit, {name}",
                statistics.median(wall[name]),
                base,
                "s",
                f"paired ratio {statistics.median(ratio[name]):.4f}; client CPU "
                f"{statistics.median(cpu[name]):.3g} s; ratios {_runs(ratio[name], 4)}",
            )
        )
    print_table(
        f"KMeans {args.n_samples} x {args.n_features} float32, k={args.n_clusters}, "
        f"LocalCluster 2 x 1 thread (processes); {note}; {args.rounds} rounds",
        rows,
        peer_name="no reporting",
    )
    per_call = pass_done_cost(20_000)
    per_pass = base / args.passes
    print_table(
        "the bar's own time: inside real fits, and per pass_done call",
        [
            Row(
                "share of the fit (bar)",
                100 * statistics.median(shares),
                None,
                "%",
                f"time inside the reporting calls; runs {_runs([100 * x for x in shares])}",
            ),
            Row("pass_done", per_call * 1e6, None, "us"),
            Row(
                "share of one pass", 100 * per_call / per_pass, None, "%", f"pass {per_pass:.3g} s"
            ),
        ],
    )
    overhead = 100 * (statistics.median(ratio["bar (set_progress)"]) - 1)
    print(
        f"\nbar: {100 * statistics.median(shares):.3f}% of the fit spent reporting (goal < 2%); "
        f"paired wall ratio {overhead:+.1f}% (machine noise: ratios "
        f"{_runs(ratio['bar (set_progress)'], 3)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
