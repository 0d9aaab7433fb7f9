"""Per-iteration time of GaussianMixture EM against scikit-learn, in the same process.

n=1,000,000 x d=16 float64 in memory, k=16 components, fixed initial parameters (so no
initialisation pass on either side), 5 EM iterations, for ``full`` and ``diag``:

- scikit-learn: ``fit(max_iter=5, tol=0)``, which also runs one final E-step; that E-step is
  timed separately (``score_samples`` does the same work) and subtracted,
- bigclust on the threaded scheduler, and on a LocalCluster of 2 single-thread worker
  processes (the input is persisted on the workers first, as ``fit`` does).

Worker processes are warmed up (imports) before timing; the time to persist the input on
the workers, which every ``fit`` of a NumPy array on a cluster pays, is included.

Peak memory: the highest resident set size (this process plus its children, sampled every
5 ms) above the level before the timed call.

Usage::

    PYTHONPATH=. python benchmarks/bench_gmm.py [--n-samples 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import threading
import time
import warnings

import dask
import numpy as np
import psutil


class PeakMemory:
    """Peak RSS (bytes) of this process and its children above the level at entry."""

    def __init__(self, interval=0.005):
        self.interval, self.peak = interval, 0

    @staticmethod
    def _rss():
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss() - self.base)
            time.sleep(self.interval)

    def __enter__(self):
        self.base = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss() - self.base)


def make_problem(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(k, d))
    labels = rng.integers(k, size=n)
    X = centers[labels] + rng.standard_normal((n, d))
    init = {
        "weights_init": np.full(k, 1.0 / k),
        "means_init": centers + rng.normal(scale=0.5, size=(k, d)),
    }
    return X, init


def precisions_init(covariance_type, k, d):
    return {
        "full": np.broadcast_to(np.eye(d), (k, d, d)).copy(),
        "diag": np.ones((k, d)),
    }[covariance_type]


def time_sklearn(X, kwargs, iterations):
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(max_iter=iterations, tol=0.0, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with PeakMemory() as mem:
            start = time.perf_counter()
            gm.fit(X)
            total = time.perf_counter() - start
    start = time.perf_counter()
    gm.score_samples(X)  # the final E-step's work, which fit also does
    final_e_step = time.perf_counter() - start
    return (total - final_e_step) / iterations, mem.peak, gm


def time_bigclust(X, kwargs, iterations):
    from bigclust import GaussianMixture

    gm = GaussianMixture(max_iter=iterations, tol=0.0, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with PeakMemory() as mem:
            start = time.perf_counter()
            gm.fit(X)
            total = time.perf_counter() - start
    return total / iterations, mem.peak, gm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--types", default="full,diag")
    parser.add_argument("--skip-cluster", action="store_true")
    args = parser.parse_args(argv)
    n, d, k = args.n_samples, args.n_features, args.n_components
    X, init = make_problem(n, d, k)
    print(
        f"n={n} d={d} k={k} float64 ({X.nbytes / 2**20:.0f} MiB), {args.iterations} EM "
        f"iterations, median of {args.repeats} runs, {psutil.cpu_count()} cores"
    )

    from distributed import Client, LocalCluster

    cluster = None
    if not args.skip_cluster:
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            worker_dashboard_address=None,
        )
    try:
        for ctype in args.types.split(","):
            kwargs = dict(
                n_components=k,
                covariance_type=ctype,
                **init,
                precisions_init=precisions_init(ctype, k, d),
            )
            results = {}
            # Warm up: worker processes import bigclust/scikit-learn on their first task.
            small = dict(kwargs, max_iter=1)
            if cluster is not None:
                with Client(cluster) as client, dask.config.set(scheduler=client):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        from bigclust import GaussianMixture

                        GaussianMixture(**small).fit(X[: 10 * k])
            # Interleave the runs so that load from other users of the machine hits all alike.
            for _ in range(args.repeats):
                runs = [("sklearn", time_sklearn, None), ("threads", time_bigclust, "threads")]
                if cluster is not None:
                    runs.append(("LocalCluster 2x1", time_bigclust, cluster))
                for name, fn, where in runs:
                    if where is None:
                        out = fn(X, kwargs, args.iterations)
                    elif where == "threads":
                        with dask.config.set(scheduler="threads"):
                            out = fn(X, kwargs, args.iterations)
                    else:
                        with Client(where) as client, dask.config.set(scheduler=client):
                            out = fn(X, kwargs, args.iterations)
                    results.setdefault(name, []).append(out)
            ref = results["sklearn"][-1][2]
            base = np.median([r[0] for r in results["sklearn"]])
            print(f"\ncovariance_type={ctype!r}")
            for name, runs in results.items():
                per_iter = np.median([r[0] for r in runs])
                peak = max(r[1] for r in runs) / 2**20
                gm = runs[-1][2]
                diff = np.abs(gm.means_ - ref.means_).max() / np.abs(ref.means_).max()
                print(
                    f"  {name:18s} {per_iter:7.3f} s/iteration  ratio {per_iter / base:5.2f}  "
                    f"peak +{peak:6.0f} MiB  (runs: "
                    + ", ".join(f"{r[0]:.3f}" for r in runs)
                    + f"; means vs sklearn {diff:.1e})"
                )
    finally:
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main()
