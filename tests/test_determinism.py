"""Same random_state, same answer: reruns bitwise, any chunking or scheduler to 1e-9.

With ``n_init > 1``, runs that reach the same optimum differ only in their last digits (the
summation order follows the chunking); the best run is chosen ignoring differences below
rounding, so ``n_iter_`` and the label numbering do not change with the chunking.
"""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from bigclust import GaussianMixture, KMeans, MiniBatchKMeans

CHUNKINGS = (300, 701, 2000)


@pytest.fixture(scope="module")
def data():
    # Well separated: every run of n_init reaches the same optimum, so only rounding
    # separates them, the case where the choice of the best used to follow the chunking.
    X, _ = make_blobs(2000, 3, centers=3, cluster_std=0.3, random_state=1)
    return X


ESTIMATORS = {
    "kmeans": lambda: KMeans(3, init="random", n_init=4, random_state=3),
    "minibatch": lambda: MiniBatchKMeans(
        3, init="random", n_init=3, batch_size=200, random_state=3
    ),
    "gmm": lambda: GaussianMixture(3, init_params="random_from_data", n_init=4, random_state=3),
}


def _fit(make, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make().fit(X)


def _figures(est):
    centers = getattr(est, "cluster_centers_", None)
    if centers is None:
        centers = est.means_
    labels = est.labels_ if hasattr(est, "labels_") else None
    return centers, est.n_iter_, labels


@pytest.mark.parametrize("name", ESTIMATORS)
def test_any_chunking_any_scheduler_same_answer(name, data, processes):
    make = ESTIMATORS[name]
    results = []
    for rows in CHUNKINGS:
        X = da.from_array(data, chunks=(rows, 3))
        est = _fit(make, X)
        if hasattr(est, "labels_"):
            est.labels_ = np.asarray(est.labels_)
        else:
            est.labels_ = np.asarray(est.predict(X))
        results.append(_figures(est))
    with dask.config.set(scheduler="threads"):
        est = _fit(make, da.from_array(data, chunks=(CHUNKINGS[1], 3)))
    threads_centers = est.cluster_centers_ if hasattr(est, "cluster_centers_") else est.means_
    first_centers, first_iter, first_labels = results[0]
    for centers, n_iter, labels in results[1:]:
        np.testing.assert_allclose(centers, first_centers, rtol=1e-9, atol=1e-12)
        assert n_iter == first_iter
        np.testing.assert_array_equal(labels, first_labels)
    np.testing.assert_allclose(threads_centers, first_centers, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_reruns_are_bitwise_identical(name, data):
    X = da.from_array(data, chunks=(701, 3))
    a, b = _fit(ESTIMATORS[name], X), _fit(ESTIMATORS[name], X)
    for x, y in zip(_figures(a)[:2], _figures(b)[:2], strict=True):
        np.testing.assert_array_equal(x, y)
