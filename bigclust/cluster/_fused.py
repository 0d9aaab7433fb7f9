"""Compiled (numba) passes over a row block after its BLAS product: the rest of a K-Means step.

Each pass takes ``D``, the block's ``(n_rows, n_centers)`` matrix of ``-2 x.c`` (or of
``||c||^2 - 2 x.c``, with ``centers_sq`` all zero), computed by one BLAS product in the data's
dtype, and finishes the block in one compiled loop over its rows: nearest center, per-center
sums (float64) and weights, and where asked the exact squared distance to the assigned center.
NumPy takes a dozen passes over the matrix and the rows for the same work (its argmin over 64
centers alone costs as much as the product).

The nearest center is NumPy's ``argmin`` of ``D[i] + centers_sq``, bit for bit: the same float
additions, the first minimum on ties and the first NaN if there is one (so a row holding a NaN
or an infinity always has a non-finite ``best``).

Compiled at first use and cached on disk (``cache=True``); :func:`bigclust.cluster._kernels.
compiled_passes` decides when a kernel uses them rather than its NumPy reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def nearest(D, centers_sq, labels, best):  # pragma: no cover - compiled
    """``labels[i] = argmin_j D[i, j] + centers_sq[j]`` and ``best[i]`` that minimum."""
    n, k = D.shape
    for i in range(n):
        b = D[i, 0] + centers_sq[0]
        a = 0
        if b == b:
            for j in range(1, k):
                v = D[i, j] + centers_sq[j]
                if v < b:
                    b = v
                    a = j
                elif v != v:  # NaN
                    b = v
                    a = j
                    break
        labels[i] = a
        best[i] = b


@njit(cache=True, nogil=True)
def accumulate(X, labels, weights, shift, sums, totals):  # pragma: no cover - compiled
    """``sums[j] += w_i (x_i - shift)`` and ``totals[j] += w_i`` over the rows of label ``j``,
    in float64 (``weights`` empty: every weight is 1)."""
    n, d = X.shape
    weighted = weights.shape[0] > 0
    for i in range(n):
        j = labels[i]
        if weighted:
            w = weights[i]
            for f in range(d):
                sums[j, f] += w * (np.float64(X[i, f]) - shift[f])
            totals[j] += w
        else:
            for f in range(d):
                sums[j, f] += np.float64(X[i, f]) - shift[f]
            totals[j] += 1.0


# Reassociating the sum of squares lets it vectorize (4x faster); every term is >= 0, so the
# order changes only the last bits.
@njit(cache=True, nogil=True, fastmath={"reassoc"})
def inertia(X, labels, weights, centers):  # pragma: no cover - compiled
    """``sum_i w_i ||x_i - c_{labels[i]}||^2`` from direct differences in float64: exact to
    rounding where ``||x||^2 - 2 x.c + ||c||^2`` loses every digit (rows on their centers)."""
    n, d = X.shape
    weighted = weights.shape[0] > 0
    total = 0.0
    for i in range(n):
        j = labels[i]
        acc = 0.0
        for f in range(d):
            diff = np.float64(X[i, f]) - centers[j, f]
            acc += diff * diff
        total += acc * weights[i] if weighted else acc
    return total


@njit(cache=True, nogil=True)
def minibatch_update(centers, counts, sums, totals, new, counts_new):  # pragma: no cover
    """``new = (c W + S_b) / (W + w_b)`` (cast to the dtype of ``new``) for the centers that
    received weight, the others unchanged; ``counts_new = W + w_b``. The same float64
    operations as the NumPy step. Returns whether every sum is finite."""
    k, d = centers.shape
    finite = True
    for j in range(k):
        counts_new[j] = counts[j] + totals[j]
        for f in range(d):
            s = sums[j, f]
            finite &= np.isfinite(s)
            if totals[j] > 0:
                new[j, f] = (np.float64(centers[j, f]) * counts[j] + s) / counts_new[j]
            else:
                new[j, f] = centers[j, f]
    return finite
