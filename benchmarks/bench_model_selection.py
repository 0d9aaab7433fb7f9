"""Ten models in shared passes against the same ten fitted one after another.

A Zarr store on local disk (zstd by default: every pass reads and decompresses every chunk).
Shared passes read (and decompress) each chunk once for all the models, and run the models'
kernels on it through their together forms (:mod:`bigclust._together`), which share only the
work that leaves every model's bits unchanged; the rest of the arithmetic stays one model's
each. They pay most where a pass is I/O-bound: a store larger than the page cache, or in
object storage. By default (when this process may, as root) the page cache is dropped before
every pass of both modes, so that every pass reads the disk as it would for such a store;
``--warm`` keeps it (compute-bound, the worst case for sharing). KMeans for k = 1..10
(k-means|| init) and GaussianMixture for k = 1..10 (diag, k-means++ init), fitted by
:func:`bigclust.model_selection.fit_together` (``--what fit``, the default) or
:func:`~bigclust.model_selection.sweep` (``--what sweep``: the fits plus the figures, i.e.
the silhouettes' or the scores' passes, which the fits one after another do not make), and
one after another; same process, same data, the results checked equal. The machine's load
average is printed before and after.

    python -m benchmarks.bench_model_selection [--n-samples 4000000] [--codec zstd] [--models gmm]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
import warnings

import dask
import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

import bigclust
from benchmarks._common import Row, machine_info, print_table, scratch
from bigclust import driver
from bigclust.datasets import make_blobs, write_zarr
from bigclust.model_selection import fit_together, sweep


def drop_page_cache() -> bool:
    with contextlib.suppress(OSError):
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    return False


def timed(fn):
    dropped = drop_page_cache()
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out, dropped


@contextlib.contextmanager
def cold_passes(enabled: bool):
    """Drop the page cache before every pass over the store (both modes alike)."""
    if not enabled:
        yield
        return
    original = driver._map_reduce_now

    def cold(*args):
        drop_page_cache()
        return original(*args)

    driver._map_reduce_now = cold
    try:
        yield
    finally:
        driver._map_reduce_now = original


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=4_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--codec", default="zstd", choices=["zstd", "none"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--warm", action="store_true", help="keep the page cache between passes")
    parser.add_argument(
        "--what", default="fit", choices=["fit", "sweep"], help="fit_together, or sweep"
    )
    parser.add_argument(
        "--models", default="kmeans,gmm", help="which sweeps: kmeans, gmm or both (comma-separated)"
    )
    args = parser.parse_args(argv)
    print(f"# bench_model_selection on {machine_info()}")
    print("# load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    warnings.simplefilter("ignore", ConvergenceWarning)
    rows = []
    cold = not args.warm and drop_page_cache()
    with (
        scratch("model-selection") as tmp,
        dask.config.set(scheduler="threads"),
        cold_passes(cold),
    ):
        path = tmp / "data.zarr"
        X, _ = make_blobs(args.n_samples, args.n_features, centers=6, random_state=0)
        write_zarr(X, path, codec=args.codec)
        ks = range(1, 11)
        cases = [
            ("KMeans k=1..10", bigclust.KMeans(random_state=0, max_iter=args.max_iter),
             {"n_clusters": ks}),
            ("GaussianMixture diag k=1..10",
             bigclust.GaussianMixture(covariance_type="diag", init_params="k-means++",
                                      max_iter=args.max_iter, random_state=0),
             {"n_components": ks}),
        ]  # fmt: skip
        wanted = {"kmeans": "KMeans", "gmm": "GaussianMixture"}
        chosen = [wanted[m.strip()] for m in args.models.split(",")]
        cases = [case for case in cases if case[0].split()[0] in chosen]
        for name, template, grid in cases:
            shared, alone = [], []

            def together(t=template, g=grid):
                if args.what == "sweep":
                    return sweep(t, g, str(path)).models
                key, values = next(iter(g.items()))
                return fit_together([clone(t).set_params(**{key: v}) for v in values], str(path))

            for _ in range(args.repeats):
                t, result, _ = timed(together)
                shared.append(t)

                def one_after_another(t=template, g=grid):
                    key, values = next(iter(g.items()))
                    return [clone(t).set_params(**{key: v}).fit(str(path))
                            for v in values]  # fmt: skip

                t, models, _ = timed(one_after_another)
                alone.append(t)
                for a, b in zip(result, models, strict=True):
                    left = getattr(a, "cluster_centers_", None)
                    left = a.means_ if left is None else left
                    right = getattr(b, "cluster_centers_", None)
                    right = b.means_ if right is None else right
                    assert np.array_equal(left, right), "shared passes changed a result"
            note = f"{args.what}, {args.codec}, {'cold every pass' if cold else 'page cache warm'}"
            rows.append(Row(name, float(np.median(shared)), float(np.median(alone)), "s", note))
    print_table(
        f"{args.n_samples:,} x {args.n_features} float32 Zarr store, medians of {args.repeats}",
        rows,
        peer_name="one after another",
    )
    print("# load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
