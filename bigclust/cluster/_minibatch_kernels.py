"""Mini-batch K-Means kernels: pure NumPy, no Dask.

One mini-batch step follows scikit-learn's ``_mini_batch_step`` (Sculley 2010, scikit-learn
>= 1.1): assign the batch to the current centers, update every center that received weight as
``(c * W + S_b) / (W + w_b)`` with ``W`` its running weight, then (when due) move the centers
whose running weight is below ``reassignment_ratio`` times the largest one to random rows of
the batch. Steps never modify their inputs, so a caller can drop a failed step.

:func:`fit_segment` runs the steps of :meth:`MiniBatchKMeans.fit` over one segment of rows
(see :mod:`bigclust.cluster._minibatch` for how segments and batches are chosen) and carries
the last partial batch to the next segment. Centers keep the dtype of the data, as in
scikit-learn; running weights, sums and inertia are float64.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from bigclust import _random
from bigclust.cluster._kernels import Nearest, cluster_sums, map_row_blocks

#: Stream keys (see bigclust._random): the order of segments in an epoch, the order of rows
#: in a segment, the rows that replace reassigned centers at a step.
KEY_SEGMENT_ORDER, KEY_ROW_ORDER, KEY_REASSIGN = 41, 42, 43


# --- one step --------------------------------------------------------------------------


def augment(X: np.ndarray) -> np.ndarray:
    """``[X, 1]``: one GEMM against :func:`augmented_centers` gives ``||c||^2 - 2 x.c``, and
    one GEMM of a one-hot matrix against it gives the per-center sums and weights."""
    out = np.empty((X.shape[0], X.shape[1] + 1), X.dtype)
    out[:, :-1] = X
    out[:, -1] = 1
    return out


def augmented_centers(centers: np.ndarray) -> np.ndarray:
    """``[-2 c, ||c||^2]`` for every center, in the centers' dtype."""
    return np.hstack([-2 * centers, np.einsum("ij,ij->i", centers, centers)[:, None]])


class Assigned(NamedTuple):
    labels: np.ndarray  # (n,) int32
    sums: np.ndarray  # (k, d) float64: weighted sum of each center's rows
    weights: np.ndarray  # (k,) float64: total weight of each center's rows
    inertia: float  # weighted squared distances to the nearest center


def assign(
    Xa: np.ndarray,
    weights: np.ndarray | None,
    centers: np.ndarray,
    x_sq: np.ndarray | None = None,
    *,
    sums: bool = True,
    parallel: bool = False,
) -> Assigned:
    """Nearest center of every row of the augmented rows ``Xa``, with per-center statistics.

    Row-blocked, so temporaries stay small for a batch of any size. ``x_sq`` (the squared
    norms of the rows) is computed when not given. ``parallel`` splits the rows over the
    machine's cores (for a batch in the client's memory, never inside a Dask task).
    """
    n, k = Xa.shape[0], centers.shape[0]
    d = Xa.shape[1] - 1
    Ca = augmented_centers(centers.astype(Xa.dtype, copy=False))
    labels = np.empty(n, np.int32)

    def block(rows: slice):
        B = Xa[rows]
        D = B @ Ca.T
        lab = D.argmin(axis=1)
        labels[rows] = lab
        xs = np.einsum("ij,ij->i", B[:, :-1], B[:, :-1]) if x_sq is None else x_sq[rows]
        dist = np.take_along_axis(D, lab[:, None], axis=1)[:, 0]
        dist += xs
        np.maximum(dist, 0, out=dist)  # rounding can make tiny squared distances negative
        w = None if weights is None else weights[rows]
        inertia = float(dist.sum(dtype=np.float64) if w is None else dist @ w)
        # The last column of the augmented rows sums the weights.
        total = cluster_sums(B, lab, w, k) if sums else 0.0
        return total, inertia

    parts = map_row_blocks(block, n, k, parallel=parallel)
    total = sum((t for t, _ in parts), np.zeros((k, d + 1)))
    inertia = sum(i for _, i in parts)
    return Assigned(labels, total[:, :-1], total[:, -1], inertia)


def reassign_mask(counts: np.ndarray, reassignment_ratio: float, n_rows: int) -> np.ndarray:
    """scikit-learn's rule: centers whose running weight is below ``reassignment_ratio`` times
    the largest, at most ``0.5 * n_rows`` of them (the lowest weights first)."""
    mask = counts < reassignment_ratio * counts.max()
    if mask.sum() > 0.5 * n_rows:
        mask[np.argsort(counts)[int(0.5 * n_rows) :]] = False
    return mask


class Step(NamedTuple):
    centers: np.ndarray  # (k, d) in the data's dtype
    counts: np.ndarray  # (k,) float64
    inertia: float  # of the batch, against the centers before the step
    reassigned: np.ndarray  # (k,) bool


def minibatch_step(
    Xa: np.ndarray,
    weights: np.ndarray | None,
    centers: np.ndarray,
    counts: np.ndarray,
    *,
    reassign: bool,
    reassignment_ratio: float,
    rng: Callable[[], np.random.Generator] | None,
    x_sq: np.ndarray | None = None,
    parallel: bool = False,
) -> Step:
    """One scikit-learn mini-batch step on the augmented batch ``Xa`` (see :func:`augment`).

    ``rng()`` gives the generator for the replacement rows, made only if a center is
    reassigned. Returns new arrays; ``centers`` and ``counts`` are not modified.
    """
    a = assign(Xa, weights, centers, x_sq, parallel=parallel)
    counts_new = counts + a.weights
    new = centers.astype(np.float64)
    hit = a.weights > 0
    new[hit] = (new[hit] * counts[hit, None] + a.sums[hit]) / counts_new[hit, None]
    new = new.astype(centers.dtype)
    mask = np.zeros(len(counts), bool)
    if reassign and reassignment_ratio > 0:
        mask = reassign_mask(counts_new, reassignment_ratio, Xa.shape[0])
        n_reassigns = int(mask.sum())
        if n_reassigns:
            picks = rng().choice(Xa.shape[0], n_reassigns, replace=False)
            new[mask] = Xa[picks, :-1]
        if (~mask).any():
            # As scikit-learn: reset their weight to the smallest kept one, not to zero, so
            # they are not reassigned again at once.
            counts_new[mask] = counts_new[~mask].min()
    return Step(new, counts_new, a.inertia, mask)


def is_reassign_due(counts: np.ndarray, n_since: int, batch_size: int, n_clusters: int):
    """scikit-learn's schedule: every ``10 * n_clusters`` rows, or whenever a center has no
    weight yet. Returns ``(due, n_since_after)``."""
    n_since += batch_size
    if (counts == 0).any() or n_since >= 10 * n_clusters:
        return True, 0
    return False, n_since


def first_nonfinite_row(block: np.ndarray) -> int | None:
    rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
    return int(rows[0]) if rows.size else None


# --- fit: the steps over one segment ---------------------------------------------------


class FitParams(NamedTuple):
    seed: int
    n_samples: int
    batch_size: int
    max_steps: int
    reassignment_ratio: float
    tol: float  # already scaled by the mean variance
    max_no_improvement: int | None


class Piece(NamedTuple):
    """Global rows ``[lo, hi)`` read as one block; ``epoch`` and ``segment`` key its order."""

    lo: int
    hi: int
    epoch: int
    segment: int


@dataclasses.dataclass
class FitState:
    """Everything a mini-batch fit carries from one segment to the next (small)."""

    centers: np.ndarray
    counts: np.ndarray
    step: int = 0
    n_since_last_reassign: int = 0
    ewa_inertia: float | None = None
    ewa_inertia_min: float | None = None
    no_improvement: int = 0
    carry: np.ndarray | None = None  # augmented rows of a batch begun in the last segment
    carry_weights: np.ndarray | None = None
    carry_index: np.ndarray | None = None  # their global rows
    stopped: str | None = None  # "converged-tol", "converged-inertia", "max_iter"
    bad_row: int | None = None  # global row of a NaN/inf, if one was met
    last_batch_inertia: float = 0.0


def _convergence(state: FitState, params: FitParams, batch_inertia: float, shift: float):
    """scikit-learn's ``_mini_batch_convergence``; ``state.step`` counts from 1 here."""
    batch_inertia /= params.batch_size
    if state.step == 1:  # the first batch measures the initialization only
        return None
    if state.ewa_inertia is None:
        state.ewa_inertia = batch_inertia
    else:
        alpha = min(params.batch_size * 2.0 / (params.n_samples + 1), 1)
        state.ewa_inertia = state.ewa_inertia * (1 - alpha) + batch_inertia * alpha
    if params.tol > 0.0 and shift <= params.tol:
        return "converged-tol"
    if state.ewa_inertia_min is None or state.ewa_inertia < state.ewa_inertia_min:
        state.no_improvement = 0
        state.ewa_inertia_min = state.ewa_inertia
    else:
        state.no_improvement += 1
    if params.max_no_improvement is not None and state.no_improvement >= params.max_no_improvement:
        return "converged-inertia"
    return None


def fit_segment(block, weights, state: FitState, params: FitParams, piece: Piece) -> FitState:
    """Mini-batch steps over one segment of rows, in its random order for this epoch.

    The batches are consecutive runs of ``batch_size`` rows of the epoch's row order, which
    continue across segments: the rows of a batch begun in the previous segment arrive in
    ``state.carry``, and the rows left at the end go out in the returned state's ``carry``.
    Steps stop at ``params.max_steps`` or at convergence (``stopped`` is set).
    """
    state = dataclasses.replace(state)
    if state.stopped is not None:
        return state
    order = _random.generator(params.seed, KEY_ROW_ORDER, piece.epoch, piece.segment).permutation(
        block.shape[0]
    )
    rows = augment(np.take(block, order, axis=0))  # 3x faster than block[order]
    w = None if weights is None else np.asarray(weights, np.float64)[order]
    index = piece.lo + order
    if state.carry is not None:
        rows = np.concatenate([state.carry, rows])
        index = np.concatenate([state.carry_index, index])
        if w is not None:
            w = np.concatenate([state.carry_weights, w])
    x_sq = np.einsum("ij,ij->i", rows[:, :-1], rows[:, :-1])
    bs, k = params.batch_size, len(state.counts)
    lo = 0
    while lo + bs <= rows.shape[0] and state.step < params.max_steps:
        batch = slice(lo, lo + bs)
        due, state.n_since_last_reassign = is_reassign_due(
            state.counts, state.n_since_last_reassign, bs, k
        )
        step = minibatch_step(
            rows[batch],
            None if w is None else w[batch],
            state.centers,
            state.counts,
            reassign=due,
            reassignment_ratio=params.reassignment_ratio,
            rng=functools.partial(_random.generator, params.seed, KEY_REASSIGN, state.step),
            x_sq=x_sq[batch],
        )
        if not np.isfinite(step.inertia):
            bad = first_nonfinite_row(rows[batch, :-1])
            if bad is not None:
                state.bad_row = int(index[lo + bad])
                return state
        shift = (
            float(((step.centers.astype(np.float64) - state.centers) ** 2).sum())
            if params.tol > 0
            else 0.0
        )
        state.centers, state.counts = step.centers, step.counts
        state.step += 1
        state.last_batch_inertia = step.inertia
        lo += bs
        stop = _convergence(state, params, step.inertia, shift)
        if stop is not None:
            state.stopped = stop
            break
    if state.stopped is None and state.step >= params.max_steps:
        state.stopped = "max_iter"
    rest = slice(lo, rows.shape[0]) if state.stopped is None else slice(0, 0)
    state.carry = rows[rest].copy() if rest.stop > rest.start else None
    state.carry_weights = None if (w is None or state.carry is None) else w[rest].copy()
    state.carry_index = None if state.carry is None else index[rest].copy()
    return state


# --- partial_fit on a chunked array: one step per chunk ----------------------------------


class PartialParams(NamedTuple):
    seed: int
    batch_size: int  # scikit-learn's _batch_size, fixed by the first partial_fit call
    reassignment_ratio: float
    compute_labels: bool
    parallel: bool = False  # split the rows over the cores (a batch in the client's memory)


@dataclasses.dataclass
class PartialState:
    centers: np.ndarray
    counts: np.ndarray
    n_steps: int
    n_since_last_reassign: int
    inertia: float = 0.0  # sum over the chunks of their inertia after their own step
    bad_row: int | None = None


def partial_fit_chunk(block, weights, state: PartialState, params: PartialParams, piece):
    """One :meth:`MiniBatchKMeans.partial_fit` step with the whole chunk as the batch."""
    state = dataclasses.replace(state)
    if state.bad_row is not None:
        return state
    Xa = augment(block)
    w = None if weights is None else np.asarray(weights, block.dtype)
    due, n_since = is_reassign_due(
        state.counts, state.n_since_last_reassign, params.batch_size, len(state.counts)
    )
    step = minibatch_step(
        Xa,
        w,
        state.centers,
        state.counts,
        reassign=due,
        reassignment_ratio=params.reassignment_ratio,
        rng=functools.partial(_random.generator, params.seed, KEY_REASSIGN, state.n_steps),
        parallel=params.parallel,
    )
    if not np.isfinite(step.inertia):
        bad = first_nonfinite_row(block)
        if bad is not None:
            state.bad_row = piece.lo + bad
            return state
    state.centers, state.counts = step.centers, step.counts
    state.n_since_last_reassign = n_since
    state.n_steps += 1
    if params.compute_labels:
        state.inertia += assign(Xa, w, state.centers, sums=False).inertia
    return state


# --- final assignment -------------------------------------------------------------------


class LabelsInertia:
    """Labels of some row ranges and their inertia; combine by concatenation and addition."""

    __slots__ = ("inertia", "parts")

    def __init__(self, inertia: float, parts: list[tuple[int, np.ndarray]]):
        self.inertia, self.parts = inertia, parts

    def combine(self, other: LabelsInertia) -> LabelsInertia:
        return LabelsInertia(self.inertia + other.inertia, self.parts + other.parts)

    def all_finite(self) -> bool:
        return bool(np.isfinite(self.inertia))

    def labels(self) -> np.ndarray:
        return np.concatenate([labels for _, labels in sorted(self.parts, key=lambda p: p[0])])


def labels_inertia(
    block: np.ndarray, weights: np.ndarray | None, centers: np.ndarray, *, parallel: bool = False
):
    """Nearest center of every row (as ``predict``) and the weighted inertia."""
    labels = np.empty(block.shape[0], np.int32)
    search = Nearest(centers, block.dtype)

    def one(rows: slice) -> float:
        lab, dist = (Nearest(centers, block.dtype) if parallel else search)(block[rows])
        labels[rows] = lab
        w = None if weights is None else np.asarray(weights[rows], np.float64)
        return float(dist.sum(dtype=np.float64) if w is None else dist.astype(np.float64) @ w)

    inertia = sum(map_row_blocks(one, block.shape[0], len(centers), parallel=parallel))
    return labels, inertia


def labels_inertia_chunk(block, *rest) -> LabelsInertia:
    """Driver kernel: the final assignment of a NumPy fit, labels and inertia in one pass."""
    *weights, centers, start = rest
    labels, inertia = labels_inertia(block, weights[0] if weights else None, centers)
    return LabelsInertia(inertia, [(start, labels)])
