"""Gaussian mixtures fitted by distributed EM: one pass over the data per iteration.

The estimator mirrors :class:`sklearn.mixture.GaussianMixture`. :class:`BaseMixture` owns the
EM loop (``n_init``, convergence, warnings, verbose output); :class:`GaussianMixture` supplies
the initialisation, the E-step pass (a map-reduce of :func:`_kernels.e_step_stats`) and the
M-step (a dict of pure functions, one per covariance type, run on the driver).
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from abc import ABCMeta, abstractmethod
from time import time

import dask.array as da
import numpy as np
from scipy.linalg import solve_triangular
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from bigclust import _random
from bigclust.cluster import KMeans
from bigclust.cluster._init import kmeans_plusplus_greedy
from bigclust.driver import NonFiniteInputError, keep_in_memory, map_blocks_lazy, map_reduce
from bigclust.io import as_dask_array, is_lazy_input
from bigclust.mixture import _kernels
from bigclust.mixture._kernels import COVARIANCE_TYPES, GaussianStats, InitResp

__all__ = ["BaseMixture", "GaussianMixture"]

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")

# Keys of the random streams derived from random_state (see bigclust._random).
_KEY_RANDOM, _KEY_FROM_DATA, _KEY_KMEANSPP, _KEY_KMEANS, _KEY_SAMPLE = 11, 12, 13, 14, 15


# --------------------------------------------------------------------------------------------
# Input handling


def _prepare(estimator, X, *, reset: bool, min_samples: int = 1):
    """Validate ``X`` from metadata and return ``(dask array, in-memory ndarray or None)``.

    In-memory inputs (arrays, lists, DataFrames) go through scikit-learn's public
    ``validate_data`` (feature names, ``n_features_in_``, messages), without its NaN scan: the
    first pass over the data finds NaN/inf and names the row. Stores and Dask arrays are only
    inspected through their metadata.
    """
    if is_lazy_input(X) or isinstance(X, np.memmap):
        Xd = as_dask_array(X)
        n_samples, n_features = Xd.shape
        if reset:
            estimator.n_features_in_ = n_features
            if hasattr(estimator, "feature_names_in_"):
                del estimator.feature_names_in_
        elif n_features != estimator.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {type(estimator).__name__} is expecting "
                f"{estimator.n_features_in_} features as input."
            )
        if n_samples < min_samples:
            raise ValueError(
                f"Found array with n_samples={n_samples} while a minimum of {min_samples} is "
                "required."
            )
        return Xd, None
    X = validate_data(
        estimator,
        X,
        reset=reset,
        dtype=[np.float64, np.float32],
        ensure_all_finite=False,
        ensure_min_samples=min_samples,
    )
    return as_dask_array(X), X


def _raise_if_nonfinite(suspects: np.ndarray, X: np.ndarray, what: str = "X"):
    """If any of ``suspects`` (rows of ``X``) is non-finite, raise naming the first such row
    of ``X``."""
    if np.isfinite(suspects).all():
        return
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad.size:
        raise NonFiniteInputError(what, int(bad[0]), (0, X.shape[0]))


def _row_blocks(n_rows: int, rows: int = 1 << 16):
    for lo in range(0, n_rows, rows):
        yield lo, min(n_rows, lo + rows)


# --------------------------------------------------------------------------------------------
# Parameter checks (before any pass over the data)


def _check_weights(weights, n_components):
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_components,):
        raise ValueError(
            f"The parameter 'weights' should have the shape of ({n_components},), but got "
            f"{weights.shape}"
        )
    if not np.isfinite(weights).all() or (weights < 0).any() or (weights > 1).any():
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got max value "
            f"{weights.max():.5f}, min value {weights.min():.5f}"
        )
    if not np.isclose(weights.sum(), 1.0, rtol=0.0, atol=1e-6):
        raise ValueError(
            f"The parameter 'weights' should be normalized, but got sum(weights) = "
            f"{weights.sum():.5f}"
        )
    return weights


def _check_means(means, n_components, n_features):
    means = np.asarray(means, dtype=np.float64)
    if means.shape != (n_components, n_features):
        raise ValueError(
            f"The parameter 'means' should have the shape of ({n_components}, {n_features}), "
            f"but got {means.shape}"
        )
    if not np.isfinite(means).all():
        raise ValueError("The parameter 'means' contains NaN or infinity.")
    return means


def _precision_shape(covariance_type, k, d):
    return {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[covariance_type]


def _check_precisions(precisions, covariance_type, k, d):
    precisions = np.asarray(precisions, dtype=np.float64)
    shape = _precision_shape(covariance_type, k, d)
    if precisions.shape != shape:
        raise ValueError(
            f"The parameter '{covariance_type} precision' should have the shape of {shape}, "
            f"but got {precisions.shape}"
        )
    if not np.isfinite(precisions).all():
        raise ValueError(f"'{covariance_type} precision' contains NaN or infinity.")
    if covariance_type in ("full", "tied"):
        matrices = precisions.reshape(-1, d, d)
        for i, matrix in enumerate(matrices):
            symmetric = np.allclose(matrix, matrix.T)
            if not symmetric or np.linalg.eigvalsh(matrix).min() <= 0.0:
                where = f" (component {i})" if covariance_type == "full" else ""
                raise ValueError(
                    f"'{covariance_type} precision' should be symmetric, positive-definite{where}."
                )
    elif (precisions <= 0.0).any():
        raise ValueError(f"'{covariance_type} precision' should be positive")
    return precisions


# --------------------------------------------------------------------------------------------
# M-step: pure functions of the statistics, one per covariance type (driver side, float64)


def _covariances_full(stats: GaussianStats, nk, m, reg_covar):
    # sum_i r_ik (y_i - m_k)(y_i - m_k)^T, expanded exactly around the shift.
    first, n = stats.first, stats.resp_sum
    cov = stats.second - first[:, :, None] * m[:, None, :] - m[:, :, None] * first[:, None, :]
    cov += n[:, None, None] * m[:, :, None] * m[:, None, :]
    cov /= nk[:, None, None]
    d = m.shape[1]
    cov[:, np.arange(d), np.arange(d)] += reg_covar
    return cov


def _covariances_tied(stats: GaussianStats, nk, m, reg_covar):
    cov = stats.second - np.einsum("k,ki,kj->ij", nk, m, m)
    cov /= nk.sum()
    cov[np.diag_indices_from(cov)] += reg_covar
    return cov


def _covariances_diag(stats: GaussianStats, nk, m, reg_covar):
    return stats.second / nk[:, None] - m**2 + reg_covar


def _covariances_spherical(stats: GaussianStats, nk, m, reg_covar):
    d = m.shape[1]
    return (stats.second / nk - (m**2).sum(axis=1)) / d + reg_covar


_COVARIANCES = {
    "full": _covariances_full,
    "tied": _covariances_tied,
    "diag": _covariances_diag,
    "spherical": _covariances_spherical,
}


def _estimate_parameters(stats: GaussianStats, shift, reg_covar, covariance_type, eps):
    """``(nk, means, covariances)`` from statistics taken around ``shift``.

    Follows scikit-learn's formulas applied to the shifted data (``nk = N_k + 10 eps``), so
    the result does not depend on where the data sit.
    """
    nk = stats.resp_sum + 10 * eps
    m = stats.first / nk[:, None]
    covariances = _COVARIANCES[covariance_type](stats, nk, m, reg_covar)
    return nk, shift + m, covariances


def _singular_message(float32: bool) -> str:
    message = (
        "Fitting the mixture model failed because some components have ill-defined empirical "
        "covariance (for instance caused by singleton or collapsed samples). Try to decrease "
        "the number of components, increase reg_covar, or scale the input data."
    )
    if float32:
        message += (
            " The numerical accuracy can also be improved by passing float64 data instead of "
            "float32."
        )
    return message


def _precision_cholesky(covariances, covariance_type, float32=False):
    """Upper-triangular ``U`` with ``precision = U U^T`` (scikit-learn's layout)."""
    if covariance_type in ("full", "tied"):
        try:
            chol = np.linalg.cholesky(covariances)  # lower triangular, stacked for "full"
        except np.linalg.LinAlgError:
            raise ValueError(_singular_message(float32)) from None
        # U = L^{-T}: batched, and much cheaper per call than scipy's solve_triangular for the
        # small matrices of a mixture; triu drops rounding noise where U is exactly zero.
        return np.triu(np.swapaxes(np.linalg.inv(chol), -1, -2))
    if (covariances <= 0.0).any() or not np.isfinite(covariances).all():
        raise ValueError(_singular_message(float32))
    return 1.0 / np.sqrt(covariances)


def _precision_cholesky_from_precisions(precisions, covariance_type):
    """``U`` upper triangular with ``P = U U^T``: ``J chol(J P J) J`` with ``J`` the flip."""
    if covariance_type in ("full", "tied"):
        flipped = precisions[..., ::-1, ::-1]
        return np.linalg.cholesky(flipped)[..., ::-1, ::-1].copy()
    return np.sqrt(precisions)


def _covariances_from_precisions(precisions, covariance_type):
    """So that ``covariances_`` exists even when ``max_iter=0`` with ``precisions_init``."""
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(precisions)
    return 1.0 / precisions


def _precisions_from_cholesky(precisions_chol, covariance_type):
    if covariance_type == "full":
        return precisions_chol @ np.swapaxes(precisions_chol, 1, 2)
    if covariance_type == "tied":
        return precisions_chol @ precisions_chol.T
    return precisions_chol**2


# --------------------------------------------------------------------------------------------
# Initialisation helpers


def _kmeans_centers(X: da.Array, n_components: int, seed: int) -> np.ndarray:
    """Centers of one run of bigclust's KMeans with k-means|| seeding; the responsibilities
    are then one-hot to the nearest center (its labels), as scikit-learn's "kmeans" init."""
    km = KMeans(n_clusters=n_components, init="k-means||", n_init=1, random_state=seed)
    return np.asarray(km.fit(X).cluster_centers_, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# The template: the EM loop


class BaseMixture(DensityMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of mixture models fitted by EM over chunked data.

    Owns the loop, ``n_init``, ``warm_start``, convergence, warnings and verbose output.
    Subclasses implement ``_check_parameters``, ``_initialize_parameters``, ``_e_step_pass``
    (one pass: statistics and summed log-likelihood), ``_m_step``, ``_get_parameters``,
    ``_set_parameters`` and the per-row kernels.
    """

    def __init__(
        self,
        n_components,
        tol,
        reg_covar,
        max_iter,
        n_init,
        init_params,
        random_state,
        warm_start,
        verbose,
        verbose_interval,
    ):
        self.n_components = n_components
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    # -- parameter validation ----------------------------------------------------------------

    def _validate_params(self):
        def integer(name, low):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}={value!r} should be an integer >= {low}.")

        def real(name):
            value = getattr(self, name)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if not ok or not value >= 0.0:
                raise ValueError(f"{name}={value!r} should be a real number >= 0.")

        integer("n_components", 1)
        integer("max_iter", 0)
        integer("n_init", 1)
        integer("verbose_interval", 1)
        real("tol")
        real("reg_covar")
        if self.init_params not in INIT_PARAMS:
            raise ValueError(
                f"unknown init_params {self.init_params!r}; valid: "
                + ", ".join(map(repr, INIT_PARAMS))
            )
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise ValueError(f"warm_start={self.warm_start!r} should be a boolean.")
        _random.seed_from(0 if self.random_state is None else self.random_state)

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Estimate the model parameters with the EM algorithm.

        The model is fitted ``n_init`` times and the parameters with the largest
        log-likelihood are kept. Each EM iteration is one pass over ``X``; iterations stop
        when the change of the per-sample log-likelihood is below ``tol`` or after
        ``max_iter``, in which case a ``ConvergenceWarning`` is raised.

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)
            Training data: in memory, a Dask array, a Zarr array or the path/URL of one.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted mixture.
        """
        self._validate_params()
        Xd, source = _prepare(self, X, reset=True, min_samples=2)
        n_samples, n_features = Xd.shape
        if n_samples < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {self.n_components}, n_samples = {n_samples}"
            )
        self._dtype = Xd.dtype
        self._check_parameters(n_features)
        Xd = keep_in_memory(Xd, source)
        self._em(Xd)
        return self

    def _em(self, X: da.Array):
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        seed = _random.seed_from(self.random_state)
        n_samples = X.shape[0]

        max_lower_bound = -np.inf
        best_params, best_n_iter, best_lower_bounds = None, 0, []
        self.converged_ = False
        for init in range(n_init):
            self._print_verbose_msg_init_beg(init)
            if do_init:
                self._initialize_parameters(X, seed, init)
            lower_bound = -np.inf if do_init else self.lower_bound_
            current_lower_bounds = []
            if self.max_iter == 0:
                best_params, best_n_iter = self._get_parameters(), 0
                continue
            converged = False
            for n_iter in range(1, self.max_iter + 1):
                prev_lower_bound = lower_bound
                stats = self._e_step_pass(X)
                lower_bound = stats.log_likelihood / n_samples
                self._m_step(stats)
                current_lower_bounds.append(lower_bound)
                change = lower_bound - prev_lower_bound
                self._print_verbose_msg_iter_end(n_iter, change)
                if abs(change) < self.tol:
                    converged = True
                    break
            self._print_verbose_msg_init_end(lower_bound, converged)
            if lower_bound > max_lower_bound or max_lower_bound == -np.inf:
                max_lower_bound = lower_bound
                best_params = self._get_parameters()
                best_n_iter = n_iter
                best_lower_bounds = current_lower_bounds
                self.converged_ = converged

        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._set_parameters(best_params)
        self.n_iter_ = best_n_iter
        self.lower_bound_ = max_lower_bound
        self.lower_bounds_ = best_lower_bounds

    def fit_predict(self, X, y=None):
        """Fit the model and return the most probable component of every sample of ``X``.

        Equivalent to ``fit(X).predict(X)``: the labels come from a final E-step with the
        returned parameters, as in scikit-learn.

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        labels : ndarray or dask.array.Array of shape (n_samples,)
            NumPy for in-memory input, a lazy Dask array otherwise.
        """
        return self.fit(X).predict(X)

    # -- per-row outputs -----------------------------------------------------------------------

    def _rowwise(self, X, kernel, params, dtype, n_columns):
        """Per-row output: lazy over chunks for lazy input, computed in row blocks for
        in-memory input (where a NaN/inf row raises, naming the row)."""
        check_is_fitted(self)
        Xd, source = _prepare(self, X, reset=False)
        if source is None:
            return map_blocks_lazy(kernel, Xd, params=params, dtype=dtype, n_columns=n_columns)
        parts = [kernel(source[lo:hi], params) for lo, hi in _row_blocks(source.shape[0])]
        out = np.concatenate(parts)
        bad = ~np.isfinite(out) if out.dtype.kind == "f" else out < 0
        if bad.ndim == 2:
            bad = bad.any(axis=1)
        if bad.any():
            _raise_if_nonfinite(source[bad], source)
        return out

    def predict(self, X):
        """Most probable component of every sample.

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray or dask.array.Array of shape (n_samples,), int64
            NumPy for in-memory input, a lazy Dask array otherwise.
        """
        return self._rowwise(X, _kernels.predict_block, self._model(), np.int64, None)

    def predict_proba(self, X):
        """Posterior probability of each component for every sample.

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)

        Returns
        -------
        resp : ndarray or dask.array.Array of shape (n_samples, n_components)
        """
        params = (self._model(), self._dtype)
        return self._rowwise(
            X, _kernels.predict_proba_block, params, self._dtype, self.n_components
        )

    def score_samples(self, X):
        """Log-likelihood of every sample under the model.

        For a Zarr or Dask input the result is a lazy Dask array: a density threshold (e.g.
        the 2nd percentile for anomaly detection) can be computed from it without bringing
        the scores to the client, with :func:`bigclust.mixture.percentile`.

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray or dask.array.Array of shape (n_samples,)
        """
        params = (self._model(), self._dtype)
        return self._rowwise(X, _kernels.score_samples_block, params, self._dtype, None)

    def score(self, X, y=None):
        """Mean log-likelihood of the samples of ``X`` (one pass; no per-row output kept).

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        log_likelihood : float
        """
        check_is_fitted(self)
        Xd, source = _prepare(self, X, reset=False)
        model = self._model()
        if source is not None:
            total = 0.0
            for lo, hi in _row_blocks(source.shape[0]):
                value = _kernels.log_prob_sum(source[lo:hi], model)
                if not np.isfinite(value):
                    _raise_if_nonfinite(source[lo:hi], source)
                total += value
            return total / source.shape[0]
        return map_reduce(_kernels.log_prob_sum, Xd, params=model) / Xd.shape[0]

    # -- verbose output ------------------------------------------------------------------------

    def _print_verbose_msg_init_beg(self, n_init):
        if self.verbose >= 1:
            print(f"Initialization {n_init}")
            self._init_prev_time = self._iter_prev_time = time()

    def _print_verbose_msg_iter_end(self, n_iter, diff_ll):
        if n_iter % self.verbose_interval == 0:
            if self.verbose == 1:
                print(f"  Iteration {n_iter}")
            elif self.verbose >= 2:
                now = time()
                print(
                    f"  Iteration {n_iter}\t time lapse {now - self._iter_prev_time:.5f}s\t "
                    f"ll change {diff_ll:.5f}"
                )
                self._iter_prev_time = now

    def _print_verbose_msg_init_end(self, lb, converged):
        message = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {message}.")
        elif self.verbose >= 2:
            lapse = time() - self._init_prev_time
            print(f"Initialization {message}. time lapse {lapse:.5f}s\t lower bound {lb:.5f}.")

    # -- what a model supplies -----------------------------------------------------------------

    @abstractmethod
    def _check_parameters(self, n_features): ...

    @abstractmethod
    def _initialize_parameters(self, X: da.Array, seed: int, init: int): ...

    @abstractmethod
    def _e_step_pass(self, X: da.Array) -> GaussianStats: ...

    @abstractmethod
    def _m_step(self, stats: GaussianStats): ...

    @abstractmethod
    def _model(self): ...

    @abstractmethod
    def _get_parameters(self): ...

    @abstractmethod
    def _set_parameters(self, params): ...


class GaussianMixture(BaseMixture):
    """Gaussian mixture fitted by EM on data of any size, with scikit-learn's API.

    Every EM iteration is one pass over the data: each chunk's E-step (in log space, through
    the Cholesky factors of the precisions) returns the sufficient statistics, a tree
    reduction adds them in float64 and the M-step runs on the driver. Moments are taken
    around the mixture mean so data far from the origin keep their precision. With the same
    initial parameters, results match :class:`sklearn.mixture.GaussianMixture`.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Form of the covariance matrices.
    tol : float, default=1e-3
        Convergence threshold on the change of the mean log-likelihood per sample.
    reg_covar : float, default=1e-6
        Added to the diagonal of the covariances, keeping them positive-definite.
    max_iter : int, default=100
        Number of EM iterations (passes over the data) per initialisation.
    n_init : int, default=1
        Number of initialisations; the best result is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How initial responsibilities are chosen: labels of bigclust's distributed
        :class:`~bigclust.cluster.KMeans` (k-means|| seeding), one-hot at rows chosen by
        k-means++ or uniformly at random, or random responsibilities. Each costs one pass
        (plus the KMeans fit, or one pass per component for k-means++). Skipped when
        ``weights_init``, ``means_init`` and ``precisions_init`` are all given.
    weights_init : array-like of shape (n_components,), default=None
        Initial weights.
    means_init : array-like of shape (n_components, n_features), default=None
        Initial means.
    precisions_init : array-like, default=None
        Initial precisions (inverse covariances); shape (n_components, n_features,
        n_features) for "full", (n_features, n_features) for "tied", (n_components,
        n_features) for "diag", (n_components,) for "spherical".
    random_state : int, RandomState instance or Generator, default=None
        Seeds the initialisation and :meth:`sample`. Random numbers attached to rows come
        from streams keyed by the row index, so results do not depend on the chunking.
    warm_start : bool, default=False
        Start the next ``fit`` from the current parameters (``n_init`` is then ignored).
    verbose : int, default=0
        Print progress: 1 per initialisation, 2 also per ``verbose_interval`` iterations.
    verbose_interval : int, default=10
        Iterations between two progress messages.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        Shape as ``precisions_init`` for the covariance type.
    precisions_ : ndarray
    precisions_cholesky_ : ndarray
        Upper-triangular ``U`` with ``precisions_ = U U^T`` (scikit-learn's layout).
    converged_ : bool
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        Mean log-likelihood per sample of the best initialisation (at its last E-step).
    lower_bounds_ : list of float
        ``lower_bound_`` after every iteration of the best initialisation.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from bigclust import GaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=float)
    >>> gm = GaussianMixture(2, init_params="k-means++", random_state=0).fit(X)
    >>> sorted(np.round(gm.means_[:, 0], 3).tolist())
    [1.0, 10.0]
    >>> gm.predict(np.array([[0.0, 0.0], [12.0, 3.0]])).tolist() == gm.predict(X[[0, 3]]).tolist()
    True
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
    ):
        super().__init__(
            n_components=n_components,
            tol=tol,
            reg_covar=reg_covar,
            max_iter=max_iter,
            n_init=n_init,
            init_params=init_params,
            random_state=random_state,
            warm_start=warm_start,
            verbose=verbose,
            verbose_interval=verbose_interval,
        )
        self.covariance_type = covariance_type
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init

    # -- checks --------------------------------------------------------------------------------

    def _validate_params(self):
        super()._validate_params()
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"unknown covariance_type {self.covariance_type!r}; valid: "
                + ", ".join(map(repr, COVARIANCE_TYPES))
            )

    def _check_parameters(self, n_features):
        """Validate the initial parameters into private copies (the public ones stay as
        given)."""
        k, ctype = self.n_components, self.covariance_type
        self._weights_init = (
            None if self.weights_init is None else _check_weights(self.weights_init, k)
        )
        self._means_init = (
            None if self.means_init is None else _check_means(self.means_init, k, n_features)
        )
        self._precisions_init = (
            None
            if self.precisions_init is None
            else _check_precisions(self.precisions_init, ctype, k, n_features)
        )

    @property
    def _eps(self) -> float:
        return float(np.finfo(self._dtype).eps)

    # -- initialisation ------------------------------------------------------------------------

    def _initialize_parameters(self, X: da.Array, seed: int, init: int):
        given = (self._weights_init, self._means_init, self._precisions_init)
        stats = shift = None
        if any(g is None for g in given):
            shift = np.asarray(X[:1].compute(), dtype=np.float64)[0]  # a point in the data
            spec = self._initial_responsibilities(X, seed, init, shift)
            stats = map_reduce(_kernels.init_stats, X, params=spec)
        self._initialize(stats, shift, X.shape[0])

    def _initial_responsibilities(self, X, seed, init, shift) -> InitResp:
        k, ctype, n_samples = self.n_components, self.covariance_type, X.shape[0]
        spec = InitResp("rows", ctype, k, shift)
        if self.init_params == "kmeans":
            km_seed = int(_random.generator(seed, _KEY_KMEANS, init).integers(2**62))
            centers = _kmeans_centers(X, k, km_seed)
            return spec._replace(kind="centers", centers=centers)
        if self.init_params == "random":
            return spec._replace(kind="random", seed=seed, key=(_KEY_RANDOM, init))
        if self.init_params == "random_from_data":
            rng = _random.generator(seed, _KEY_FROM_DATA, init)
            rows = rng.choice(n_samples, size=k, replace=False)
        else:  # "k-means++"
            km_seed = int(_random.generator(seed, _KEY_KMEANSPP, init).integers(2**62))
            _, rows = kmeans_plusplus_greedy(X, k, None, km_seed, return_rows=True)
        order = np.argsort(rows)
        return spec._replace(rows=rows[order], components=np.arange(k)[order])

    def _initialize(self, stats: GaussianStats | None, shift, n_samples: int):
        ctype = self.covariance_type
        weights = means = covariances = None
        if stats is not None:
            nk, means, covariances = _estimate_parameters(
                stats, shift, self.reg_covar, ctype, self._eps
            )
            weights = nk / n_samples
        if self._weights_init is not None:
            weights = self._weights_init
        if self._means_init is not None:
            means = self._means_init
        if self._precisions_init is None:
            precisions_chol = _precision_cholesky(covariances, ctype, self._float32)
        else:
            precisions_chol = _precision_cholesky_from_precisions(self._precisions_init, ctype)
            covariances = _covariances_from_precisions(self._precisions_init, ctype)
        self._params = (weights, means, covariances, precisions_chol)

    @property
    def _float32(self) -> bool:
        return self._dtype == np.float32

    # -- EM ------------------------------------------------------------------------------------

    def _current_model(self):
        weights, means, _, precisions_chol = self._params
        return _kernels.make_model(self.covariance_type, weights, means, precisions_chol)

    def _e_step_pass(self, X: da.Array) -> GaussianStats:
        self._last_model = self._current_model()
        return map_reduce(_kernels.e_step_stats, X, params=self._last_model)

    def _m_step(self, stats: GaussianStats):
        ctype = self.covariance_type
        nk, means, covariances = _estimate_parameters(
            stats, self._last_model.shift, self.reg_covar, ctype, self._eps
        )
        weights = nk / nk.sum()
        precisions_chol = _precision_cholesky(covariances, ctype, self._float32)
        self._params = (weights, means, covariances, precisions_chol)

    def _get_parameters(self):
        return self._params

    def _set_parameters(self, params):
        self._params = params
        weights, means, covariances, precisions_chol = params
        dtype = self._dtype
        self.weights_ = weights.astype(dtype)
        self.means_ = means.astype(dtype)
        self.covariances_ = covariances.astype(dtype)
        self.precisions_cholesky_ = precisions_chol.astype(dtype)
        self.precisions_ = _precisions_from_cholesky(precisions_chol, self.covariance_type)
        self.precisions_ = self.precisions_.astype(dtype)

    def _model(self):
        check_is_fitted(self)
        return self._current_model()

    # -- model size, information criteria, sampling --------------------------------------------

    def _n_parameters(self) -> int:
        _, d = self.means_.shape
        k = self.n_components
        cov_params = {
            "full": k * d * (d + 1) / 2.0,
            "diag": k * d,
            "tied": d * (d + 1) / 2.0,
            "spherical": k,
        }[self.covariance_type]
        return int(cov_params + d * k + k - 1)

    def bic(self, X) -> float:
        """Bayesian information criterion of the model on ``X`` (lower is better; one pass).

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)

        Returns
        -------
        bic : float
        """
        n = _n_rows(X)
        return -2 * self.score(X) * n + self._n_parameters() * math.log(n)

    def aic(self, X) -> float:
        """Akaike information criterion of the model on ``X`` (lower is better; one pass).

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)

        Returns
        -------
        aic : float
        """
        return -2 * self.score(X) * _n_rows(X) + 2 * self._n_parameters()

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture.

        Draws come from a stream derived from ``random_state``: the same integer gives the
        same samples.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features), float64
        y : ndarray of shape (n_samples,), int64
            Component of each sample, in increasing order as in scikit-learn.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}. The sampling requires at "
                "least one sample."
            )
        weights, means, _, precisions_chol = self._params
        rng = _random.generator(_random.seed_from(self.random_state), _KEY_SAMPLE)
        counts = rng.multinomial(n_samples, weights / weights.sum())
        d = means.shape[1]
        parts = []
        for k, count in enumerate(counts):
            z = rng.standard_normal((count, d))
            # x = mu + U^{-T} z has covariance (U U^T)^{-1}, U the precision Cholesky factor.
            if self.covariance_type in ("full", "tied"):
                chol = precisions_chol[k] if self.covariance_type == "full" else precisions_chol
                x = solve_triangular(chol, z.T, lower=False, trans="T").T
            else:
                x = z / precisions_chol[k]
            parts.append(means[k] + x)
        X = np.vstack(parts)
        y = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        return X, y


def _n_rows(X) -> int:
    shape = getattr(X, "shape", None)
    if shape is None or isinstance(X, (str, os.PathLike)):
        shape = as_dask_array(X).shape
    return int(shape[0])
