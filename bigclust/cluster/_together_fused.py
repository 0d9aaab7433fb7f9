"""Compiled steps of the Lloyd kernel's together form (:mod:`bigclust.cluster._together`).

Each replays, in one loop over a row block, NumPy/SciPy operations of the NumPy reference
Lloyd step (:func:`bigclust.cluster._kernels._lloyd`) with the same floating-point operations
in the same order, so that a model served here gets the very bits it gets alone:

- NumPy's ``argmin`` along each row (the first minimum; the first NaN if there is one), by
  :func:`bigclust.cluster._fused.nearest`,
- SciPy's one-hot CSC product ``onehot @ (x - shift)``: per label, ``y += w * v`` over the
  rows in order, from zero,
- ``np.bincount(labels, weights=w)``: per label, ``t += w`` over the rows in order, from zero.

One pass over the block replaces an argmin over short rows, a float64 copy of the rows, a
sparse product and a bincount per model. No ``fastmath``: reassociating or fusing a multiply
and an add would change the bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bigclust.cluster._fused import nearest  # noqa: F401 - one module of compiled steps


@njit(cache=True, nogil=True)
def sum_by_label(X64, shift, weights, labels, sums, totals):  # pragma: no cover - compiled
    """``sums[j] += w_i (x_i - shift)`` (if ``sums`` is not empty) and ``totals[j] += w_i``
    (if ``totals`` is not empty) over the rows of label ``j``, in row order from the values
    there (``weights`` empty: every weight is 1, added as ``1 * v`` is: exactly ``v``)."""
    n = labels.shape[0]
    d = X64.shape[1]
    weighted = weights.shape[0] > 0
    accumulate = sums.shape[0] > 0
    count = totals.shape[0] > 0
    for i in range(n):
        label = labels[i]
        w = weights[i] if weighted else 1.0
        if accumulate:
            if weighted:
                for f in range(d):
                    sums[label, f] += w * (X64[i, f] - shift[f])
            else:
                for f in range(d):
                    sums[label, f] += X64[i, f] - shift[f]
        if count:
            totals[label] += w


@njit(cache=True, nogil=True)
def min_squared_t(P, centers_sq, norms, zero, out):  # pragma: no cover - compiled
    """``out[i] = min_j max((P[j, i] + centers_sq[j]) + norms[i], zero)``: what
    ``Nearest.min_squared`` computes from its product ``P`` (centers x rows) through NumPy's
    ``+=``, ``np.maximum`` and ``min(axis=0)`` (NaN wins both), in the dtype of ``P``
    (``zero`` is 0 in that dtype)."""
    k, n = P.shape
    out[:] = np.inf
    for j in range(k):
        c = centers_sq[j]
        for i in range(n):
            v = (P[j, i] + c) + norms[i]
            if not (v >= zero or np.isnan(v)):
                v = zero
            m = out[i]
            out[i] = v if (v < m or np.isnan(v)) else m


@njit(cache=True, nogil=True)
def squared_t64(P, centers_sq, norms, zero, out):  # pragma: no cover - compiled
    """``out = float64(max((P + centers_sq[:, None]) + norms, zero))``: what
    ``Nearest.squared_t(X).astype(np.float64)`` computes from its product ``P`` (NaN kept)."""
    k, n = P.shape
    for j in range(k):
        c = centers_sq[j]
        for i in range(n):
            v = (P[j, i] + c) + norms[i]
            if v < zero:
                v = zero
            out[j, i] = v
