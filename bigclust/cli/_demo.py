"""``bigclust demo``: what the library is for, in well under a minute.

KMeans and a GaussianMixture fitted on generated blobs on a local cluster; each checked
against scikit-learn on a sample of rows (the equivalent scikit-learn estimator from
``to_sklearn()`` labels and scores the same rows with scikit-learn's own code); a table of
figures; both models saved.
"""

from __future__ import annotations

import os
import tempfile
import time

import dask
import numpy as np

from bigclust.cli._outputs import UsageError, check_output
from bigclust.cli._scheduler import add_scheduler_arguments, connect
from bigclust.datasets import make_blobs

#: Rows compared with scikit-learn.
SAMPLE_ROWS = 20_000


class Demo:
    help = "the main job: KMeans and a GaussianMixture on generated blobs, checked against "
    help += "scikit-learn"

    @staticmethod
    def add_arguments(p, common):
        p.add_argument("--n-samples", type=int, default=1_000_000, help="rows generated")
        p.add_argument("--n-features", type=int, default=16, help="columns")
        p.add_argument("--centers", type=int, default=8, help="true number of blobs")
        p.add_argument("--n-clusters", type=int, default=8, help="clusters and components fitted")
        p.add_argument(
            "--covariance-type",
            choices=("full", "tied", "diag", "spherical"),
            default="diag",
            help="of the GaussianMixture",
        )
        p.add_argument("--seed", type=int, default=0, help="random seed of data and models")
        p.add_argument(
            "--model",
            metavar="DIR",
            help="save the models as DIR/kmeans and DIR/gmm (default: a new temporary directory)",
        )
        p.add_argument("--overwrite", action="store_true", help="replace existing models")
        add_scheduler_arguments(p)
        p.set_defaults(run=Demo.run)

    @staticmethod
    def run(args) -> int:
        from sklearn.metrics import adjusted_rand_score

        from bigclust import GaussianMixture, KMeans, save

        for name in ("n_samples", "n_features", "centers", "n_clusters"):
            if getattr(args, name) < 1:
                raise UsageError(
                    f"--{name.replace('_', '-')}={getattr(args, name)} should be >= 1."
                )
        root = args.model or tempfile.mkdtemp(prefix="bigclust-demo-")
        paths = {"kmeans": f"{root.rstrip('/')}/kmeans", "gmm": f"{root.rstrip('/')}/gmm"}
        if args.model:
            check_output(root, overwrite=True, storage_options={}, what="--model")
            os.makedirs(root, exist_ok=True)
            for path in paths.values():
                check_output(path, overwrite=args.overwrite, storage_options={}, what="--model")

        X, y = make_blobs(
            args.n_samples, args.n_features, centers=args.centers, random_state=args.seed
        )
        k = args.n_clusters
        models = {
            "kmeans": KMeans(k, random_state=args.seed),
            "gmm": GaussianMixture(k, covariance_type=args.covariance_type, random_state=args.seed),
        }
        rows = []
        with connect(args) as client:
            where = "threads" if client is None else f"{len(client.nthreads())} workers"
            print(
                f"generated {X.shape[0]} x {X.shape[1]} {X.dtype} blobs "
                f"({X.nbytes / 1e6:.0f} MB, {args.centers} true clusters) on {where}"
            )
            if client is not None:
                X = client.persist(X)
            sample = np.asarray(X[: min(SAMPLE_ROWS, X.shape[0])].compute())
            for name, model in models.items():
                start = time.perf_counter()
                model.fit(X)
                seconds = time.perf_counter() - start
                labels = model.labels_ if hasattr(model, "labels_") else model.predict(X)
                truth, found = dask.compute(y, labels)
                rows.append(
                    (
                        name,
                        model,
                        seconds,
                        adjusted_rand_score(truth, found),
                        *_check(model, sample),
                    )
                )
                save(model, paths[name], overwrite=args.overwrite)

        print()
        header = ("model", "iterations", "seconds", "objective", "ARI", "vs scikit-learn")
        table = [header]
        for _, model, seconds, ari, same_labels, gap, what in rows:
            objective = (
                f"inertia {model.inertia_:.6g}"
                if hasattr(model, "inertia_")
                else f"log-likelihood {model.lower_bound_:.6g}"
            )
            table.append(
                (
                    f"{type(model).__name__}({k})",
                    str(model.n_iter_),
                    f"{seconds:.1f}",
                    objective,
                    f"{ari:.4f}",
                    f"labels {same_labels:.2%} equal, {what} within {gap:.0e} (relative)",
                )
            )
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        for r in table:
            print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
        print()
        kmeans_ari = rows[0][3]
        print(f"adjusted Rand index against the true blobs: {kmeans_ari:.4f}")
        print(
            f"checked on {len(sample)} rows: scikit-learn's predict and "
            f"transform/score_samples (from to_sklearn()) agree with bigclust's"
        )
        print(
            f"models saved to {paths['kmeans']} and {paths['gmm']}; "
            f"try: bigclust info --model {paths['gmm']}"
        )
        # Per-row values agree to the data's precision: sqrt(eps) of the largest value.
        tolerance = float(np.sqrt(np.finfo(sample.dtype).eps))
        bad = [type(r[1]).__name__ for r in rows if r[4] < 1.0 or not r[5] <= tolerance]
        if bad:
            raise RuntimeError(
                f"{' and '.join(bad)} disagree with scikit-learn on {len(sample)} rows "
                f"(tolerance {tolerance:.0e})"
            )
        return 0


def _check(model, sample):
    """(fraction of equal labels, largest relative difference, what was compared) between
    bigclust and the equivalent scikit-learn estimator on ``sample``."""
    sk = model.to_sklearn()
    same = float(np.mean(sk.predict(sample) == model.predict(sample)))
    if hasattr(model, "transform"):
        ours, theirs, what = model.transform(sample), sk.transform(sample), "distances"
    else:
        ours, theirs, what = model.score_samples(sample), sk.score_samples(sample), "log-densities"
    gap = float(np.max(np.abs(ours - theirs)) / max(float(np.max(np.abs(theirs))), 1e-300))
    return same, gap, what
