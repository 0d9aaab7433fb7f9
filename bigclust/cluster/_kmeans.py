"""Full-batch K-Means (Lloyd) over chunked data, with scikit-learn's API and answers."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from bigclust import _random
from bigclust.cluster import _init
from bigclust.cluster import _kernels as kern
from bigclust.driver import keep_in_memory, map_blocks_lazy, map_reduce
from bigclust.io import as_dask_array, is_lazy_input

_KEY_RUNS = 31


def _returns_numpy(X: Any) -> bool:
    """Outputs follow inputs: in-memory arrays give NumPy results, stores and Dask arrays
    give lazy Dask arrays."""
    return not is_lazy_input(X)


class _CentroidEstimator(ClusterMixin, TransformerMixin, BaseEstimator):
    """What every centroid estimator shares once fitted: predict, transform, score.

    Subclasses set ``cluster_centers_``, ``n_clusters`` and ``n_features_in_``.
    """

    def _check_centers(self, centers, n_features, what) -> np.ndarray:
        if centers.dtype.kind not in "iuf":
            raise TypeError(f"{what} has dtype {centers.dtype}; expected real numbers.")
        if centers.shape != (self.n_clusters, n_features):
            raise ValueError(
                f"{what} has shape {centers.shape}; expected (n_clusters={self.n_clusters}, "
                f"n_features={n_features})."
            )
        if not np.isfinite(centers).all():
            raise ValueError(f"{what} contains NaN or infinity.")
        return centers.astype(np.float64)

    @staticmethod
    def _inertia(X, aligned, centers) -> float:
        """The final assignment's inertia, so that it matches the returned centers."""
        return map_reduce(
            kern.lloyd_chunk_weighted if aligned else kern.lloyd_chunk,
            X,
            *aligned,
            params=kern.LloydParams(centers, update_centers=False, with_inertia=True),
        ).inertia

    # -- predict ------------------------------------------------------------------------

    def _input(self, X) -> da.Array:
        check_is_fitted(self)
        data = as_dask_array(X)
        if data.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {data.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return data

    @staticmethod
    def _labels(data: da.Array, centers: np.ndarray, numpy_out: bool):
        labels = map_blocks_lazy(kern.labels_block, data, params=centers, dtype=np.int32)
        return labels.compute() if numpy_out else labels

    def predict(self, X):
        """Index of the nearest center for each row.

        Returns
        -------
        labels : ndarray or dask.array.Array of shape (n_samples,)
            NumPy for in-memory input, lazy Dask for Dask/Zarr input.
        """
        return self._labels(self._input(X), self.cluster_centers_, _returns_numpy(X))

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X):
        """Euclidean distance from each row to each center.

        Returns
        -------
        distances : ndarray or dask.array.Array of shape (n_samples, n_clusters)
        """
        data = self._input(X)
        distances = map_blocks_lazy(
            kern.distances_block,
            data,
            params=self.cluster_centers_,
            dtype=data.dtype,
            n_columns=self.n_clusters,
        )
        return distances.compute() if _returns_numpy(X) else distances

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit and return the distances from each row to each center."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X, y=None, sample_weight=None) -> float:
        """Opposite of the (weighted) inertia of X under the fitted centers."""
        data = self._input(X)
        weights = _check_sample_weight(sample_weight, data)
        aligned = () if weights is None else (weights,)
        return -self._inertia(data, aligned, self.cluster_centers_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class KMeans(_CentroidEstimator):
    """K-Means clustering by Lloyd's algorithm, one pass over chunked data per iteration.

    Gives scikit-learn's ``KMeans(algorithm="lloyd")`` answer for the same data and initial
    centers (centers, labels, inertia, ``n_iter_``) while streaming data of any size from
    NumPy, ``np.memmap``/``.npy``, Zarr or Dask inputs, on whatever Dask scheduler is active.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {"k-means||", "k-means++", "random"}, callable or array-like of shape \
            (n_clusters, n_features), default="k-means||"
        - ``"k-means||"``: scalable k-means++ (Bahmani et al. 2012): ``init_max_iter`` passes
          sampling about ``oversampling_factor * n_clusters`` candidates each, one pass to
          weight them, then weighted k-means++ and Lloyd over the candidates on the client.
        - ``"k-means++"``: scikit-learn's greedy k-means++; one pass over the data per
          center, so slow for large ``n_clusters``.
        - ``"random"``: ``n_clusters`` distinct rows (drawn by ``sample_weight``).
        - an array: the initial centers.
        - a callable ``init(X, n_clusters, random_state)`` returning the centers, where ``X``
          is the row-chunked Dask array.
    n_init : "auto" or int, default="auto"
        Runs from different initializations; the lowest inertia wins. ``"auto"``: 10 for
        ``init="random"`` or a callable, else 1.
    max_iter : int, default=300
        Maximum Lloyd iterations per run.
    tol : float, default=1e-4
        Convergence when the squared center shift summed over centers is at most
        ``tol`` times the mean per-feature variance of ``X`` (as in scikit-learn).
    verbose : int, default=0
        Print the inertia of each iteration.
    random_state : int, RandomState instance or Generator, default=None
        Seeds every random choice. The same int gives the same centers for any chunking,
        scheduler or worker count.
    oversampling_factor : float, default=2.0
        k-means|| candidates per round, as a multiple of ``n_clusters``.
    init_max_iter : int, default=None
        k-means|| rounds (passes over the data); ``None`` means 5.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Centers, in the dtype of ``X`` (float32 stays float32).
    labels_ : ndarray or dask.array.Array of shape (n_samples,)
        Index of each row's center; lazy for Dask/Zarr input.
    inertia_ : float
        Weighted sum of squared distances of rows to their centers.
    n_iter_ : int
        Lloyd iterations of the best run.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from bigclust import KMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    >>> km.predict([[0, 0], [12, 3]]).tolist() == [km.labels_[0], km.labels_[3]]
    True
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init="k-means||",
        n_init="auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        verbose: int = 0,
        random_state=None,
        oversampling_factor: float = 2.0,
        init_max_iter: int | None = None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.oversampling_factor = oversampling_factor
        self.init_max_iter = init_max_iter

    # -- validation ---------------------------------------------------------------------

    def _check_params(self, n_samples: int, n_features: int) -> None:
        def positive_int(name, value, minimum=1):
            if (
                not isinstance(value, numbers.Integral)
                or isinstance(value, bool)
                or value < minimum
            ):
                raise ValueError(f"{name}={value!r} should be an int >= {minimum}.")

        positive_int("n_clusters", self.n_clusters)
        positive_int("max_iter", self.max_iter)
        if self.n_init != "auto":
            positive_int("n_init", self.n_init)
        if self.init_max_iter is not None:
            positive_int("init_max_iter", self.init_max_iter)
        if not isinstance(self.tol, numbers.Real) or self.tol < 0:
            raise ValueError(f"tol={self.tol!r} should be a number >= 0.")
        if not isinstance(self.oversampling_factor, numbers.Real) or self.oversampling_factor <= 0:
            raise ValueError(f"oversampling_factor={self.oversampling_factor!r} should be > 0.")
        if n_samples < self.n_clusters:
            raise ValueError(f"n_samples={n_samples} should be >= n_clusters={self.n_clusters}.")
        init = self.init
        if isinstance(init, str):
            if init not in _init.INITS:
                valid = ", ".join(repr(name) for name in _init.INITS)
                raise ValueError(f"unknown init {init!r}; valid: {valid}, an array or a callable.")
        elif not callable(init):
            self._init_array = self._check_centers(np.asarray(init), n_features, "init")

    def _n_runs(self) -> int:
        if self.n_init != "auto":
            if not isinstance(self.init, str) and not callable(self.init) and self.n_init != 1:
                warnings.warn(
                    f"Explicit initial center position passed: performing only one init in "
                    f"{type(self).__name__} instead of n_init={self.n_init}.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return 1
            return self.n_init
        is_random = isinstance(self.init, str) and self.init == "random"
        return 10 if (is_random or callable(self.init)) else 1

    # -- fit ----------------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None):
        """Compute k-means clustering.

        Parameters
        ----------
        X : array-like, np.memmap, str, zarr.Array or dask.array.Array of shape \
                (n_samples, n_features)
            Training data; anything :func:`bigclust.as_dask_array` takes.
        y : Ignored
        sample_weight : array-like or dask.array.Array of shape (n_samples,), default=None
            Non-negative weight of each row.

        Returns
        -------
        self : KMeans
        """
        data = as_dask_array(X)
        data = keep_in_memory(data, X)
        n_samples, n_features = data.shape
        self._check_params(n_samples, n_features)
        weights = _check_sample_weight(sample_weight, data)
        aligned = () if weights is None else (weights,)
        seed = _random.seed_from(self.random_state)

        best = None
        self._tol = None  # variance-scaled tol, computed by the first pass of the first run
        for run in range(self._n_runs()):
            run_seed = int(_random.generator(seed, _KEY_RUNS, run).integers(2**62))
            # Centers stay float64 between iterations whatever the data dtype: float32 centers
            # far from the origin cannot even represent the mean to the data's precision.
            centers = self._initial_centers(data, weights, run_seed).astype(np.float64)
            if data.dtype == np.float32:  # but start from what a float32 init would be
                centers = centers.astype(np.float32).astype(np.float64)
            result = self._lloyd(data, aligned, centers)
            if best is None or result[1] < best[1]:
                best = result
        centers, inertia, n_iter = best

        distinct = len(np.unique(centers, axis=0))
        if distinct < self.n_clusters:
            warnings.warn(
                f"Number of distinct clusters ({distinct}) found smaller than "
                f"n_clusters ({self.n_clusters}). Possibly due to duplicate points in X.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.cluster_centers_ = centers.astype(data.dtype)
        self.inertia_ = float(inertia)
        self.n_iter_ = n_iter
        self.n_features_in_ = n_features
        # The final assignment uses the float64 centers that the inertia was computed with.
        self.labels_ = self._labels(data, centers, _returns_numpy(X))
        return self

    def _initial_centers(self, X, weights, seed) -> np.ndarray:
        init = self.init
        if isinstance(init, str):
            if init == "k-means||":
                return _init.kmeans_parallel(
                    X,
                    self.n_clusters,
                    weights,
                    seed,
                    oversampling_factor=self.oversampling_factor,
                    n_rounds=self.init_max_iter,
                )
            if init == "k-means++":
                return _init.kmeans_plusplus_greedy(X, self.n_clusters, weights, seed)
            return _init.random_init(X, self.n_clusters, weights, seed)
        if callable(init):
            centers = np.asarray(init(X, self.n_clusters, np.random.RandomState(seed % 2**32)))
            return self._check_centers(centers, X.shape[1], "the centers returned by init")
        return self._init_array

    def _lloyd(self, X, aligned, centers):
        """One run of Lloyd's algorithm; returns (centers, inertia, n_iter)."""
        for i in range(self.max_iter):
            params = kern.LloydParams(centers, with_inertia=bool(self.verbose))
            if self._tol is None:
                shift = centers.astype(np.float64).mean(axis=0)
                stats, moments = map_reduce(
                    kern.lloyd_and_moments_chunk, X, *aligned, params=(params, shift)
                )
                self._tol = float(np.mean(moments.variance()) * self.tol) if self.tol else 0.0
            else:
                chunk_kernel = kern.lloyd_chunk_weighted if aligned else kern.lloyd_chunk
                stats = map_reduce(chunk_kernel, X, *aligned, params=params)
            if self.verbose:
                print(f"Iteration {i}, inertia {stats.inertia}.")
            new_centers = self._new_centers(stats, centers, X, aligned)
            center_shift = float(((new_centers - centers) ** 2).sum())
            centers = new_centers
            if center_shift == 0:  # labels unchanged: scikit-learn's strict convergence
                if self.verbose:
                    print(f"Converged at iteration {i}: strict convergence.")
                break
            if center_shift <= self._tol:
                if self.verbose:
                    print(
                        f"Converged at iteration {i}: center shift {center_shift} within "
                        f"tolerance {self._tol}."
                    )
                break
        return centers, self._inertia(X, aligned, centers), i + 1

    def _new_centers(self, stats, centers, X, aligned) -> np.ndarray:
        """Average the sums; relocate empty clusters as scikit-learn does: each empty cluster
        takes one of the rows farthest from their (previous) centers."""
        sums, weights = stats.sums.copy(), stats.weights.copy()
        empty = np.flatnonzero(weights == 0)
        if empty.size:
            far = map_reduce(kern.farthest_chunk, X, *aligned, params=(centers, len(empty)))
            if far.distances.max() > 0:
                for cluster, label, w, point in zip(
                    empty, far.labels, far.weights, far.points, strict=False
                ):
                    sums[label] -= point * w
                    sums[cluster] = point * w
                    weights[cluster] = w
                    weights[label] -= w
        new = np.empty_like(sums)
        filled = weights > 0
        new[filled] = sums[filled] / weights[filled, None]
        # Clusters still empty (all rows on their centers): at the largest cluster, not at 0.
        new[~filled] = new[np.argmax(weights)]
        return new


def _check_sample_weight(sample_weight, X: da.Array) -> da.Array | None:
    """Validate ``sample_weight`` from metadata, and its values with one small pass."""
    if sample_weight is None:
        return None
    n = X.shape[0]
    if np.isscalar(sample_weight):
        weights = np.full(n, float(sample_weight))
    elif isinstance(sample_weight, da.Array):
        weights = sample_weight
    else:
        try:
            weights = np.asarray(sample_weight, dtype=np.float64)
        except (ValueError, TypeError) as err:
            raise ValueError(f"sample_weight is not a 1-D array of numbers: {err}") from None
    if weights.ndim != 1 or weights.shape[0] != n:
        raise ValueError(
            f"sample_weight has shape {weights.shape}; expected ({n},), one weight per sample."
        )
    if isinstance(weights, np.ndarray):
        _check_weight_values(weights.min(), weights.max(), np.isfinite(weights).all())
        return da.from_array(weights, chunks=(X.chunks[0],))
    weights = weights.astype(np.float64).rechunk((X.chunks[0],))
    _check_weight_values(*da.compute(weights.min(), weights.max(), da.isfinite(weights).all()))
    return weights


def _check_weight_values(lowest, highest, finite):
    if not finite:
        raise ValueError("sample_weight contains NaN or infinity.")
    if lowest < 0:
        raise ValueError(f"sample_weight has negative values (minimum {lowest}).")
    if highest == 0:
        raise ValueError("sample_weight is all zero: at least one weight must be positive.")
