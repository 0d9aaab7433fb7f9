"""One object per covariance type: everything a Gaussian mixture needs to know about it.

A mixture never branches on ``covariance_type``; it asks the type's object. Each object holds

- the statistics layout of the E-step kernels: the quadratic features of ``phi(y)`` (see
  :mod:`bigclust.mixture._kernels`), how their moments accumulate and unpack,
- the E-step coefficients of a component given its precision Cholesky factor,
- the M-step (covariances from shifted moments) and the Cholesky factors of the precisions,
- parameter shapes, checks and counts (for ``bic``/``aic``), and sampling,
- for the variational (Bayesian) mixture: the data's default covariance prior, the check of a
  given one, the Normal-Wishart M-step and the Wishart normalisation of the lower bound.

Pure NumPy: the objects travel inside the kernels' parameters to the workers.

Shapes, as scikit-learn's (k components, d features): ``full`` (k, d, d); ``tied`` (d, d);
``diag`` (k, d); ``spherical`` (k,). ``precisions_cholesky`` is the upper-triangular ``U``
with ``precision = U U^T``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import gammaln

__all__ = [
    "COVARIANCE_TYPES",
    "CovarianceType",
    "covariance_type",
    "estimate_gaussian_moments",
    "estimate_gaussian_parameters",
    "singular_covariance_message",
]


class Terms(NamedTuple):
    """Per-component pieces of ``log N(x | mu_k, P_k)`` in shifted coordinates ``y``.

    ``log N = linear[k] @ y + quadratic[k] @ q(y) + const[k] + log_det[k] - d/2 log(2 pi)``,
    with ``q(y)`` the type's quadratic features.
    """

    log_det: np.ndarray
    linear: np.ndarray
    quadratic: np.ndarray
    const: np.ndarray


def singular_covariance_message(float32: bool) -> str:
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


def _pack_symmetric(matrices: np.ndarray) -> np.ndarray:
    """(..., d, d) symmetric -> (..., d(d+1)/2) coefficients of the upper-triangle features,
    off-diagonal entries doubled so that ``coef @ triu(y y^T) = y^T M y``."""
    d = matrices.shape[-1]
    iu, ju = np.triu_indices(d)
    packed = matrices[..., iu, ju] * 2.0
    packed[..., iu == ju] *= 0.5
    return packed


def _unpack_symmetric(packed: np.ndarray, d: int) -> np.ndarray:
    """(..., d(d+1)/2) upper triangles (row-major) -> (..., d, d) symmetric matrices."""
    iu, ju = np.triu_indices(d)
    out = np.zeros((*packed.shape[:-1], d, d))
    out[..., iu, ju] = packed
    out[..., ju, iu] = packed
    return out


class CovarianceType:
    """The interface; the four concrete types below implement it."""

    name: str

    def __reduce__(self):
        # Singletons: unpickled on a worker as the same module-level object.
        return (covariance_type, (self.name,))

    def __repr__(self) -> str:
        return f"covariance_type({self.name!r})"

    # -- statistics layout (kernels) -------------------------------------------------------

    def n_quadratic(self, d: int) -> int:
        """Quadratic features of ``phi(y)`` after its ``d`` linear ones."""
        raise NotImplementedError

    def fill_quadratic(self, y: np.ndarray, out: np.ndarray) -> None:
        """Write the quadratic features of ``y`` (d x rows) into ``out`` (n_quadratic x rows)."""
        raise NotImplementedError

    def new_second(self, k: int, d: int) -> np.ndarray:
        """Zeroed accumulator of second moments in the kernels' packed layout."""
        raise NotImplementedError

    def add_second(self, second: np.ndarray, moments: np.ndarray, quadratic: np.ndarray):
        """Add a block's second moments: ``moments`` is ``resp @ quadratic.T`` (k x n_quad)."""
        second += moments

    def unpack_second(self, second: np.ndarray, d: int) -> np.ndarray:
        """Packed accumulator -> the ``second`` field of ``GaussianStats``."""
        return second

    # -- E-step coefficients ------------------------------------------------------------------

    def terms(self, precisions_chol: np.ndarray, m: np.ndarray) -> Terms:
        """Log-density pieces of every component, ``m`` the means in shifted coordinates."""
        raise NotImplementedError

    # -- M-step -------------------------------------------------------------------------------

    def covariances(self, stats, nk: np.ndarray, m: np.ndarray, reg_covar: float) -> np.ndarray:
        """Covariances from moments around the shift, ``m`` the means in shifted coordinates."""
        raise NotImplementedError

    def precision_cholesky(self, covariances: np.ndarray, float32: bool = False) -> np.ndarray:
        """Upper-triangular ``U`` with ``inv(covariance) = U U^T``; raises on a singular one."""
        if (covariances <= 0.0).any() or not np.isfinite(covariances).all():
            raise ValueError(singular_covariance_message(float32))
        return 1.0 / np.sqrt(covariances)

    def cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        return np.sqrt(precisions)

    def covariances_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        return 1.0 / precisions

    def precisions_from_cholesky(self, precisions_chol: np.ndarray) -> np.ndarray:
        return precisions_chol**2

    def log_det_cholesky(self, precisions_chol: np.ndarray, d: int) -> np.ndarray:
        """``log det U`` per component (a scalar for ``tied``)."""
        raise NotImplementedError

    # -- shapes, checks, counts ---------------------------------------------------------------

    def precision_shape(self, k: int, d: int) -> tuple[int, ...]:
        raise NotImplementedError

    def check_precisions(self, precisions, k: int, d: int) -> np.ndarray:
        """Validate user-given ``precisions_init`` (scikit-learn's messages)."""
        precisions = np.asarray(precisions, dtype=np.float64)
        shape = self.precision_shape(k, d)
        if precisions.shape != shape:
            raise ValueError(
                f"The parameter '{self.name} precision' should have the shape of {shape}, "
                f"but got {precisions.shape}"
            )
        if not np.isfinite(precisions).all():
            raise ValueError(f"'{self.name} precision' contains NaN or infinity.")
        self._check_definite(precisions, d)
        return precisions

    def _check_definite(self, precisions: np.ndarray, d: int) -> None:
        if (precisions <= 0.0).any():
            raise ValueError(f"'{self.name} precision' should be positive")

    def n_covariance_parameters(self, k: int, d: int) -> float:
        raise NotImplementedError

    # -- variational mixture: priors, Normal-Wishart M-step, lower bound -------------------

    def data_covariance(self, stats) -> np.ndarray | float:
        """scikit-learn's default ``covariance_prior`` from the data's own moments.

        ``stats`` holds one component that every row belongs to wholly (moments around a
        data row, as every pass takes them); the result is ``np.cov(X.T)`` (full, tied),
        ``np.var(X, axis=0, ddof=1)`` (diag) or its mean over features (spherical).
        """
        raise NotImplementedError

    def check_covariance_prior(self, prior, d: int) -> np.ndarray | float:
        """Validate a user-given ``covariance_prior`` (scikit-learn's messages)."""
        raise NotImplementedError

    def wishart_dof(self, dof_prior: float, nk: np.ndarray) -> np.ndarray | float:
        """Posterior degrees of freedom (Bishop 10.63, corrected: ``nu_0 + N_k``)."""
        return dof_prior + nk

    def wishart_covariances(self, prior, nk, sk, diff, mean_precision_prior, mean_precision, dof):
        """Posterior Wishart scale, normalised by the degrees of freedom (as scikit-learn).

        ``sk``: the components' covariances (with ``reg_covar``); ``diff``: the components'
        data means minus the mean prior (k, d); ``mean_precision``: the posterior ``beta_k``.
        """
        raise NotImplementedError

    def log_wishart_norm(self, dof, precisions_chol: np.ndarray, d: int, k: int) -> float:
        """Sum over components of ``log B(W, nu)`` of the lower bound, without its ``log pi``
        term, for precisions normalised by ``dof`` (scikit-learn's ``_log_wishart_norm``)."""
        log_det = self.log_det_cholesky(precisions_chol, d) - 0.5 * d * np.log(dof)
        norm = -(
            dof * log_det
            + dof * d * 0.5 * np.log(2.0)
            + gammaln(0.5 * (dof - np.arange(d)[:, None])).sum(axis=0)
        )
        return float(np.sum(norm))

    def _check_positive_vector(self, prior, d: int) -> np.ndarray:
        prior = _finite_array(prior, f"{self.name} covariance_prior")
        _check_shape(prior, (d,), f"{self.name} covariance_prior")
        if (prior <= 0.0).any():
            raise ValueError(f"'{self.name} precision' should be positive")
        return prior

    # -- sampling -----------------------------------------------------------------------------

    def sample(self, rng, mean: np.ndarray, precisions_chol: np.ndarray, component: int, count):
        """``count`` draws of one component: ``x = mu + U^{-T} z`` has covariance
        ``(U U^T)^{-1}``."""
        z = rng.standard_normal((count, mean.shape[0]))
        return mean + z / precisions_chol[component]


class _Full(CovarianceType):
    name = "full"

    def n_quadratic(self, d):
        return d * (d + 1) // 2

    def fill_quadratic(self, y, out):
        d, offset = y.shape[0], 0
        for i in range(d):
            np.multiply(y[i], y[i:], out=out[offset : offset + d - i])
            offset += d - i

    def new_second(self, k, d):
        return np.zeros((k, d * (d + 1) // 2))

    def unpack_second(self, second, d):
        return _unpack_symmetric(second, d)

    def _stacked(self, precisions_chol, k):
        return precisions_chol

    def terms(self, precisions_chol, m):
        chols = self._stacked(precisions_chol, m.shape[0])
        precisions = chols @ np.swapaxes(chols, 1, 2)  # P = U U^T
        quad_m = np.einsum("kij,ki->kj", chols, m)  # U^T m, so m^T P m = |U^T m|^2
        return Terms(
            log_det=np.log(np.diagonal(chols, axis1=1, axis2=2)).sum(axis=1),
            linear=np.einsum("kij,kj->ki", precisions, m),
            quadratic=-0.5 * _pack_symmetric(precisions),
            const=-0.5 * (quad_m**2).sum(axis=1),
        )

    def covariances(self, stats, nk, m, reg_covar):
        # sum_i r_ik (y_i - m_k)(y_i - m_k)^T, expanded exactly around the shift.
        first, n = stats.first, stats.resp_sum
        cov = stats.second - first[:, :, None] * m[:, None, :] - m[:, :, None] * first[:, None, :]
        cov += n[:, None, None] * m[:, :, None] * m[:, None, :]
        cov /= nk[:, None, None]
        d = m.shape[1]
        cov[:, np.arange(d), np.arange(d)] += reg_covar
        return cov

    def precision_cholesky(self, covariances, float32=False):
        try:
            chol = np.linalg.cholesky(covariances)  # lower triangular, stacked for "full"
        except np.linalg.LinAlgError:
            raise ValueError(singular_covariance_message(float32)) from None
        # U = L^{-T}: batched, and much cheaper per call than scipy's solve_triangular for the
        # small matrices of a mixture; triu drops rounding noise where U is exactly zero.
        return np.triu(np.swapaxes(np.linalg.inv(chol), -1, -2))

    def cholesky_from_precisions(self, precisions):
        # U upper triangular with P = U U^T: J chol(J P J) J, with J the flip.
        flipped = precisions[..., ::-1, ::-1]
        return np.linalg.cholesky(flipped)[..., ::-1, ::-1].copy()

    def covariances_from_precisions(self, precisions):
        return np.linalg.inv(precisions)

    def precisions_from_cholesky(self, precisions_chol):
        return precisions_chol @ np.swapaxes(precisions_chol, -1, -2)

    def log_det_cholesky(self, precisions_chol, d):
        return np.log(np.diagonal(precisions_chol, axis1=-2, axis2=-1)).sum(axis=-1)

    def precision_shape(self, k, d):
        return (k, d, d)

    def _check_definite(self, precisions, d):
        for i, matrix in enumerate(precisions.reshape(-1, d, d)):
            if not np.allclose(matrix, matrix.T) or np.linalg.eigvalsh(matrix).min() <= 0.0:
                where = f" (component {i})" if self.name == "full" else ""
                raise ValueError(
                    f"'{self.name} precision' should be symmetric, positive-definite{where}."
                )

    def n_covariance_parameters(self, k, d):
        return k * d * (d + 1) / 2.0

    def _component_cholesky(self, precisions_chol, component):
        return precisions_chol[component]

    def _data_second(self, stats):
        return stats.second[0]

    def data_covariance(self, stats):
        n, first = stats.n_samples, stats.first[0]
        return (self._data_second(stats) - np.outer(first, first) / n) / (n - 1)

    def check_covariance_prior(self, prior, d):
        prior = _finite_array(prior, f"{self.name} covariance_prior")
        _check_shape(prior, (d, d), f"{self.name} covariance_prior")
        if not np.allclose(prior, prior.T) or np.linalg.eigvalsh(prior).min() <= 0.0:
            raise ValueError(f"'{self.name} precision' should be symmetric, positive-definite")
        return prior

    def wishart_covariances(self, prior, nk, sk, diff, mean_precision_prior, mean_precision, dof):
        scale = nk * mean_precision_prior / mean_precision
        spread = scale[:, None, None] * diff[:, :, None] * diff[:, None, :]
        return (prior + nk[:, None, None] * sk + spread) / dof[:, None, None]

    def sample(self, rng, mean, precisions_chol, component, count):
        z = rng.standard_normal((count, mean.shape[0]))
        chol = self._component_cholesky(precisions_chol, component)
        return mean + solve_triangular(chol, z.T, lower=False, trans="T").T


class _Tied(_Full):
    name = "tied"

    def new_second(self, k, d):
        return np.zeros(d * (d + 1) // 2)

    def add_second(self, second, moments, quadratic):
        # scikit-learn's tied estimator uses X^T X, unweighted: every row counts once.
        second += quadratic.sum(axis=1)

    def _stacked(self, precisions_chol, k):
        return np.broadcast_to(precisions_chol, (k, *precisions_chol.shape))

    def covariances(self, stats, nk, m, reg_covar):
        cov = stats.second - np.einsum("k,ki,kj->ij", nk, m, m)
        cov /= nk.sum()
        cov[np.diag_indices_from(cov)] += reg_covar
        return cov

    def precision_shape(self, k, d):
        return (d, d)

    def n_covariance_parameters(self, k, d):
        return d * (d + 1) / 2.0

    def _component_cholesky(self, precisions_chol, component):
        return precisions_chol

    def _data_second(self, stats):
        return stats.second

    def wishart_dof(self, dof_prior, nk):
        return dof_prior + nk.sum() / nk.shape[0]

    def wishart_covariances(self, prior, nk, sk, diff, mean_precision_prior, mean_precision, dof):
        k = nk.shape[0]
        spread = ((nk / mean_precision) * diff.T) @ diff
        return (prior + sk * nk.sum() / k + mean_precision_prior / k * spread) / dof

    def log_wishart_norm(self, dof, precisions_chol, d, k):
        # One shared precision, counted once per component as scikit-learn does.
        return k * super().log_wishart_norm(dof, precisions_chol, d, k)


class _Diag(CovarianceType):
    name = "diag"

    def n_quadratic(self, d):
        return d

    def fill_quadratic(self, y, out):
        np.multiply(y, y, out=out)

    def new_second(self, k, d):
        return np.zeros((k, d))

    def terms(self, precisions_chol, m):
        precisions = precisions_chol**2
        return Terms(
            log_det=np.log(precisions_chol).sum(axis=1),
            linear=precisions * m,
            quadratic=-0.5 * precisions,
            const=-0.5 * (precisions * m**2).sum(axis=1),
        )

    def covariances(self, stats, nk, m, reg_covar):
        return stats.second / nk[:, None] - m**2 + reg_covar

    def log_det_cholesky(self, precisions_chol, d):
        return np.log(precisions_chol).sum(axis=1)

    def precision_shape(self, k, d):
        return (k, d)

    def n_covariance_parameters(self, k, d):
        return k * d

    def data_covariance(self, stats):
        n, first = stats.n_samples, stats.first[0]
        return (stats.second[0] - first**2 / n) / (n - 1)

    def check_covariance_prior(self, prior, d):
        return self._check_positive_vector(prior, d)

    def wishart_covariances(self, prior, nk, sk, diff, mean_precision_prior, mean_precision, dof):
        ratio = (mean_precision_prior / mean_precision)[:, None]
        return (prior + nk[:, None] * (sk + ratio * diff**2)) / dof[:, None]


class _Spherical(CovarianceType):
    name = "spherical"

    def n_quadratic(self, d):
        return 1

    def fill_quadratic(self, y, out):
        np.einsum("ij,ij->j", y, y, out=out[0])

    def new_second(self, k, d):
        return np.zeros(k)

    def add_second(self, second, moments, quadratic):
        second += moments[:, 0]

    def terms(self, precisions_chol, m):
        d = m.shape[1]
        precisions = precisions_chol**2
        return Terms(
            log_det=d * np.log(precisions_chol),
            linear=precisions[:, None] * m,
            quadratic=-0.5 * precisions[:, None],
            const=-0.5 * precisions * (m**2).sum(axis=1),
        )

    def covariances(self, stats, nk, m, reg_covar):
        d = m.shape[1]
        return (stats.second / nk - (m**2).sum(axis=1)) / d + reg_covar

    def log_det_cholesky(self, precisions_chol, d):
        return d * np.log(precisions_chol)

    def precision_shape(self, k, d):
        return (k,)

    def n_covariance_parameters(self, k, d):
        return k

    def data_covariance(self, stats):
        n, first = stats.n_samples, stats.first[0]
        return float((stats.second[0] - first @ first / n) / (n - 1) / first.shape[0])

    def check_covariance_prior(self, prior, d):
        value = np.asarray(prior, dtype=np.float64)
        if value.ndim != 0 or not np.isfinite(value) or value <= 0.0:
            raise ValueError(
                f"The parameter 'spherical covariance_prior' should be a positive float, but got "
                f"{prior!r}"
            )
        return float(value)

    def wishart_covariances(self, prior, nk, sk, diff, mean_precision_prior, mean_precision, dof):
        spread = mean_precision_prior / mean_precision * (diff**2).mean(axis=1)
        return (prior + nk * (sk + spread)) / dof


_TYPES = {t.name: t for t in (_Full(), _Tied(), _Diag(), _Spherical())}

#: The valid ``covariance_type`` names, in scikit-learn's order.
COVARIANCE_TYPES = tuple(_TYPES)


def covariance_type(name: str) -> CovarianceType:
    """The object for ``name``; an unknown name lists the valid ones."""
    found = _TYPES.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValueError(
            f"unknown covariance_type {name!r}; valid: " + ", ".join(map(repr, COVARIANCE_TYPES))
        )
    return found


def estimate_gaussian_moments(stats, reg_covar, ctype: CovarianceType, eps):
    """``(nk, m, covariances)`` with ``m`` the means relative to the statistics' shift.

    scikit-learn's formulas applied to the shifted data (``nk = N_k + 10 eps``), so the
    result does not depend on where the data sit.
    """
    nk = stats.resp_sum + 10 * eps
    m = stats.first / nk[:, None]
    return nk, m, ctype.covariances(stats, nk, m, reg_covar)


def estimate_gaussian_parameters(stats, shift, reg_covar, ctype: CovarianceType, eps):
    """``(nk, means, covariances)`` from statistics taken around ``shift``."""
    nk, m, covariances = estimate_gaussian_moments(stats, reg_covar, ctype, eps)
    return nk, shift + m, covariances


def _check_shape(param: np.ndarray, shape: tuple, name: str) -> None:
    if param.shape != shape:
        raise ValueError(
            f"The parameter '{name}' should have the shape of {shape}, but got {param.shape}"
        )


def _finite_array(value, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"The parameter '{name}' contains NaN or infinity.")
    return array
