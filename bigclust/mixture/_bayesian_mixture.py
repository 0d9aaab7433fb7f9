"""Variational Bayesian Gaussian mixtures: one pass over the data per iteration.

The estimator mirrors :class:`sklearn.mixture.BayesianGaussianMixture` (Bishop, *Pattern
Recognition and Machine Learning*, ch. 10.2; Blei and Jordan 2006 for the stick-breaking
Dirichlet process). The loop, the input, the initial responsibilities and the per-row outputs
are :class:`~bigclust.mixture._base.BaseMixture`'s. Each iteration's pass returns the E-step
statistics of EM (counts, first and second moments around a shift) plus the responsibilities'
entropy ``sum r log r``; the variational M-step (the weights' Dirichlet or stick-breaking Beta
posteriors, the components' Normal-Wishart posteriors, through the covariance type's object),
the digamma terms the next E-step adds to each component's log density and the evidence lower
bound all run on the client in float64. Priors that default to the data's mean and covariance
come from one extra pass at the start of ``fit``.
"""

from __future__ import annotations

import numbers
from typing import ClassVar

import numpy as np
from scipy.special import betaln, digamma, gammaln

from bigclust._params import Interval, Options
from bigclust._persist import ModelFileMixin
from bigclust.driver import map_reduce, take_rows
from bigclust.mixture import _kernels
from bigclust.mixture._base import BaseMixture
from bigclust.mixture._covariance import estimate_gaussian_moments
from bigclust.mixture._kernels import GaussianStats, InitResp

__all__ = ["BayesianGaussianMixture"]


class _DirichletProcess:
    """Stick-breaking (truncated Dirichlet process) prior: a Beta per component."""

    name = "dirichlet_process"

    def posterior(self, prior: float, nk: np.ndarray):
        # Beta(1 + N_k, gamma + sum_{j > k} N_j).
        return (1.0 + nk, prior + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0)))

    def expected_log_weights(self, concentration) -> np.ndarray:
        a, b = concentration
        digamma_sum = digamma(a + b)
        log_stick = np.cumsum(digamma(b) - digamma_sum)[:-1]
        return digamma(a) - digamma_sum + np.hstack((0, log_stick))

    def log_norm(self, concentration) -> float:
        return float(-np.sum(betaln(concentration[0], concentration[1])))

    def weights(self, concentration) -> np.ndarray:
        a, b = concentration
        total = a + b
        weights = a / total * np.hstack((1, np.cumprod(b / total)[:-1]))
        return weights / weights.sum()


class _DirichletDistribution:
    """Finite Dirichlet prior on the weights."""

    name = "dirichlet_distribution"

    def posterior(self, prior: float, nk: np.ndarray):
        return prior + nk

    def expected_log_weights(self, concentration) -> np.ndarray:
        return digamma(concentration) - digamma(np.sum(concentration))

    def log_norm(self, concentration) -> float:
        return float(gammaln(np.sum(concentration)) - np.sum(gammaln(concentration)))

    def weights(self, concentration) -> np.ndarray:
        return concentration / np.sum(concentration)


_WEIGHT_PRIORS = {p.name: p for p in (_DirichletProcess(), _DirichletDistribution())}

_POSITIVE = Interval(numbers.Real, 0.0, None, closed="neither")


class BayesianGaussianMixture(ModelFileMixin, BaseMixture):
    """Variational Bayesian Gaussian mixture on data of any size, with scikit-learn's API.

    The posterior over the mixture's weights, means and precisions is approximated by
    variational inference; components the data do not support get weights near zero, so
    ``n_components`` is an upper bound on the number of clusters. Every iteration is one pass
    over the data: each chunk returns its responsibilities' sufficient statistics and entropy,
    a tree reduction adds them in float64 and the variational update runs on the client. With
    the same initial responsibilities, results match
    :class:`sklearn.mixture.BayesianGaussianMixture`.

    Parameters
    ----------
    n_components : int, default=1
        Maximum number of mixture components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Form of the covariance matrices.
    tol : float, default=1e-3
        Convergence threshold on the change of the lower bound (of the whole data, not per
        sample, as in scikit-learn).
    reg_covar : float, default=1e-6
        Added to the diagonal of the components' data covariances.
    max_iter : int, default=100
        Number of iterations (passes over the data) per initialisation.
    n_init : int, default=1
        Number of initialisations; the one with the highest lower bound is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"} or array-like, \
default="kmeans"
        Initial responsibilities: labels of bigclust's distributed
        :class:`~bigclust.cluster.KMeans`, one-hot at rows chosen by k-means++ or uniformly,
        random responsibilities, or an array of shape (n_samples, n_components) aligned with
        the rows (NumPy or Dask).
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}, \
default="dirichlet_process"
        Prior on the weights: stick-breaking (an infinite mixture truncated at
        ``n_components``) or a finite Dirichlet.
    weight_concentration_prior : float, default=None
        Concentration ``gamma`` of the weights' prior, > 0; lower values favour fewer active
        components. ``None`` means ``1 / n_components``.
    mean_precision_prior : float, default=None
        Precision ``beta_0`` of the means' prior, > 0; ``None`` means 1.
    mean_prior : array-like of shape (n_features,), default=None
        Mean of the means' prior; ``None`` means the data mean.
    degrees_of_freedom_prior : float, default=None
        Degrees of freedom ``nu_0`` of the precisions' Wishart prior, > n_features - 1;
        ``None`` means ``n_features``.
    covariance_prior : float or array-like, default=None
        Covariance prior of the Wishart: shape (n_features, n_features) for "full" and
        "tied", (n_features,) for "diag", a float for "spherical". ``None`` means the data's
        covariance (``np.cov``), variances or mean variance.
    random_state : int, RandomState instance or Generator, default=None
        Seeds the initialisation and :meth:`sample`.
    warm_start : bool, default=False
        Start the next ``fit`` from the current parameters (``n_init`` is then ignored).
    verbose : int, default=0
        Print progress: 1 per initialisation, 2 also per ``verbose_interval`` iterations.
    verbose_interval : int, default=10
        Iterations between two progress messages.
    checkpoint : str or PathLike, default=None
        A directory (local path or fsspec URL) where the fit's full state is written
        atomically after every iteration; the same fit started again with the same
        checkpoint and data resumes from the last one and ends exactly as an uninterrupted
        fit (:class:`bigclust.CheckpointMismatchError` for another fit's checkpoint).

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Expected weights under the posterior.
    means_ : ndarray of shape (n_components, n_features)
        Posterior means of the components' means.
    covariances_ : ndarray
        Posterior Wishart scale normalised by the degrees of freedom; (n_components,
        n_features, n_features) "full", (n_features, n_features) "tied", (n_components,
        n_features) "diag", (n_components,) "spherical".
    precisions_ : ndarray
        Inverses of ``covariances_`` (same shapes).
    precisions_cholesky_ : ndarray
        Upper-triangular ``U`` with ``precisions_ = U U^T`` (scikit-learn's layout).
    weight_concentration_ : ndarray of shape (n_components,) or tuple of two
        Posterior Dirichlet concentrations, or the Beta parameters of every stick.
    mean_precision_ : ndarray of shape (n_components,)
        Posterior precisions ``beta_k`` of the means.
    degrees_of_freedom_ : ndarray of shape (n_components,) or float ("tied")
        Posterior Wishart degrees of freedom.
    weight_concentration_prior_ : float
    mean_precision_prior_ : float
    mean_prior_ : ndarray of shape (n_features,)
    degrees_of_freedom_prior_ : float
    covariance_prior_ : ndarray or float
        The priors used (given, or derived from the data).
    converged_ : bool
    n_iter_ : int
        Iterations of the best initialisation.
    lower_bound_ : float
        Evidence lower bound of the best initialisation (up to constants, as scikit-learn's).
    lower_bounds_ : list of float
        ``lower_bound_`` after every iteration of the best initialisation.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from bigclust import BayesianGaussianMixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 1, (100, 2)), rng.normal(8, 1, (100, 2))])
    >>> bgm = BayesianGaussianMixture(n_components=5, random_state=0).fit(X)
    >>> int((bgm.weights_ > 0.1).sum())
    2
    """

    _needs_entropy = True

    _parameter_constraints: ClassVar[dict] = {
        **BaseMixture._parameter_constraints,
        "weight_concentration_prior_type": [Options(*_WEIGHT_PRIORS)],
        "weight_concentration_prior": [None, _POSITIVE],
        "mean_precision_prior": [None, _POSITIVE],
        "mean_prior": [None, "array-like"],
        "degrees_of_freedom_prior": [None, _POSITIVE],
        "covariance_prior": [None, "array-like", _POSITIVE],
    }

    def __init__(
        self,
        *,
        n_components=1,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
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
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.checkpoint = checkpoint

    # -- priors --------------------------------------------------------------------------------

    def _check_parameters(self, n_features):
        """The priors that need no data, checked before any pass (scikit-learn's messages)."""
        self._weight_prior = _WEIGHT_PRIORS[self.weight_concentration_prior_type]
        self.weight_concentration_prior_ = (
            1.0 / self.n_components
            if self.weight_concentration_prior is None
            else float(self.weight_concentration_prior)
        )
        self.mean_precision_prior_ = (
            1.0 if self.mean_precision_prior is None else float(self.mean_precision_prior)
        )
        self._mean_prior = None
        if self.mean_prior is not None:
            mean_prior = np.asarray(self.mean_prior, dtype=np.float64)
            if mean_prior.shape != (n_features,):
                raise ValueError(
                    f"The parameter 'means' should have the shape of ({n_features},), but got "
                    f"{mean_prior.shape}"
                )
            if not np.isfinite(mean_prior).all():
                raise ValueError("The parameter 'mean_prior' contains NaN or infinity.")
            self._mean_prior = mean_prior
        if self.degrees_of_freedom_prior is None:
            self.degrees_of_freedom_prior_ = float(n_features)
        elif self.degrees_of_freedom_prior > n_features - 1.0:
            self.degrees_of_freedom_prior_ = float(self.degrees_of_freedom_prior)
        else:
            raise ValueError(
                f"The parameter 'degrees_of_freedom_prior' should be greater than "
                f"{n_features - 1}, but got {self.degrees_of_freedom_prior:.3f}."
            )
        self._covariance_prior = (
            None
            if self.covariance_prior is None
            else self._ctype.check_covariance_prior(self.covariance_prior, n_features)
        )

    def _check_data_parameters(self, X):
        """The priors that default to the data's mean and covariance: one pass for both.

        The mean prior is kept as ``anchor + offset``, the anchor a data row (or the given
        prior), so the M-step takes differences to it without losing digits far from the
        origin.
        """
        stats = None
        if self._mean_prior is None or self._covariance_prior is None:
            shift = take_rows(X, [0])[0]  # a point in the data
            stats = map_reduce(
                _kernels.init_stats, X, params=InitResp("data", self._ctype.name, 1, shift)
            )
        if self._mean_prior is None:
            self._mean_anchor, self._mean_offset = shift, stats.first[0] / stats.n_samples
        else:
            self._mean_anchor, self._mean_offset = self._mean_prior, 0.0
        covariance_prior = self._covariance_prior
        if covariance_prior is None:
            covariance_prior = self._ctype.data_covariance(stats)
        self.mean_prior_ = self._mean_anchor + self._mean_offset
        self.covariance_prior_ = covariance_prior

    # -- variational updates -------------------------------------------------------------------

    def _initialize(self, stats: GaussianStats | None, shift, n_samples: int):
        self._update(stats, shift)

    def _m_step(self, stats: GaussianStats):
        self._update(stats, self._last_model.shift)

    def _update(self, stats: GaussianStats, shift: np.ndarray):
        """The variational M-step from statistics taken around ``shift`` (scikit-learn's
        ``_estimate_weights``, ``_estimate_means``, ``_estimate_precisions``)."""
        ctype = self._ctype
        nk, m, sk = estimate_gaussian_moments(stats, self.reg_covar, ctype, self._eps)
        concentration = self._weight_prior.posterior(self.weight_concentration_prior_, nk)
        beta_0 = self.mean_precision_prior_
        mean_precision = beta_0 + nk
        # All around ``shift``: the prior mean, the components' data means ``m``, their
        # difference and the posterior means.
        prior_m = (self._mean_anchor - shift) + self._mean_offset
        diff = m - prior_m
        means = shift + (beta_0 * prior_m + nk[:, None] * m) / mean_precision[:, None]
        dof = ctype.wishart_dof(self.degrees_of_freedom_prior_, nk)
        covariances = ctype.wishart_covariances(
            self.covariance_prior_, nk, sk, diff, beta_0, mean_precision, dof
        )
        precisions_chol = ctype.precision_cholesky(covariances, self._float32)
        self._params = (concentration, mean_precision, means, dof, covariances, precisions_chol)

    def _estimate_log_weights(self) -> np.ndarray:
        return self._weight_prior.expected_log_weights(self._params[0])

    def _estimate_log_prob_terms(self) -> np.ndarray:
        """``E[log det Lambda_k] / 2 - d / (2 beta_k)`` and the normalisation of the
        precisions by the degrees of freedom (scikit-learn's ``_estimate_log_prob``)."""
        _, mean_precision, means, dof, _, _ = self._params
        d = means.shape[1]
        log_lambda = d * np.log(2.0) + digamma(0.5 * (dof - np.arange(d)[:, None])).sum(axis=0)
        return -0.5 * d * np.log(dof) + 0.5 * (log_lambda - d / mean_precision)

    def _compute_lower_bound(self, stats: GaussianStats) -> float:
        # scikit-learn's bound, constants dropped: the entropy comes from the E-step's
        # responsibilities, the rest from the parameters after the M-step.
        concentration, mean_precision, means, dof, _, precisions_chol = self._params
        d = means.shape[1]
        log_wishart = self._ctype.log_wishart_norm(dof, precisions_chol, d, self.n_components)
        log_norm_weight = self._weight_prior.log_norm(concentration)
        return float(
            -stats.resp_entropy
            - log_wishart
            - log_norm_weight
            - 0.5 * d * np.sum(np.log(mean_precision))
        )

    # -- parameters ----------------------------------------------------------------------------

    def _gaussian(self):
        concentration, _, means, _, _, precisions_chol = self._params
        return self._weight_prior.weights(concentration), means, precisions_chol

    def _get_parameters(self):
        return self._params

    def _set_parameters(self, params):
        self._params = params
        concentration, mean_precision, means, dof, covariances, precisions_chol = params
        dtype = self._dtype
        self.weight_concentration_ = concentration
        self.mean_precision_ = mean_precision
        self.degrees_of_freedom_ = dof
        self.weights_ = self._weight_prior.weights(concentration).astype(dtype)
        self.means_ = means.astype(dtype)
        self.covariances_ = np.asarray(covariances).astype(dtype)
        self.precisions_cholesky_ = np.asarray(precisions_chol).astype(dtype)
        self.precisions_ = self._ctype.precisions_from_cholesky(precisions_chol).astype(dtype)
