"""Compiled (numba) passes over a row block after its BLAS product: the rest of a K-Means step.

Given the product of a block's rows with the centers, :func:`nearest` gives the labels NumPy's
``(P + centers_sq).argmin(axis=1)`` gives, bit for bit; one compiled loop over the rows gives
the per-center sums (float64) and weights, another the exact inertia from direct
differences, and a last one the mini-batch center update. NumPy needs a sparse one-hot
product, a ``bincount``, a gather and half a dozen temporaries for the same work.

Compiled at first use and cached on disk (``cache=True``);
:func:`bigclust.cluster._kernels.compiled_passes` decides when the kernels use these passes
rather than their NumPy reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def nearest(P: np.ndarray, centers_sq: np.ndarray, labels: np.ndarray) -> None:
    """``labels[:] = (P + centers_sq).argmin(axis=1)``, bit for bit, overwriting ``P``.

    ``P`` (rows x centers, C-contiguous float32 or float64) is a block's product with the
    centers; ``centers_sq`` (in the dtype of ``P``, every entry ``>= +0``) is added as NumPy's
    ``P += centers_sq`` adds it (or nothing if it is empty); ``labels`` is int32.

    Why not NumPy: its ``argmin`` along short rows pays a call per row (half of a Lloyd
    block's time after the product at k=64), and numba does not vectorize a floating-point
    min (it would need fast-math flags that LLVM does not take from numba). Floats compare
    like the integers of their bits once negative ones have the other bits flipped, and
    integer mins vectorize: the sums are stored back as those integer keys, then the first
    index that holds the smallest key is the label. No sum is -0.0 (``centers_sq >= +0``, and
    +0.0 is added where it is empty), so equal floats have equal keys; a row holding a NaN
    gets its first NaN, as in NumPy.
    """
    if P.dtype == np.float32:
        _nearest(P, P.view(np.int32), centers_sq, labels, np.int32(0x7FFFFFFF), np.int32(31))
    else:
        _nearest(P, P.view(np.int64), centers_sq, labels, _MASK64, np.int64(63))


_MASK64 = np.int64(0x7FFFFFFFFFFFFFFF)


@njit(cache=True, nogil=True)
def _nearest(P, keys, centers_sq, labels, mask, sign_shift):  # pragma: no cover - compiled
    """:func:`nearest` on ``P`` and ``keys``, its integer view."""
    n, k = P.shape
    add = centers_sq.shape[0] > 0
    for i in range(n):
        row = P[i]
        nan = False
        if add:
            for j in range(k):
                v = row[j] + centers_sq[j]
                row[j] = v
                nan |= v != v
        else:
            for j in range(k):
                v = row[j] + 0.0  # -0.0 becomes +0.0, which it equals; nothing else changes
                row[j] = v
                nan |= v != v
        if nan:
            for j in range(k):
                if row[j] != row[j]:
                    labels[i] = j
                    break
            continue
        key_row = keys[i]
        smallest = mask
        for j in range(k):
            b = key_row[j]
            key = b ^ ((b >> sign_shift) & mask)
            key_row[j] = key
            smallest = min(smallest, key)
        first = np.int32(k)
        for j in range(k):
            at = np.int32(j) if key_row[j] == smallest else np.int32(k)
            first = min(first, at)
        labels[i] = first


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
