"""Per-chunk NumPy kernels for Gaussian mixtures: E-step statistics and per-row outputs.

Pure NumPy (no Dask): every function takes one chunk and small parameters and returns small
arrays. They are run over the chunks by :mod:`bigclust.driver`.

How the E-step is computed
--------------------------
All arithmetic happens on ``y = x - shift`` in float64, where ``shift`` is a point inside the
data (in a fit, the data's mean, taken in the initialization pass around a data row), so
data far from the origin keep their digits. For each row block the kernel builds a feature
matrix ``phi(y)``, stored transposed (features x rows) so every element-wise step runs along
long contiguous rows:

- ``full`` and ``tied``: ``[y, upper triangle of y y^T]`` (``d + d(d+1)/2`` features),
- ``diag``: ``[y, y**2]`` (``2d``),
- ``spherical``: ``[y, |y|**2]`` (``d + 1``).

Each component's log density is then linear in ``phi``: ``log w_k + log N(x | mu_k, P_k)`` =
``coef[k] @ phi(y) + offset[k]``. So the whole E-step is one matrix product
``coef @ phi`` (k x rows), a log-sum-exp over k, and the sufficient statistics are one more
product ``phi @ resp`` that yields the first and second moments of every component at once:
two GEMMs per row block and ``O(rows x features)`` element-wise work, never ``rows x k x d``.

Statistics are :class:`GaussianStats` named tuples that combine by addition (float64).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bigclust._errors import NonFiniteRow
from bigclust._rows import first_nonfinite_row, row_ranges
from bigclust._scratch import scratch_array
from bigclust.cluster._kernels import ColumnMoments, column_moments_chunk, compiled_passes
from bigclust.mixture._covariance import COVARIANCE_TYPES, CovarianceType
from bigclust.mixture._covariance import covariance_type as covariance_type_object

__all__ = [
    "COVARIANCE_TYPES",
    "EStep",
    "GaussianStats",
    "InitResp",
    "Model",
    "block_rows",
    "e_step_stats",
    "estimate_weighted_log_prob",
    "init_stats",
    "init_stats_and_moments",
    "log_prob_sum",
    "n_phi",
    "phi_rows",
    "predict_block",
    "predict_proba_block",
    "score_samples_block",
]

#: Target bytes of one row block's feature matrix: large enough for efficient GEMMs,
#: small enough to stay in cache-friendly, bounded memory per task.
BLOCK_BYTES = 2 * 2**20

_LOG_2PI = float(np.log(2 * np.pi))


class Model(NamedTuple):
    """What the E-step needs, precomputed on the driver in float64 (see :func:`make_model`).

    ``coef`` has shape (n_components, n_phi) and ``offset`` (n_components,): the weighted log
    density of component k at x is ``coef[k] @ phi(x - shift) + offset[k]``.
    """

    covariance_type: str
    shift: np.ndarray
    coef: np.ndarray
    offset: np.ndarray
    with_entropy: bool = False


class GaussianStats(NamedTuple):
    """Sufficient statistics of one or more chunks (float64); they combine by addition.

    Moments are taken around the ``shift`` of the :class:`Model` (or :class:`InitResp`) that
    produced them.

    Attributes
    ----------
    n_samples : int
        Rows seen.
    resp_sum : ndarray of shape (n_components,)
        ``N_k = sum_i r_ik``.
    first : ndarray of shape (n_components, n_features)
        ``sum_i r_ik (x_i - shift)``.
    second : ndarray
        ``full``: (n_components, n_features, n_features), ``sum_i r_ik y_i y_i^T``;
        ``tied``: (n_features, n_features), ``sum_i y_i y_i^T`` (unweighted, as scikit-learn's
        tied estimator uses ``X^T X``); ``diag``: (n_components, n_features),
        ``sum_i r_ik y_i**2``; ``spherical``: (n_components,), ``sum_i r_ik |y_i|**2``.
    log_likelihood : float
        ``sum_i log p(x_i)`` under the model (0 for initialisation passes).
    resp_entropy : float
        ``sum_i sum_k r_ik log r_ik`` when the model asks for it (variational lower bound),
        else 0.
    """

    n_samples: int
    resp_sum: np.ndarray
    first: np.ndarray
    second: np.ndarray
    log_likelihood: float
    resp_entropy: float = 0.0


class InitResp(NamedTuple):
    """Responsibilities of an initialisation pass, generated inside each chunk.

    kind : {"random", "rows", "centers", "given", "data"}
        ``"random"``: uniform draws normalised per row, from the row-keyed stream
        ``(seed, key)`` (any chunking gives the same numbers); ``"rows"``: one-hot for the
        global rows ``rows`` (sorted) to components ``components``, zero elsewhere (as
        scikit-learn's ``random_from_data`` and ``k-means++``); ``"centers"``: one-hot to the
        nearest of ``centers`` (the labels of a k-means fit); ``"given"``: the chunk's rows
        of a responsibilities array aligned with the data (passed to the kernel with it);
        ``"data"``: every row wholly in one component (``n_components=1``), so the
        statistics are the data's own count and moments around ``shift`` (the
        data-dependent priors of a variational mixture).
    """

    kind: str
    covariance_type: str
    n_components: int
    shift: np.ndarray
    seed: int = 0
    key: tuple = ()
    rows: np.ndarray | None = None
    components: np.ndarray | None = None
    centers: np.ndarray | None = None


def n_phi(covariance_type: str, n_features: int) -> int:
    """Number of features of ``phi(y)`` for a covariance type."""
    return n_features + covariance_type_object(covariance_type).n_quadratic(n_features)


def block_rows(n_phi_: int, n_components: int) -> int:
    """Rows per block so that the feature matrix and the (rows x k) arrays stay small: a power
    of two, so that mixtures of nearby sizes cut a chunk alike and, fitted together around
    one shift, share its feature blocks (:func:`bigclust._together.e_step_together`)."""
    rows = BLOCK_BYTES // (8 * (n_phi_ + 2 * n_components))
    return min(8192, 1 << max(15, rows - 1).bit_length())  # at most twice the target


def _phi(block: np.ndarray, shift: np.ndarray, ctype: CovarianceType, out: np.ndarray):
    """Fill ``out`` (n_phi x rows) with ``phi(block - shift)``, transposed; return it."""
    d = block.shape[1]
    y = np.subtract(block.T, shift[:, None], out=out[:d], dtype=np.float64, casting="unsafe")
    ctype.fill_quadratic(y, out[d:])
    return out


def phi_rows(block, lo: int, hi: int, shift, ctype: CovarianceType, out):
    """:func:`_phi` of the rows ``[lo, hi)`` of ``block``. Read straight from the chunk's rows:
    a block of a few thousand rows is in cache, and this took half the time of a float64
    transposed copy of the chunk followed by contiguous subtractions (131,072 x 16 float32
    in blocks of 8,192 rows: 1.1 against 2.5 ms)."""
    return _phi(block[lo:hi], shift, ctype, out)


def make_model(
    covariance_type: str,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_chol: np.ndarray,
    shift: np.ndarray | None = None,
    *,
    log_weights: np.ndarray | None = None,
    log_prob_offset: np.ndarray | None = None,
    with_entropy: bool = False,
) -> Model:
    """Precompute the E-step coefficients of a mixture (driver side, float64).

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    weights : ndarray of shape (n_components,)
        Mixture weights; they set the default ``shift`` and, unless ``log_weights`` is
        given, the log weights.
    means : ndarray of shape (n_components, n_features)
    precisions_chol : ndarray
        scikit-learn's ``precisions_cholesky_`` layout: (k, d, d) full, (d, d) tied,
        (k, d) diag, (k,) spherical.
    shift : ndarray of shape (n_features,), optional
        Origin of the computation; default the weighted mean of the means.
    log_weights : ndarray of shape (n_components,), optional
        What the E-step adds to each component's log density instead of ``log(weights)``
        (a variational mixture's expected log weights).
    log_prob_offset : ndarray of shape (n_components,), optional
        Added to each component's log density (a variational mixture's digamma terms).
    with_entropy : bool, default=False
        Also sum ``r log r`` over rows and components (for a variational lower bound).

    Returns
    -------
    Model
    """
    ctype = covariance_type_object(covariance_type)
    weights = np.asarray(weights, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    pc = np.asarray(precisions_chol, dtype=np.float64)
    d = means.shape[1]
    if shift is None:
        shift = weights @ means / max(weights.sum(), np.finfo(np.float64).tiny)
    shift = np.asarray(shift, dtype=np.float64)
    if log_weights is None:
        with np.errstate(divide="ignore"):
            log_weights = np.log(weights)
    terms = ctype.terms(pc, means - shift)  # component means in shifted coordinates
    coef = np.ascontiguousarray(np.concatenate([terms.linear, terms.quadratic], axis=1))
    offset = terms.const + terms.log_det - 0.5 * d * _LOG_2PI + log_weights
    if log_prob_offset is not None:
        offset = offset + log_prob_offset
    return Model(ctype.name, shift, coef, offset, bool(with_entropy))


def _weighted_log_prob_t(phi: np.ndarray, model: Model, out=None) -> np.ndarray:
    """(k x rows) weighted log densities from a transposed feature block (into ``out``)."""
    out = np.matmul(model.coef, phi, out=out)
    out += model.offset[:, None]
    return out


def _normalize_log(wlp: np.ndarray, passes=None) -> tuple[np.ndarray, np.ndarray]:
    """In place: (k x rows) weighted log probs -> responsibilities; returns (resp, log p(x)).

    ``passes``: the compiled normalization (:mod:`bigclust.mixture._fused`), or ``None`` for
    NumPy's, which the compiled one equals to a few units in the last place."""
    if passes:
        top = scratch_array("e-step top", (wlp.shape[1],), np.float64)
        total = scratch_array("e-step total", (wlp.shape[1],), np.float64)
        if passes.normalize(wlp, top, total):
            with np.errstate(divide="ignore"):
                return wlp, np.log(total) + top
    top = wlp.max(axis=0)
    finite_top = np.where(np.isfinite(top), top, 0.0)
    wlp -= finite_top
    np.exp(wlp, out=wlp)
    total = wlp.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        wlp /= total
        log_norm = np.log(total) + finite_top
    return wlp, log_norm


def _accumulate(phi: np.ndarray, resp_t: np.ndarray | None, ctype: CovarianceType, d: int, acc):
    """Add one block's moments to the accumulators ``acc = [resp_sum, first, second]``."""
    if resp_t is None:
        return
    moments = resp_t @ phi.T  # (k x n_phi): first and second moments in one product
    acc[0] += resp_t.sum(axis=1)
    acc[1] += moments[:, :d]
    ctype.add_second(acc[2], moments[:, d:], phi[d:])


def _finish(acc, ctype: CovarianceType, n_rows: int, d: int, log_likelihood, entropy=0.0):
    resp_sum, first, second = acc
    second = ctype.unpack_second(second, d)
    return GaussianStats(n_rows, resp_sum, first, second, float(log_likelihood), float(entropy))


def _new_accumulators(ctype: CovarianceType, k: int, d: int):
    return [np.zeros(k), np.zeros((k, d)), ctype.new_second(k, d)]


class EStep:
    """One mixture's E-step over a chunk, fed its feature blocks in row order (:meth:`add`):
    the responsibilities of each block and their statistics, accumulated.

    Alone (:func:`e_step_stats`) a mixture makes its own feature blocks; mixtures fitted
    together around one shift take the same blocks (the together form), and every one gets
    the bits it gets alone.
    """

    __slots__ = ("acc", "ctype", "d", "entropy", "k", "log_likelihood", "model", "n_rows",
                 "passes")  # fmt: skip

    def __init__(self, model: Model, dtype, n_rows: int, d: int):
        self.model, self.n_rows, self.d = model, n_rows, d
        self.ctype = covariance_type_object(model.covariance_type)
        self.k = model.coef.shape[0]
        self.acc = _new_accumulators(self.ctype, self.k, d)
        self.log_likelihood = self.entropy = 0.0
        self.passes = compiled_passes("e-step", dtype, n_rows * self.k)

    def rows(self) -> int:
        """Rows per feature block."""
        return min(block_rows(self.model.coef.shape[1], self.k), self.n_rows)

    def add(self, phi: np.ndarray, log_probs: np.ndarray) -> None:
        """One block: ``phi`` its features (n_phi x rows), ``log_probs`` a (k x rows) buffer."""
        wlp = _weighted_log_prob_t(phi, self.model, log_probs)
        resp, log_norm = _normalize_log(wlp, self.passes)
        self.log_likelihood += log_norm.sum()
        if self.model.with_entropy:
            self.entropy += _sum_r_log_r(resp)
        _accumulate(phi, resp, self.ctype, self.d, self.acc)

    def stats(self) -> GaussianStats:
        return _finish(self.acc, self.ctype, self.n_rows, self.d, self.log_likelihood, self.entropy)


@np.errstate(invalid="ignore", over="ignore")
def e_step_stats(block: np.ndarray, model: Model, start: int = 0) -> GaussianStats:
    """E-step of one chunk: responsibilities under ``model`` and their sufficient statistics.

    Parameters
    ----------
    block : ndarray of shape (n_rows, n_features)
        The chunk (float32 or float64; never written to).
    model : Model
        From :func:`make_model`.
    start : int
        Global offset of the chunk (unused: the E-step has no randomness).

    Returns
    -------
    GaussianStats
        Moments around ``model.shift`` and the summed log-likelihood.
    """
    n_rows, d = block.shape
    step = EStep(model, block.dtype, n_rows, d)
    rows, p = step.rows(), model.coef.shape[1]
    # Per thread, not per call: see bigclust._scratch (1.6x in worker processes at k=10).
    buffer = scratch_array("e-step phi", (p, rows), np.float64)
    log_probs = scratch_array("e-step log probs", (step.k, rows), np.float64)
    for lo, hi in row_ranges(n_rows, rows):
        phi = phi_rows(block, lo, hi, model.shift, step.ctype, buffer[:, : hi - lo])
        step.add(phi, log_probs[:, : hi - lo])
    return step.stats()


def _sum_r_log_r(resp: np.ndarray) -> float:
    """``sum r log r`` with ``0 log 0 = 0`` (scikit-learn takes ``exp(log_resp) * log_resp``,
    whose underflowed terms are 0 too)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = resp * np.log(resp)
    return float(np.where(resp > 0, terms, 0.0).sum())


def _init_resp_t(init: InitResp, lo: int, hi: int) -> np.ndarray | None:
    """(k x rows) initial responsibilities for global rows [lo, hi); ``None`` if all zero."""
    from bigclust import _random

    k = init.n_components
    if init.kind == "data":
        return np.ones((k, hi - lo))
    if init.kind == "random":
        draws = _random.rows_random(
            init.seed, init.key, lo, hi, lambda rng, m: rng.uniform(size=(m, k))
        )
        resp = draws.T.copy()
        resp /= resp.sum(axis=0)
        return resp
    if init.kind == "rows":
        a, b = np.searchsorted(init.rows, [lo, hi])
        if a == b:
            return None
        resp = np.zeros((k, hi - lo))
        resp[init.components[a:b], init.rows[a:b] - lo] = 1.0
        return resp
    raise ValueError(f"unknown initialisation {init.kind!r}")


def _nearest_center_resp(y_t: np.ndarray, centers_shifted: np.ndarray) -> np.ndarray:
    """One-hot (k x rows) to the nearest center, by ``|c|^2 - 2 c.y`` (|y|^2 is common)."""
    scores = centers_shifted @ y_t
    scores *= -2.0
    scores += (centers_shifted**2).sum(axis=1)[:, None]
    labels = np.argmin(scores, axis=0)
    resp = np.zeros_like(scores)
    resp[labels, np.arange(y_t.shape[1])] = 1.0
    return resp


@np.errstate(invalid="ignore", over="ignore")
def init_stats(block: np.ndarray, init: InitResp, start: int = 0, given=None) -> GaussianStats:
    """Sufficient statistics of one chunk under initial responsibilities (see :class:`InitResp`).

    ``log_likelihood`` is 0. ``start`` keys the random stream and the row selection;
    ``given`` holds the chunk's rows of given (rows x k) responsibilities (``kind="given"``,
    see :func:`given_init_stats`).
    """
    n_rows, d = block.shape
    ctype, k = covariance_type_object(init.covariance_type), init.n_components
    p = d + ctype.n_quadratic(d)
    acc = _new_accumulators(ctype, k, d)
    rows = block_rows(p, k)
    buffer = np.empty((p, min(rows, n_rows)))
    finite = True
    for lo, hi in row_ranges(n_rows, rows):
        phi = _phi(block[lo:hi], init.shift, ctype, buffer[:, : hi - lo])
        # Rows with zero responsibility must not hide NaN: report it through the result.
        finite = finite and bool(np.isfinite(phi[:d]).all())
        if init.kind == "centers":
            resp = _nearest_center_resp(phi[:d], init.centers - init.shift)
        elif init.kind == "given":
            resp = np.asarray(given[lo:hi], dtype=np.float64).T
        else:
            resp = _init_resp_t(init, start + lo, start + hi)
        if resp is None and ctype.name == "tied":
            resp = np.zeros((k, hi - lo))  # tied still needs every row's y y^T
        _accumulate(phi, resp, ctype, d, acc)
    return _finish(acc, ctype, n_rows, d, 0.0 if finite else np.nan)


def given_init_stats(block: np.ndarray, resp: np.ndarray, init: InitResp, start: int = 0):
    """:func:`init_stats` for responsibilities given as an array aligned with the rows."""
    return init_stats(block, init, start, given=resp)


def init_stats_and_moments(block: np.ndarray, *rest) -> tuple[GaussianStats, ColumnMoments]:
    """:func:`init_stats` (or, with an aligned responsibilities array before ``init``,
    :func:`given_init_stats`) and the chunk's column moments: the initialization pass also
    finds the data's mean, the origin of the fit's E-steps."""
    *given, init, start = rest
    stats = init_stats(block, init, start, given=given[0] if given else None)
    return stats, column_moments_chunk(block, start)


@np.errstate(invalid="ignore", over="ignore")
def estimate_weighted_log_prob(block: np.ndarray, model: Model) -> np.ndarray:
    """(rows x k) ``log w_k + log N(x | mu_k, Sigma_k)`` for every row of ``block``."""
    n_rows = block.shape[0]
    k, p = model.coef.shape
    ctype = covariance_type_object(model.covariance_type)
    out = np.empty((n_rows, k))
    rows = block_rows(p, k)
    buffer = np.empty((p, min(rows, n_rows)))
    for lo, hi in row_ranges(n_rows, rows):
        phi = _phi(block[lo:hi], model.shift, ctype, buffer[:, : hi - lo])
        out[lo:hi] = _weighted_log_prob_t(phi, model).T
    return out


def _log_resp_and_norm(block: np.ndarray, model: Model):
    wlp = estimate_weighted_log_prob(block, model)
    top = wlp.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        log_norm = np.log(np.exp(wlp - top).sum(axis=1, keepdims=True)) + top
        log_resp = wlp - log_norm
    return log_resp, log_norm[:, 0]


def _raise_at_nonfinite_row(values: np.ndarray, block: np.ndarray) -> None:
    """Per-row outputs that came out non-finite because of a NaN/inf row name that row."""
    if np.isfinite(values).all():
        return
    row = first_nonfinite_row(block)
    if row is not None:
        raise NonFiniteRow(row)


def predict_block(block: np.ndarray, model: Model) -> np.ndarray:
    """Most probable component of each row (int64)."""
    wlp = estimate_weighted_log_prob(block, model)
    _raise_at_nonfinite_row(wlp.max(axis=1), block)
    return wlp.argmax(axis=1).astype(np.int64)


def predict_proba_block(block: np.ndarray, params: tuple[Model, np.dtype]) -> np.ndarray:
    """Responsibilities (rows x k) in the output dtype ``params[1]``."""
    model, dtype = params
    log_resp, log_norm = _log_resp_and_norm(block, model)
    _raise_at_nonfinite_row(log_norm, block)
    return np.exp(log_resp).astype(dtype, copy=False)


def score_samples_block(block: np.ndarray, params: tuple[Model, np.dtype]) -> np.ndarray:
    """``log p(x)`` of each row in the output dtype ``params[1]``."""
    model, dtype = params
    _, log_norm = _log_resp_and_norm(block, model)
    _raise_at_nonfinite_row(log_norm, block)
    return log_norm.astype(dtype, copy=False)


def log_prob_sum(block: np.ndarray, model: Model, start: int = 0) -> float:
    """``sum_i log p(x_i)`` over the chunk (for ``score``, ``bic``, ``aic``)."""
    return float(_log_resp_and_norm(block, model)[1].sum())
