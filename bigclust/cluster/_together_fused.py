"""Compiled steps of the Lloyd kernel's together form (:mod:`bigclust.cluster._together`).

Each replays, in one loop over a row block, NumPy/SciPy operations of the NumPy reference
Lloyd step (:func:`bigclust.cluster._kernels._lloyd`) with the same floating-point operations
in the same order, so that a model served here gets the very bits it gets alone:

- NumPy's ``argmin`` along each row (the first minimum; the first NaN if there is one),
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


@njit(cache=True, nogil=True, inline="always")
def _argmin_row(p, c):  # pragma: no cover - compiled
    """``argmin(p + c)`` by NumPy's rule: the first minimum, or the first NaN if any. The
    minimum first, in four independent lanes (min is exact in any order; one dependent
    chain of compares is several times slower), then the first index that reaches it."""
    k = p.shape[0]
    m0 = m1 = m2 = m3 = np.inf
    nan = False
    j = 0
    while j + 4 <= k:
        v0, v1 = p[j] + c[j], p[j + 1] + c[j + 1]
        v2, v3 = p[j + 2] + c[j + 2], p[j + 3] + c[j + 3]
        m0 = v0 if v0 < m0 else m0
        m1 = v1 if v1 < m1 else m1
        m2 = v2 if v2 < m2 else m2
        m3 = v3 if v3 < m3 else m3
        nan |= (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
        j += 4
    while j < k:
        v0 = p[j] + c[j]
        m0 = v0 if v0 < m0 else m0
        nan |= v0 != v0
        j += 1
    if nan:
        for j in range(k):
            if np.isnan(p[j] + c[j]):
                return j
    best = min(min(m0, m1), min(m2, m3))
    for j in range(k):
        if p[j] + c[j] == best:
            return j
    return 0  # every value +inf: the first


@njit(cache=True, nogil=True)
def assign_and_sum(P, centers_sq, X64, shift, weights, labels, sums, totals):  # pragma: no cover
    """``labels[i] = argmin_j (P[i, j] + centers_sq[j])`` (the distances NumPy's
    ``P += centers_sq`` gives, in the dtype of ``P``; NumPy's argmin rule); if ``sums`` is not
    empty, ``sums[j] += w_i (x_i - shift)`` and ``totals[j] += w_i`` over the rows of label
    ``j`` (``weights`` empty: every weight is 1, added as ``1 * v`` is: exactly ``v``)."""
    n = P.shape[0]
    d = X64.shape[1]
    weighted = weights.shape[0] > 0
    accumulate = sums.shape[0] > 0
    count = totals.shape[0] > 0
    for i in range(n):
        label = _argmin_row(P[i], centers_sq)
        labels[i] = label
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
