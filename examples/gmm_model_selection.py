"""Choose the number of Gaussian mixture components by BIC/AIC on a Zarr store.

Writes well-separated blobs to a Zarr array in a temporary directory (chunk by chunk, never
whole in memory), fits ``GaussianMixture`` for 1..10 components straight from the store and
prints the Bayesian and Akaike information criteria; the minimum of the BIC falls at the true
number of blobs. Every EM iteration, and every ``bic``/``aic``, is one pass over the store.

Run::

    PYTHONPATH=. python examples/gmm_model_selection.py
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from bigclust import GaussianMixture
from bigclust.datasets import make_blobs, write_zarr


def main(
    n_samples=200_000,
    n_features=8,
    true_components=5,
    max_components=10,
    covariance_type="full",
    directory=None,
    seed=0,
):
    """Fit 1..``max_components`` components to blobs in a Zarr store and return the criteria.

    Returns
    -------
    dict
        ``bic`` and ``aic`` (lists, index 0 for one component), ``best_bic`` and ``best_aic``
        (the number of components minimising each).
    """
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        X, _ = make_blobs(
            n_samples, n_features, centers=true_components, cluster_std=1.0,
            random_state=seed, chunk_rows=50_000,
        )  # fmt: skip
        path = f"{tmp}/blobs.zarr"
        write_zarr(X, path)
        bic, aic = [], []
        print(f"{n_samples} x {n_features} rows in {path}; true components: {true_components}")
        print(" k          BIC          AIC  iterations  seconds")
        for k in range(1, max_components + 1):
            start = time.perf_counter()
            # "k-means++" seeding; the default "kmeans" uses bigclust's distributed KMeans.
            gm = GaussianMixture(
                k, covariance_type=covariance_type, init_params="k-means++", random_state=seed
            ).fit(path)
            bic.append(gm.bic(path))
            aic.append(gm.aic(path))
            seconds = time.perf_counter() - start
            print(f"{k:2d} {bic[-1]:12.1f} {aic[-1]:12.1f} {gm.n_iter_:11d} {seconds:8.2f}")
    result = {
        "bic": bic,
        "aic": aic,
        "best_bic": int(np.argmin(bic)) + 1,
        "best_aic": int(np.argmin(aic)) + 1,
    }
    print(f"lowest BIC: {result['best_bic']} components; lowest AIC: {result['best_aic']}")
    return result


if __name__ == "__main__":
    main()
