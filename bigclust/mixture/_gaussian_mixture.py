"""Gaussian mixtures fitted by distributed EM: one pass over the data per iteration.

The estimator mirrors :class:`sklearn.mixture.GaussianMixture`. The loop, the input, the
initial responsibilities and the per-row outputs are :class:`~bigclust.mixture._base.BaseMixture`'s;
this module supplies EM's M-step (through the covariance type's object), its lower bound
(the mean log-likelihood) and the model's own extras (``bic``, ``aic``, ``sample``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from bigclust._input import read_input
from bigclust._persist import ModelFileMixin
from bigclust.mixture._base import BaseMixture
from bigclust.mixture._covariance import estimate_gaussian_parameters
from bigclust.mixture._kernels import GaussianStats

__all__ = ["GaussianMixture"]


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


class GaussianMixture(ModelFileMixin, BaseMixture):
    """Gaussian mixture fitted by EM on data of any size, with scikit-learn's API.

    Every EM iteration is one pass over the data: each chunk's E-step (in log space, through
    the Cholesky factors of the precisions) returns the sufficient statistics, a tree
    reduction adds them in float64 and the M-step runs on the driver. Moments are taken
    around the data's mean (found in the initialization pass) so data far from the origin
    keep their precision. With the same
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
        From 1, also a progress bar over the iterations (and the initialization's passes)
        and a record per iteration on the ``bigclust.progress`` logger; from 2, a bar over
        the chunks of each pass. See :func:`bigclust.set_progress` for the bars alone.
    verbose_interval : int, default=10
        Iterations between two progress messages.
    checkpoint : str or PathLike, default=None
        A directory (local path or fsspec URL) where the fit's full state is written
        atomically after every EM iteration; the same fit started again with the same checkpoint
        and data resumes from the last one and ends exactly as an uninterrupted fit. A
        checkpoint from other data or parameters is refused
        (:class:`bigclust.CheckpointMismatchError`).

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
        checkpoint=None,
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
        self.checkpoint = checkpoint

    _parameter_constraints: ClassVar[dict] = {
        **BaseMixture._parameter_constraints,
        "weights_init": ["array-like", None],
        "means_init": ["array-like", None],
        "precisions_init": ["array-like", None],
    }

    # -- checks --------------------------------------------------------------------------------

    def _check_parameters(self, n_features):
        """Validate the initial parameters into private copies (the public ones stay as
        given)."""
        k = self.n_components
        self._weights_init = (
            None if self.weights_init is None else _check_weights(self.weights_init, k)
        )
        self._means_init = (
            None if self.means_init is None else _check_means(self.means_init, k, n_features)
        )
        self._precisions_init = (
            None
            if self.precisions_init is None
            else self._ctype.check_precisions(self.precisions_init, k, n_features)
        )

    # -- initialisation ------------------------------------------------------------------------

    def _needs_initial_statistics(self) -> bool:
        given = (self._weights_init, self._means_init, self._precisions_init)
        return any(g is None for g in given)

    def _initialize(self, stats: GaussianStats | None, shift, n_samples: int):
        ctype = self._ctype
        weights = means = covariances = None
        if stats is not None:
            nk, means, covariances = estimate_gaussian_parameters(
                stats, shift, self.reg_covar, ctype, self._eps
            )
            weights = nk / n_samples
        if self._weights_init is not None:
            weights = self._weights_init
        if self._means_init is not None:
            means = self._means_init
        if self._precisions_init is None:
            precisions_chol = ctype.precision_cholesky(covariances, self._float32)
        else:
            precisions_chol = ctype.cholesky_from_precisions(self._precisions_init)
            # So that covariances_ exists even when max_iter=0 with precisions_init.
            covariances = ctype.covariances_from_precisions(self._precisions_init)
        self._params = (weights, means, covariances, precisions_chol)

    # -- EM ------------------------------------------------------------------------------------

    def _estimate_log_weights(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self._params[0])

    def _m_step(self, stats: GaussianStats):
        ctype = self._ctype
        nk, means, covariances = estimate_gaussian_parameters(
            stats, self._last_model.shift, self.reg_covar, ctype, self._eps
        )
        weights = nk / nk.sum()
        precisions_chol = ctype.precision_cholesky(covariances, self._float32)
        self._params = (weights, means, covariances, precisions_chol)

    def _compute_lower_bound(self, stats: GaussianStats) -> float:
        # EM's lower bound is the mean log-likelihood of the E-step before the M-step.
        return stats.log_likelihood / stats.n_samples

    def _gaussian(self):
        weights, means, _, precisions_chol = self._params
        return weights, means, precisions_chol

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
        self.precisions_ = self._ctype.precisions_from_cholesky(precisions_chol).astype(dtype)

    # -- model size, information criteria --------------------------------------------------

    def _n_parameters(self) -> int:
        _, d = self.means_.shape
        k = self.n_components
        return int(self._ctype.n_covariance_parameters(k, d) + d * k + k - 1)

    def bic(self, X) -> float:
        """Bayesian information criterion of the model on ``X`` (lower is better; one pass).

        Parameters
        ----------
        X : array-like, dask.array.Array, zarr.Array or str of shape (n_samples, n_features)

        Returns
        -------
        bic : float
        """
        n = read_input(X).shape[0]
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
        return -2 * self.score(X) * read_input(X).shape[0] + 2 * self._n_parameters()
