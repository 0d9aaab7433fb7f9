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
from bigclust._scratch import thread_cached
from bigclust.cluster._kernels import (
    _NO_WEIGHTS,
    MIN_PARALLEL_ROWS,
    Nearest,
    OneHot,
    _direct_inertia,
    block_rows,
    compiled_passes,
    map_row_blocks,
)

#: Stream keys (see bigclust._random): the order of segments in an epoch, the order of rows
#: in a segment, the rows that replace reassigned centers at a step.
KEY_SEGMENT_ORDER, KEY_ROW_ORDER, KEY_REASSIGN = (
    _random.Key.SEGMENT_ORDER,
    _random.Key.ROW_ORDER,
    _random.Key.REASSIGN,
)

#: The augmented product already holds ``||c||^2 - 2 x.c``: nothing to add before the argmin.
_NO_CENTERS_SQ = {np.dtype(t): np.empty(0, t) for t in (np.float32, np.float64)}


# --- one step --------------------------------------------------------------------------


def augment(X: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    """``[X - shift, 1]``: one GEMM against :func:`augmented_centers_t` gives
    ``||c||^2 - 2 x.c``, and the product of a one-hot matrix with it gives the per-center
    sums and weights. ``shift`` (see :func:`origin_shift`) moves data that sit far from the
    origin to it; the steps then work on shifted rows and centers."""
    out = np.empty((X.shape[0], X.shape[1] + 1), X.dtype)
    if shift is None:
        out[:, :-1] = X
    else:
        np.subtract(X, shift, out=out[:, :-1])
    out[:, -1] = 1
    return out


def shifted(centers: np.ndarray, shift: np.ndarray | None) -> np.ndarray:
    """Centers in the shifted frame of the steps, in their dtype."""
    if shift is None:
        return centers
    return (centers.astype(np.float64) - shift).astype(centers.dtype)


def unshifted(centers: np.ndarray, shift: np.ndarray | None) -> np.ndarray:
    """Centers of the steps back in the data's frame, in their dtype."""
    if shift is None:
        return centers
    return (centers.astype(np.float64) + shift).astype(centers.dtype)


def augmented_centers_t(centers: np.ndarray, dtype) -> np.ndarray:
    """``[-2 C^T; ||c||^2]``, shape ``(n_features + 1, n_centers)``, in ``dtype`` (as
    scikit-learn, which computes float32 distances from float32 centers)."""
    centers = centers.astype(dtype, copy=False)
    out = np.empty((centers.shape[1] + 1, centers.shape[0]), dtype)
    np.multiply(centers.T, -2, out=out[:-1])
    np.einsum("ij,ij->i", centers, centers, out=out[-1])
    return out


class Assigned(NamedTuple):
    sums: np.ndarray | None  # (k, d) float64: weighted sum of each center's rows
    weights: np.ndarray | None  # (k,) float64: total weight of each center's rows
    inertia: float | None  # weighted squared distances to the nearest center


def assign(
    Xa: np.ndarray,
    weights: np.ndarray | None,
    centers: np.ndarray,
    *,
    sums: bool = True,
    inertia: bool = True,
    parallel: bool = False,
    passes=None,
) -> Assigned:
    """Nearest center of every row of the augmented rows ``Xa``, with per-center statistics
    (``sums``, ``inertia``: the statistics not asked for come back as ``None``).

    The inertia comes from direct differences ``||x - c||^2`` in float64, as scikit-learn's
    (the expanded form of the assignment loses every digit on rows near their centers).
    Row-blocked, so temporaries stay small for a batch of any size. ``parallel`` splits the
    rows over the machine's cores (for a batch in the client's memory, never inside a Dask
    task). ``passes``: the compiled passes for the sums and the inertia, ``False`` for the
    NumPy reference, ``None`` to decide by :func:`compiled_passes` (the labels are NumPy's
    argmin either way).

    A fit makes thousands of steps on batches of one size, so the distance matrix and the
    one-hot matrix of each block are kept per thread (:func:`thread_cached`): allocating and
    building them cost as much as the arithmetic of a thousand-row batch.
    """
    k, dtype = len(centers), Xa.dtype
    d = Xa.shape[1] - 1
    if passes is None:
        passes = compiled_passes("minibatch", dtype, Xa.shape[0] * k, d) or False
    centers_t = augmented_centers_t(centers, dtype)
    centers64 = np.asarray(centers, np.float64)

    def block(rows: slice):
        B = Xa[rows]
        n = B.shape[0]
        D = thread_cached(("distances", n, k, dtype), lambda: np.empty((n, k), dtype))
        np.matmul(B, centers_t, out=D)
        if passes:
            labels = np.empty(n, np.int32)
            passes.nearest(D, _NO_CENTERS_SQ[dtype], labels)
        else:
            labels = D.argmin(axis=1)
        w = None if weights is None else weights[rows]
        if passes:
            w = _NO_WEIGHTS if w is None else w.astype(np.float64)
            # The whole augmented rows (C-contiguous, so the loops vectorize): their last
            # column sums the weights.
            total = passes.inertia(B, labels, w, centers64) if inertia else None
            if not sums:
                return None, total
            part = np.zeros((k, d + 1))
            passes.accumulate(B, labels, w, np.zeros(d + 1), part, _NO_WEIGHTS)
            return part, total
        total = _direct_inertia(B[:, :-1], labels, w, centers64) if inertia else None
        if not sums:
            return None, total
        onehot = thread_cached(("one-hot", n, k, dtype), lambda: OneHot(n, k, dtype))
        # The last column of the augmented rows sums the weights.
        return onehot.sums(B, labels, w), total

    parts = map_row_blocks(block, Xa.shape[0], k, parallel=parallel)
    total_inertia = sum(i for _, i in parts) if inertia else None
    if not sums:
        return Assigned(None, None, total_inertia)
    total = parts[0][0].astype(np.float64)
    for more, _ in parts[1:]:
        total += more
    return Assigned(total[:, :-1], total[:, -1], total_inertia)


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
    inertia: float | None  # of the batch, against the centers before the step
    finite: bool  # False if a row of the batch holds a NaN or an infinity (or sums overflow)


def minibatch_step(
    Xa: np.ndarray,
    weights: np.ndarray | None,
    centers: np.ndarray,
    counts: np.ndarray,
    *,
    reassign: bool,
    reassignment_ratio: float,
    rng: Callable[[], np.random.Generator] | None,
    inertia: bool = True,
    parallel: bool = False,
    passes=None,
) -> Step:
    """One scikit-learn mini-batch step on the augmented batch ``Xa`` (see :func:`augment`).

    ``rng()`` gives the generator for the replacement rows, made only if a center is
    reassigned. Returns new arrays; ``centers`` and ``counts`` are not modified. The batch's
    inertia (against the centers before the step) is ``None`` unless ``inertia``.
    ``passes`` as in :func:`assign`: the compiled passes also make the update.
    """
    k = len(centers)
    if passes is None:
        passes = compiled_passes("minibatch", Xa.dtype, Xa.shape[0] * k, Xa.shape[1] - 1)
        passes = passes or False
    if (
        passes
        and not (parallel and Xa.shape[0] >= MIN_PARALLEL_ROWS)
        and Xa.shape[0] <= block_rows(k)
    ):
        # One block, one thread: the whole step in one compiled call after the argmin (a
        # fit's thousands of small steps pay for every Python call).
        n, d = Xa.shape
        dtype = Xa.dtype
        scratch = thread_cached(
            ("compiled step", n, k, d, dtype),
            lambda: (np.empty((n, k), dtype), np.empty((k, d)), np.empty(n, np.int32)),
        )
        P = np.matmul(Xa, augmented_centers_t(centers, dtype), out=scratch[0])
        labels = scratch[2]
        passes.nearest(P, _NO_CENTERS_SQ[dtype], labels)
        new, counts_new = np.empty_like(centers), np.empty_like(counts)
        w = _NO_WEIGHTS if weights is None else weights.astype(np.float64)
        total, finite = passes.minibatch_finish(
            Xa, labels, w, centers, counts, scratch[1], new, counts_new, inertia
        )
        return _reassigned(
            Xa,
            new,
            counts_new,
            total if inertia else None,
            finite,
            reassign,
            reassignment_ratio,
            rng,
        )
    a = assign(Xa, weights, centers, inertia=inertia, parallel=parallel, passes=passes)
    if passes:
        new = np.empty_like(centers)
        counts_new = np.empty_like(counts)
        finite = passes.minibatch_update(centers, counts, a.sums, a.weights, new, counts_new)
    else:
        counts_new = counts + a.weights
        # (c * W + S_b) / (W + w_b) for the centers that received weight; the others unchanged.
        new = centers.astype(np.float64)
        moved = np.multiply(new, counts[:, None])
        moved += a.sums
        np.divide(moved, counts_new[:, None], out=new, where=(a.weights > 0)[:, None])
        new = new.astype(centers.dtype, copy=False)
        # Every row is added to one center's sums, so a NaN or infinity anywhere shows there.
        finite = bool(np.isfinite(a.sums).all())
    return _reassigned(Xa, new, counts_new, a.inertia, finite, reassign, reassignment_ratio, rng)


def _reassigned(Xa, new, counts_new, inertia, finite, reassign, reassignment_ratio, rng) -> Step:
    """The step's result after scikit-learn's reassignment (when due) of the centers that
    received too little weight; modifies ``new`` and ``counts_new``."""
    # Checking the smallest weight first makes the common "none to reassign" cheap.
    if reassign and reassignment_ratio * counts_new.max() > counts_new.min():
        mask = reassign_mask(counts_new, reassignment_ratio, Xa.shape[0])
        n_reassigns = int(mask.sum())
        if n_reassigns:
            picks = rng().choice(Xa.shape[0], n_reassigns, replace=False)
            new[mask] = Xa[picks, :-1]
            if not mask.all():
                # As scikit-learn: reset their weight to the smallest kept one, not to zero,
                # so they are not reassigned again at once.
                counts_new[mask] = counts_new[~mask].min()
    return Step(new, counts_new, inertia, bool(finite))


def is_reassign_due(counts: np.ndarray, n_since: int, batch_size: int, n_clusters: int):
    """scikit-learn's schedule: every ``10 * n_clusters`` rows, or whenever a center has no
    weight yet. Returns ``(due, n_since_after)``."""
    n_since += batch_size
    if (counts == 0).any() or n_since >= 10 * n_clusters:
        return True, 0
    return False, n_since


def first_nonfinite_row(block: np.ndarray) -> int | None:
    """The first row holding a NaN or infinity, or ``None``."""
    if np.isfinite(block).all():  # the fast answer on clean data
        return None
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
    shift: np.ndarray | None = None  # see augment


class Piece(NamedTuple):
    """Global rows ``[lo, hi)`` read as one block; ``epoch`` and ``segment`` key its order."""

    lo: int
    hi: int
    epoch: int
    segment: int


class Rows(NamedTuple):
    """Rows in the order the steps take them, with what the steps need of each."""

    augmented: np.ndarray  # (n, d + 1): the rows and a column of ones (see augment)
    weights: np.ndarray | None  # (n,) in the data's dtype
    index: np.ndarray  # (n,) global row positions, to name a row with NaN

    @property
    def size(self) -> int:
        return len(self.index)

    def part(self, rows: slice) -> Rows:
        return Rows(*(None if a is None else a[rows] for a in self))

    def copy(self) -> Rows:
        return Rows(*(None if a is None else a.copy() for a in self))

    def then(self, other: Rows) -> Rows:
        pairs = zip(self, other, strict=True)
        return Rows(*(None if a is None else np.concatenate([a, b]) for a, b in pairs))


class Shuffled(NamedTuple):
    """One segment's rows and their random order for this epoch (see :func:`shuffle_segment`):
    what the steps take, gathered batch by batch where they run."""

    block: np.ndarray  # (n, d): the segment's rows as read
    weights: np.ndarray | None  # (n,) in the data's dtype
    order: np.ndarray  # (n,) int64: the rows in the order the steps take them
    lo: int  # the global row of the segment's first row

    @property
    def size(self) -> int:
        return len(self.order)

    def rows(self, lo: int, hi: int, shift: np.ndarray | None) -> Rows:
        """Rows ``lo:hi`` of the order, augmented (the last column 1) around ``shift``."""
        order = self.order[lo:hi]
        augmented = np.empty((len(order), self.block.shape[1] + 1), self.block.dtype)
        # Straight into place rather than through a copy: on a Dask worker every fresh array
        # of a segment's size is page-faulted anew (the nanny turns glibc's trimming up).
        np.take(self.block, order, axis=0, out=augmented[:, :-1], mode="clip")
        if shift is not None:
            augmented[:, :-1] -= shift
        augmented[:, -1] = 1
        w = None if self.weights is None else self.weights[order]
        return Rows(augmented, w, self.lo + order)


def shuffle_segment(block, weights, params: FitParams, piece: Piece) -> tuple[Shuffled, None]:
    """One segment's random row order for this epoch.

    Independent of the centers, so the driver draws it where the segment is read, while the
    steps of the previous segment run (see :func:`bigclust.driver.stream_fold`). The rows
    themselves are gathered in that order batch by batch, where the steps run: a shuffled
    copy of the whole segment cost the reading thread a pass over 16 MiB of fresh memory
    (15 ms, page faults included), which delayed the next read.
    """
    order = _random.generator(params.seed, KEY_ROW_ORDER, piece.epoch, piece.segment).permutation(
        block.shape[0]
    )
    block = np.ascontiguousarray(block)
    w = None if weights is None else np.asarray(weights, block.dtype)
    return Shuffled(block, w, order, piece.lo), None


@dataclasses.dataclass
class FitState:
    """Everything a mini-batch fit carries from one segment to the next (small)."""

    centers: np.ndarray  # in the shifted frame of FitParams.shift
    counts: np.ndarray
    step: int = 0
    n_since_last_reassign: int = 0
    ewa_inertia: float | None = None
    ewa_inertia_min: float | None = None
    no_improvement: int = 0
    carry: Rows | None = None  # the rows of a batch begun in an earlier segment
    stopped: str | None = None  # "converged-tol", "converged-inertia", "max_iter"
    bad_row: int | None = None  # global row of a NaN/inf, if one was met
    last_batch_inertia: float = 0.0


#: What :func:`convergence_rule` (and the compiled steps) answer: go on, or which test stopped.
GO_ON, CONVERGED_TOL, CONVERGED_INERTIA = 0, 1, 2
_STOPPED = {CONVERGED_TOL: "converged-tol", CONVERGED_INERTIA: "converged-inertia"}


def convergence_rule(
    step, ewa, ewa_min, no_improvement, batch_inertia, shift, batch_size, n_samples, tol,
    max_no_improvement,
):  # fmt: skip
    """scikit-learn's ``_mini_batch_convergence`` on plain numbers, after step ``step``
    (counted from 1): ``ewa``/``ewa_min`` NaN while unset, ``max_no_improvement < 0`` for
    None. Returns ``(answer, ewa, ewa_min, no_improvement)``, ``answer`` one of
    :data:`GO_ON`, :data:`CONVERGED_TOL`, :data:`CONVERGED_INERTIA`.

    Plain Python that numba compiles as it is: :mod:`bigclust.cluster._fused` runs this very
    function inside its loop of steps.
    """
    batch_inertia /= batch_size
    if step == 1:  # the first batch measures the initialization only
        return GO_ON, ewa, ewa_min, no_improvement
    if ewa != ewa:
        ewa = batch_inertia
    else:
        alpha = min(batch_size * 2.0 / (n_samples + 1), 1.0)
        ewa = ewa * (1 - alpha) + batch_inertia * alpha
    if tol > 0.0 and shift <= tol:
        return CONVERGED_TOL, ewa, ewa_min, no_improvement
    if ewa_min != ewa_min or ewa < ewa_min:
        no_improvement = 0
        ewa_min = ewa
    else:
        no_improvement += 1
    if 0 <= max_no_improvement <= no_improvement:
        return CONVERGED_INERTIA, ewa, ewa_min, no_improvement
    return GO_ON, ewa, ewa_min, no_improvement


def _unset(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _set(value: float) -> float | None:
    return None if value != value else float(value)


def _convergence(state: FitState, params: FitParams, batch_inertia: float, shift: float):
    """:func:`convergence_rule` on the state (updated in place): None, or why it stopped."""
    answer, ewa, ewa_min, state.no_improvement = convergence_rule(
        state.step,
        _unset(state.ewa_inertia),
        _unset(state.ewa_inertia_min),
        state.no_improvement,
        batch_inertia,
        shift,
        params.batch_size,
        params.n_samples,
        params.tol,
        -1 if params.max_no_improvement is None else params.max_no_improvement,
    )
    state.ewa_inertia, state.ewa_inertia_min = _set(ewa), _set(ewa_min)
    return _STOPPED.get(answer)


class Batches(NamedTuple):
    """How a segment splits into batches: the carried rows completed by the segment's first
    rows (``head``, or None), ``n_full`` batches of consecutive rows from row ``first``, and
    the rows left over (``rest``) for the next segment."""

    head: Rows | None
    first: int
    n_full: int
    rest: Rows


def _split_batches(carry: Rows | None, segment: Shuffled, batch_size: int, shift) -> Batches:
    head, first = None, 0
    if carry is not None:
        first = batch_size - carry.size
        if first > segment.size:
            return Batches(None, 0, 0, carry.then(segment.rows(0, segment.size, shift)))
        head = carry.then(segment.rows(0, first, shift))
    n_full = (segment.size - first) // batch_size
    rest = segment.rows(first + n_full * batch_size, segment.size, shift)
    return Batches(head, first, n_full, rest)


def fit_segment(segment: Shuffled, _, state: FitState, params: FitParams, piece: Piece) -> FitState:
    """Mini-batch steps over one segment of rows (as given by :func:`shuffle_segment`).

    The batches are consecutive runs of ``batch_size`` rows of the epoch's row order, which
    continue across segments: the rows of a batch begun in the previous segment arrive in
    ``state.carry``, and the rows left at the end go out in the returned state's ``carry``.
    Steps stop at ``params.max_steps`` or at convergence (``stopped`` is set).

    With the compiled passes, the runs of consecutive batches go through one compiled loop
    (:func:`bigclust.cluster._fused.fit_steps`) that holds no GIL: a reading thread (zarr's
    are busy Python) then slows the steps by nothing instead of threefold. It leaves to
    :func:`minibatch_step` the carried batch and every step that reassigns a center or meets
    a NaN, so both paths make the same steps.
    """
    state = dataclasses.replace(state, centers=state.centers.copy(), counts=state.counts.copy())
    if state.stopped is not None:
        return state
    k, bs = len(state.counts), params.batch_size
    split = _split_batches(state.carry, segment, bs, params.shift)
    d = segment.block.shape[1]
    passes = compiled_passes("minibatch", segment.block.dtype, segment.size * k, d) or False
    loop = _CompiledSteps(passes, segment, state, params) if passes and split.n_full else None
    if loop is None and split.n_full:  # NumPy's steps: the whole run of batches at once
        run = segment.rows(split.first, split.first + split.n_full * bs, params.shift)
    with np.errstate(invalid="ignore", over="ignore"):  # a NaN or infinity stops the fit
        if split.head is not None and state.step < params.max_steps:
            _step(split.head, state, params, passes)
        b = 0
        while b < split.n_full and state.stopped is None and state.bad_row is None:
            if state.step >= params.max_steps:
                break
            if loop is not None:
                b += loop.run(split.first + b * bs, split.n_full - b)
                if b == split.n_full or state.stopped is not None:
                    break
                if state.step >= params.max_steps:
                    break
            # A step the compiled loop leaves to NumPy's (or no compiled loop).
            if loop is None:
                batch = run.part(slice(b * bs, (b + 1) * bs))
            else:
                lo = split.first + b * bs
                batch = segment.rows(lo, lo + bs, params.shift)
            _step(batch, state, params, passes)
            b += 1
    if state.bad_row is not None:
        return state
    if state.stopped is None and state.step >= params.max_steps:
        state.stopped = "max_iter"
    rest = split.rest
    state.carry = rest.copy() if state.stopped is None and rest.size else None
    return state


def _scheduled_step(Xa, weights, centers, counts, n_since, n_steps, params, **options):
    """:func:`minibatch_step` with scikit-learn's reassignment schedule
    (:func:`is_reassign_due`) and the random stream of step ``n_steps``; ``params``: a
    :class:`FitParams` or :class:`PartialParams`. Returns the step and the rows counted since
    the last reassignment check after it."""
    due, n_since = is_reassign_due(counts, n_since, params.batch_size, len(counts))
    step = minibatch_step(
        Xa,
        weights,
        centers,
        counts,
        reassign=due,
        reassignment_ratio=params.reassignment_ratio,
        rng=functools.partial(_random.generator, params.seed, KEY_REASSIGN, n_steps),
        **options,
    )
    return step, n_since


def _step(batch: Rows, state: FitState, params: FitParams, passes) -> None:
    """One step on ``batch`` through :func:`minibatch_step`; updates ``state`` in place
    (``bad_row`` set if the batch holds a NaN or infinity)."""
    step, n_since = _scheduled_step(
        batch.augmented, batch.weights, state.centers, state.counts,
        state.n_since_last_reassign, state.step, params, passes=passes,
    )  # fmt: skip
    if not step.finite:
        bad = first_nonfinite_row(batch.augmented[:, :-1])
        if bad is not None:
            state.bad_row = int(batch.index[bad])
            return
    shift = (
        float(((step.centers.astype(np.float64) - state.centers) ** 2).sum())
        if params.tol > 0
        else 0.0
    )
    state.n_since_last_reassign = n_since
    state.centers, state.counts = step.centers, step.counts
    state.step += 1
    state.last_batch_inertia = step.inertia
    state.stopped = _convergence(state, params, step.inertia, shift)


class _CompiledSteps:
    """The compiled loop of steps over one segment's consecutive batches, with its buffers."""

    def __init__(self, passes, segment: Shuffled, state: FitState, params: FitParams):
        self.passes, self.segment, self.state, self.params = passes, segment, state, params
        k, d = state.centers.shape
        n, dtype = params.batch_size, segment.block.dtype
        self.products = np.empty((n, k), dtype)
        self.shift = np.zeros(d, dtype) if params.shift is None else params.shift.astype(dtype)
        self.buffers = (
            np.empty((n, d + 1), dtype),  # the batch's augmented rows
            np.empty(n if segment.weights is not None else 0),  # their weights
            np.empty(n, np.int32),  # labels
            np.empty((d + 1, k), dtype),  # the augmented centers, transposed
            np.empty((k, d + 1)),  # sums
            np.empty_like(state.centers),  # new centers
            np.empty_like(state.counts),  # new counts
        )
        self.weights = (
            _NO_WEIGHTS if segment.weights is None else segment.weights.astype(np.float64)
        )

    def run(self, first: int, n_batches: int) -> int:
        """Steps on up to ``n_batches`` batches from row ``first``; returns how many it made
        (it stops before a step it leaves to :func:`minibatch_step`, at ``max_steps`` or
        at convergence)."""
        state, params = self.state, self.params
        scalars = np.array(
            [
                state.step,
                state.n_since_last_reassign,
                _unset(state.ewa_inertia),
                _unset(state.ewa_inertia_min),
                state.no_improvement,
                state.last_batch_inertia,
            ],
            np.float64,
        )
        done, answer = self.passes.fit_steps(
            self.segment.block,
            self.segment.order,
            self.shift,
            self.weights,
            first,
            n_batches,
            state.centers,
            state.counts,
            scalars,
            params.batch_size,
            params.max_steps,
            params.reassignment_ratio,
            params.tol,
            -1 if params.max_no_improvement is None else params.max_no_improvement,
            params.n_samples,
            self.products,
            *self.buffers,
        )
        state.step, state.n_since_last_reassign = int(scalars[0]), int(scalars[1])
        state.ewa_inertia, state.ewa_inertia_min = _set(scalars[2]), _set(scalars[3])
        state.no_improvement, state.last_batch_inertia = int(scalars[4]), float(scalars[5])
        state.stopped = _STOPPED.get(answer)
        return done


# --- partial_fit on a chunked array: one step per chunk ----------------------------------


class PartialParams(NamedTuple):
    seed: int
    batch_size: int  # scikit-learn's _batch_size, fixed by the first partial_fit call
    reassignment_ratio: float
    compute_labels: bool
    parallel: bool = False  # split the rows over the cores (a batch in the client's memory)
    shift: np.ndarray | None = None  # see augment


@dataclasses.dataclass
class PartialState:
    centers: np.ndarray  # in the shifted frame of PartialParams.shift
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
    Xa = augment(block, params.shift)
    w = None if weights is None else np.asarray(weights, block.dtype)
    n, d = block.shape
    passes = compiled_passes("minibatch", block.dtype, n * len(state.counts), d) or False
    with np.errstate(invalid="ignore", over="ignore"):  # a NaN or infinity raises below
        step, n_since = _scheduled_step(
            Xa, w, state.centers, state.counts, state.n_since_last_reassign, state.n_steps,
            params, inertia=False, parallel=params.parallel, passes=passes,
        )  # fmt: skip
    if not step.finite:
        bad = first_nonfinite_row(block)
        if bad is not None:
            state.bad_row = piece.lo + bad
            return state
    state.centers, state.counts = step.centers, step.counts
    state.n_since_last_reassign = n_since
    state.n_steps += 1
    if params.compute_labels:
        state.inertia += assign(Xa, w, state.centers, sums=False, passes=passes).inertia
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
    block: np.ndarray,
    weights: np.ndarray | None,
    centers: np.ndarray,
    *,
    parallel: bool = False,
    passes=None,
):
    """Nearest center of every row (as ``predict``) and the weighted inertia, from direct
    differences in float64 (``passes`` as in :func:`assign`)."""
    k = len(centers)
    if passes is None:
        passes = compiled_passes("lloyd", block.dtype, block.shape[0] * k)
    labels = np.empty(block.shape[0], np.int32)
    search = Nearest(centers, block.dtype)
    centers64 = np.asarray(centers, np.float64)

    def one(rows: slice) -> float:
        X = block[rows]
        w = None if weights is None else np.asarray(weights[rows], np.float64)
        # Scratch arrays are per thread: safe in parallel.
        if passes:
            labels[rows] = lab = search.compiled_labels(X, passes)
            X = np.ascontiguousarray(X)
            return passes.inertia(X, lab, _NO_WEIGHTS if w is None else w, centers64)
        labels[rows] = lab = search.labels(X)
        return _direct_inertia(X, lab, w, centers64)

    inertia = sum(map_row_blocks(one, block.shape[0], k, parallel=parallel))
    return labels, inertia


def labels_inertia_chunk(block, *rest) -> LabelsInertia:
    """Driver kernel: the final assignment of a NumPy fit, labels and inertia in one pass."""
    *weights, centers, start = rest
    labels, inertia = labels_inertia(block, weights[0] if weights else None, centers)
    return LabelsInertia(inertia, [(start, labels)])
