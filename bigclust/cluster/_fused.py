"""Compiled (numba) passes over a row block after its nearest centers: the rest of a K-Means step.

Given the rows of a block and their labels (NumPy's ``argmin`` over the BLAS product, kept
because its SIMD loop is twice as fast here as a compiled scalar one), one compiled loop over
the rows gives the per-center sums (float64) and weights, another the exact inertia from
direct differences, and a last one the mini-batch center update. NumPy needs a sparse one-hot
product, a ``bincount``, a gather and half a dozen temporaries for the same work.

Compiled at first use and cached on disk (``cache=True``);
:func:`bigclust.cluster._kernels.compiled_passes` decides when the kernels use these passes
rather than their NumPy reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def accumulate(X, labels, weights, shift, sums, totals):  # pragma: no cover - compiled
    """``sums[j] += w_i (x_i - shift)`` and ``totals[j] += w_i`` over the rows of label ``j``,
    in float64 (``weights`` empty: every weight is 1; ``totals`` empty: not wanted)."""
    n, d = X.shape
    weighted = weights.shape[0] > 0
    count = totals.shape[0] > 0
    for i in range(n):
        j = labels[i]
        if weighted:
            w = weights[i]
            for f in range(d):
                sums[j, f] += w * (np.float64(X[i, f]) - shift[f])
            if count:
                totals[j] += w
        else:
            for f in range(d):
                sums[j, f] += np.float64(X[i, f]) - shift[f]
            if count:
                totals[j] += 1.0


# Reassociating the sum of squares lets it vectorize (4x faster); every term is >= 0, so the
# order changes only the last bits.
@njit(cache=True, nogil=True, fastmath={"reassoc"})
def inertia(X, labels, weights, centers):  # pragma: no cover - compiled
    """``sum_i w_i ||x_i - c_{labels[i]}||^2`` from direct differences in float64: exact to
    rounding where ``||x||^2 - 2 x.c + ||c||^2`` loses every digit (rows on their centers).
    Only the first ``centers.shape[1]`` columns of ``X`` count."""
    n = X.shape[0]
    d = centers.shape[1]
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


@njit(cache=True, nogil=True)
def minibatch_finish(
    Xa, labels, weights, centers, counts, sums, new, counts_new, want_inertia
):  # pragma: no cover - compiled
    """The rest of a mini-batch step on one block of augmented rows ``Xa`` given their
    labels: ``sums`` (zeroed here; its last column gets the weights), the update into
    ``new``/``counts_new``, and the batch's inertia if asked. Returns ``(inertia, finite)``."""
    sums[:] = 0.0
    accumulate(Xa, labels, weights, np.zeros(Xa.shape[1]), sums, weights[:0])
    total = inertia(Xa, labels, weights, centers.astype(np.float64)) if want_inertia else 0.0
    d = centers.shape[1]
    finite = minibatch_update(centers, counts, sums[:, :d], sums[:, d], new, counts_new)
    return total, finite
