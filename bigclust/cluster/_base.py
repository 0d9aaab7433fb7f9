"""What every centroid estimator shares: constraints, initialization, predict, transform, score."""

from __future__ import annotations

import numbers
import warnings
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from bigclust._input import KMEANS_LABELS, Input, check_features, read_input, read_sample_weight
from bigclust._params import Interval, Options
from bigclust.cluster import _init
from bigclust.cluster import _kernels as kern
from bigclust.driver import map_reduce, map_rows, place

__all__ = ["CentroidEstimator"]


class CentroidEstimator(ClusterMixin, TransformerMixin, BaseEstimator):
    """Base of KMeans and MiniBatchKMeans: fitted ``cluster_centers_``, then one rule for
    every per-row output (NumPy for in-memory input, lazy otherwise).

    Subclasses set ``cluster_centers_`` and ``n_features_in_`` (through
    :func:`bigclust._input.record_features`) at the end of ``fit``.
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_clusters": [Interval(numbers.Integral, 1, None)],
        "init": [Options(*_init.INITS), "array-like", callable],
        "n_init": [Options("auto"), Interval(numbers.Integral, 1, None)],
        "max_iter": [Interval(numbers.Integral, 1, None)],
        "tol": [Interval(numbers.Real, 0, None)],
        "verbose": [Interval(numbers.Integral, 0, None), "boolean"],
        "random_state": ["random_state"],
    }

    #: ``n_init="auto"`` for a random init (a name other than the k-means++ family, or a
    #: callable); 1 otherwise.
    _auto_random_runs = 10

    def _n_runs(self) -> int:
        """Runs of the initialization (``n_init`` resolved as scikit-learn does)."""
        if _init.is_explicit(self.init):
            if self.n_init not in ("auto", 1):
                warnings.warn(
                    f"Explicit initial center position passed: performing only one init in "
                    f"{type(self).__name__} instead of n_init={self.n_init}.",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return 1
        if self.n_init != "auto":
            return self.n_init
        is_random = self.init == "random" or callable(self.init)
        return self._auto_random_runs if is_random else 1

    def _check_init_array(self, n_features: int) -> None:
        """Check an explicit ``init`` before any pass over the data."""
        if _init.is_explicit(self.init):
            _init.check_centers(self.init, self.n_clusters, n_features, "init")

    # -- per-row outputs ----------------------------------------------------------------------

    def _input(self, X) -> Input:
        check_is_fitted(self)
        inp = read_input(X)
        check_features(self, inp)
        return inp

    @staticmethod
    def _labels(inp: Input, centers: np.ndarray):
        return map_rows(
            kern.labels_block,
            inp.data,
            params=centers,
            dtype=KMEANS_LABELS,
            numpy_out=inp.numpy_out,
            in_memory=inp.in_memory,
        )

    @staticmethod
    def _inertia(X, weights, centers) -> float:
        """The exact inertia of the final assignment under ``centers``."""
        aligned = () if weights is None else (weights,)
        return map_reduce(
            kern.lloyd_chunk_weighted if aligned else kern.lloyd_chunk,
            X,
            *aligned,
            params=kern.LloydParams(centers, update_centers=False, with_inertia=True),
        ).inertia

    def predict(self, X):
        """Index of the nearest center for each row.

        Returns
        -------
        labels : ndarray or dask.array.Array of shape (n_samples,), int32
            NumPy for in-memory input, lazy Dask for Dask/Zarr input.
        """
        return self._labels(self._input(X), self.cluster_centers_)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X):
        """Euclidean distance from each row to each center.

        Returns
        -------
        distances : ndarray or dask.array.Array of shape (n_samples, n_clusters)
        """
        inp = self._input(X)
        return map_rows(
            kern.distances_block,
            inp.data,
            params=self.cluster_centers_,
            dtype=inp.data.dtype,
            n_columns=self.n_clusters,
            numpy_out=inp.numpy_out,
            in_memory=inp.in_memory,
        )

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit and return the distances from each row to each center."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X, y=None, sample_weight=None) -> float:
        """Opposite of the (weighted) inertia of X under the fitted centers."""
        inp = self._input(X)
        weights = read_sample_weight(sample_weight, inp)
        # Where fit's passes run: small in-memory data in this process, without a graph.
        return -self._inertia(place(inp), weights, self.cluster_centers_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
