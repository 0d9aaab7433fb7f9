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

from bigclust.cluster import _minibatch_kernels as mbk


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
    _nearest(P, *_keys(P), centers_sq, labels)


def _keys(P: np.ndarray) -> tuple:
    """``P``'s integer view, and the mask and shift that make its bits ordered keys."""
    if P.dtype == np.float32:
        return P.view(np.int32), np.int32(0x7FFFFFFF), np.int32(31)
    return P.view(np.int64), np.int64(0x7FFFFFFFFFFFFFFF), np.int64(63)


@njit(cache=True, nogil=True)
def _nearest(P, keys, mask, sign_shift, centers_sq, labels):  # pragma: no cover - compiled
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


# The mini-batch fit's stopping rule, compiled from its plain-Python source so that both
# paths apply the same one.
_convergence_rule = njit(cache=True, nogil=True)(mbk.convergence_rule)

#: What :func:`fit_steps` answers besides the rule's: the next step is left to NumPy's.
LEFT_TO_NUMPY = -1


def fit_steps(block, order, shift, weights, first, n_batches, centers, counts, scalars, *rest):
    """Mini-batch steps on the batches ``order[first + b * batch_size:][:batch_size]``,
    ``b < n_batches``, of a segment's rows ``block`` (``weights``: float64 per row of
    ``block``, or empty), each gathered and augmented around ``shift`` (see
    :func:`bigclust.cluster._minibatch_kernels.augment`) into a buffer of one batch, updating
    ``centers`` (data dtype) and ``counts`` in place, in one call that holds no GIL.

    ``scalars`` carries the fit's numbers in and out: step, rows since the last reassignment
    check, the inertia's moving average and its minimum (NaN: unset), steps without
    improvement, the last batch's inertia. Each step: the product with the augmented centers
    (the BLAS sgemm/dgemm that NumPy's ``matmul`` calls), :func:`nearest`'s labels,
    :func:`minibatch_finish`, scikit-learn's stopping rule. A step that would reassign a
    center, or that meets a NaN or infinity, is not made: the loop returns before it
    (answer :data:`LEFT_TO_NUMPY`), for :func:`~bigclust.cluster._minibatch_kernels.minibatch_step`
    to make it with its random stream. Returns ``(steps made, answer)``, answer 0 when the
    batches (or ``max_steps``) ran out, else the rule's or :data:`LEFT_TO_NUMPY`.
    """
    *params, P, Xa, w, labels, centers_t, sums, new, counts_new = rest
    return _fit_steps(
        block, order, shift, weights, first, n_batches, centers, counts, scalars, *params,
        P, *_keys(P), Xa, w, labels, centers_t, sums, new, counts_new,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def _fit_steps(
    block, order, shift, weights, first, n_batches, centers, counts, scalars, batch_size,
    max_steps, reassignment_ratio, tol, max_no_improvement, n_samples,
    P, keys, mask, sign_shift, Xa, w, labels, centers_t, sums, new, counts_new,
):  # pragma: no cover - compiled  # fmt: skip
    """:func:`fit_steps`, given ``P``'s integer keys (see :func:`_keys`)."""
    k, d = centers.shape
    weighted = weights.shape[0] > 0
    no_centers_sq = P[0, :0]
    for b in range(n_batches):
        if scalars[0] >= max_steps:
            return b, 0
        lo = first + b * batch_size
        for i in range(batch_size):  # the rows as shuffle_segment's order and augment give them
            row = order[lo + i]
            for f in range(d):
                Xa[i, f] = block[row, f] - shift[f]
            Xa[i, d] = 1
            if weighted:
                w[i] = weights[row]
        # The reassignment check is due every 10 k rows, or while a center has no weight.
        n_since = scalars[1] + batch_size
        due = n_since >= 10 * k
        for j in range(k):
            due |= counts[j] == 0
        for j in range(k):  # [-2 C^T; ||c||^2] in the data's dtype
            sq = centers[j, 0] * centers[j, 0] * 0
            for f in range(d):
                c = centers[j, f]
                centers_t[f, j] = c * -2
                sq += c * c
            centers_t[d, j] = sq
        np.dot(Xa, centers_t, P)
        _nearest(P, keys, mask, sign_shift, no_centers_sq, labels)
        total, finite = minibatch_finish(
            Xa, labels, w, centers, counts, sums, new, counts_new, True
        )
        if not finite:
            return b, LEFT_TO_NUMPY
        if due:
            smallest, largest = counts_new[0], counts_new[0]
            for j in range(k):
                smallest, largest = min(smallest, counts_new[j]), max(largest, counts_new[j])
            if reassignment_ratio * largest > smallest:
                return b, LEFT_TO_NUMPY
        moved = 0.0  # the centers' squared shift
        if tol > 0:
            for j in range(k):
                for f in range(d):
                    diff = np.float64(new[j, f]) - np.float64(centers[j, f])
                    moved += diff * diff
        for j in range(k):
            counts[j] = counts_new[j]
            for f in range(d):
                centers[j, f] = new[j, f]
        step = scalars[0] + 1
        answer, ewa, ewa_min, no_improvement = _convergence_rule(
            step, scalars[2], scalars[3], scalars[4], total, moved, batch_size, n_samples,
            tol, max_no_improvement,
        )  # fmt: skip
        scalars[0], scalars[1], scalars[2], scalars[3] = step, 0.0 if due else n_since, ewa, ewa_min
        scalars[4], scalars[5] = no_improvement, total
        if answer != 0:
            return b + 1, answer
    return n_batches, 0
