"""Per-iteration time of BayesianGaussianMixture against scikit-learn, in the same process.

n=1,000,000 x d=16 float64 in memory, k=16 components, ``full`` and ``diag``, both sides
started from the same initial responsibilities (one-hot to the nearest of perturbed true
centers; scikit-learn's ``_initialize_parameters`` is overridden to use them, ours takes them
as ``init_params=<array>``). The time of one iteration is ``(T(m) - T(0)) / m``, with
``T(m)`` the wall time of ``fit(max_iter=m, tol=0)``: both fits pay the same priors,
initialisation (and, for scikit-learn, its final E-step), so the difference is ``m``
iterations exactly. bigclust runs on the threaded scheduler (one BLAS thread per task);
scikit-learn with its default BLAS threads and, as a second peer, with one BLAS thread (on a
busy machine OpenBLAS's spinning threads slow its many small products; one thread shows
what is left). scikit-learn's runs come first, all of them, then bigclust's (OpenMP peers
are not interleaved call by call).

Peak memory: the highest resident set size of this process (sampled every 20 ms) above the
level before ``fit(max_iter=m)``, the data and the initial responsibilities already
allocated.

Usage::

    PYTHONPATH=. python benchmarks/bench_bgmm.py [--n-samples 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import dask
import numpy as np
import psutil
from threadpoolctl import threadpool_info, threadpool_limits

from benchmarks._common import PeakRSS, Row, format_bytes, print_table


def make_problem(n, d, k, seed=0):
    """Blobs, and one-hot initial responsibilities to the nearest perturbed center."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(k, d))
    X = centers[rng.integers(k, size=n)] + rng.standard_normal((n, d))
    start = centers + rng.normal(scale=2.0, size=(k, d))
    resp = np.zeros((n, k))
    for lo in range(0, n, 65536):
        block = X[lo : lo + 65536]
        scores = (start**2).sum(axis=1) - 2.0 * block @ start.T
        resp[lo + np.arange(block.shape[0]), scores.argmin(axis=1)] = 1.0
    return X, resp


def _sklearn(resp, **kwargs):
    from sklearn.mixture import BayesianGaussianMixture

    class FromResp(BayesianGaussianMixture):
        def _initialize_parameters(self, X, random_state, xp=None):
            self._initialize(X, resp)

    return FromResp(**kwargs)


def _bigclust(resp, **kwargs):
    from bigclust import BayesianGaussianMixture

    return BayesianGaussianMixture(init_params=resp, **kwargs)


def fit_seconds(make, X, resp, kwargs, max_iter):
    model = make(resp, max_iter=max_iter, tol=0.0, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with PeakRSS() as peak:
            base = peak.bytes
            start = time.perf_counter()
            model.fit(X)
            seconds = time.perf_counter() - start
    return seconds, peak.bytes - base, model


def per_iteration(make, X, resp, kwargs, iterations, repeats):
    """Median seconds per iteration over ``repeats`` pairs of fits, peak memory, model."""
    fit_seconds(make, X[:2000], resp[:2000], kwargs, 1)  # warm up: imports, thread pools
    times, peaks, model = [], [], None
    for _ in range(repeats):
        t0, _, _ = fit_seconds(make, X, resp, kwargs, 0)
        tm, peak, model = fit_seconds(make, X, resp, kwargs, iterations)
        times.append((tm - t0) / iterations)
        peaks.append(peak)
    return times, max(peaks), model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--types", default="full,diag")
    parser.add_argument(
        "--no-one-thread", action="store_true", help="skip scikit-learn with one BLAS thread"
    )
    args = parser.parse_args(argv)
    n, d, k = args.n_samples, args.n_features, args.n_components
    X, resp = make_problem(n, d, k)
    blas = ", ".join(
        f"{i['internal_api']} {i.get('architecture', '')} x{i['num_threads']}"
        for i in threadpool_info()
    )
    print(
        f"n={n} d={d} k={k} float64 ({X.nbytes / 2**20:.0f} MiB, responsibilities "
        f"{resp.nbytes / 2**20:.0f} MiB), {args.iterations} iterations, median of "
        f"{args.repeats}; {psutil.cpu_count()} cores; BLAS: {blas}"
    )
    for ctype in args.types.split(","):
        kwargs = dict(n_components=k, covariance_type=ctype)
        sk_times, sk_peak, sk = per_iteration(
            _sklearn, X, resp, kwargs, args.iterations, args.repeats
        )
        sk1_times = None
        if not args.no_one_thread:
            with threadpool_limits(1):
                sk1_times, _, _ = per_iteration(
                    _sklearn, X, resp, kwargs, args.iterations, args.repeats
                )
        with dask.config.set(scheduler="threads"):
            bc_times, bc_peak, bc = per_iteration(
                _bigclust, X, resp, kwargs, args.iterations, args.repeats
            )
        diff = np.abs(bc.means_ - sk.means_).max() / np.abs(sk.means_).max()
        lb = abs(bc.lower_bound_ - float(np.squeeze(sk.lower_bound_))) / abs(sk.lower_bound_)
        rows = [_time_row("s / iteration", bc_times, sk_times)]
        if sk1_times is not None:
            rows.append(_time_row("s / iteration, 1 BLAS thread peer", bc_times, sk1_times))
        rows.append(
            Row(
                "peak RSS above data",
                bc_peak,
                sk_peak,
                "B",
                f"{format_bytes(bc_peak)} vs {format_bytes(sk_peak)}",
            )
        )
        print_table(
            f"covariance_type={ctype!r} (means vs scikit-learn {diff:.1e}, lower bound "
            f"{float(lb):.1e})",
            rows,
            peer_name="scikit-learn",
        )


def _time_row(name, ours, peer):
    runs = ", ".join(f"{t:.3f}" for t in ours) + " vs " + ", ".join(f"{t:.3f}" for t in peer)
    return Row(name, statistics.median(ours), statistics.median(peer), "s", f"runs {runs}")


if __name__ == "__main__":
    main()
