"""Lloyd iterations that skip distance computations: ``KMeans(algorithm="elkan")``.

Every row keeps its label and distance bounds between iterations (see
:mod:`bigclust.cluster._bounds`): an upper bound on its distance to its center and lower bounds
on its distance to the other centers, one per group of centers. After the centers move by
``drift``, a row whose bounds still prove its label costs a few additions; the others are
computed exactly as a Lloyd step computes them (the same BLAS product of the same shifted
float32/float64 rows and centers, the same argmin), so labels, ties included, are Lloyd's.
The per-center sums are then Lloyd's own, over the whole chunk in Lloyd's order: centers,
``n_iter_`` and convergence are bitwise those of ``algorithm="lloyd"``.

Where the bounds live: per chunk, in the memory of the process that last ran the chunk's task
(this process for in-memory data and the local schedulers, the worker for a distributed
cluster), keyed by the run and the chunk's first row, never gathered to the client. A chunk
whose bounds are missing or not from the previous iteration (a lost or restarted worker, a
task that moved, a resumed fit, a retried task) is assigned from full distances, which gives
Lloyd's labels and fresh bounds: state is a cache, never a source of truth.

Which bounds: Hamerly's (2010) single lower bound per row, by measurement. On the 2-core AMD
EPYC (AVX2), overlapping float32 blobs of 32 features, one thread, CPU seconds of a fit to
convergence: 1M rows, k=64 (98 iterations): Hamerly 5.4, Yinyang's ``k / 10`` groups 5.7,
groups of 4 6.5, Elkan's bound per center 11.1, Lloyd 13.6; k=256 (80 iterations): Hamerly
10.5, Yinyang 12.3, Lloyd 30.2. Per-group bounds settle more rows (at k=256, 99% against 96%
of them late in the fit), but every row's ``k / 10`` bounds are read and written every
iteration, which costs more than the rows they save; Elkan's n x k bounds cost that k times
(and 2 GB at 2M rows, k=256). Every iteration also pays Lloyd's sums over the whole chunk
(about a fifth of a bounded iteration), the price of bitwise Lloyd centers.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

import numpy as np

from bigclust import _chunk_state
from bigclust.cluster import _kernels as kern

__all__ = ["BoundedPasses", "ElkanStats", "bounded_chunk", "bounded_chunk_weighted"]

#: Centers per group of lower bounds: ``None`` is one group (Hamerly's single lower bound),
#: 10 Yinyang's ``k / 10`` groups, 1 Elkan's bound per center. See the module docstring.
CENTERS_PER_GROUP: int | None = None

#: Scale of the margin left for the rounding of Lloyd's computation (1: the bound in
#: :mod:`bigclust.cluster._bounds`; the tests set 0 to show what it protects).
ROUNDING_MARGIN = 1.0


def n_groups(n_clusters: int) -> int:
    """Groups of lower bounds for ``n_clusters`` centers."""
    if CENTERS_PER_GROUP is None:
        return 1
    return max(1, min(n_clusters, round(n_clusters / CENTERS_PER_GROUP)))


def group_centers(centers: np.ndarray, t: int, n_iter: int = 5) -> np.ndarray:
    """``(k,)`` group of each center: a few Lloyd iterations on the centers themselves, from
    evenly spaced ones (deterministic; the grouping changes only how many rows are skipped)."""
    k = len(centers)
    if t <= 1:
        return np.zeros(k, np.int32)
    seeds = centers[np.linspace(0, k - 1, t).round().astype(int)]
    groups = np.zeros(k, np.int32)
    for _ in range(n_iter):
        d2 = ((centers[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2)
        groups = d2.argmin(axis=1).astype(np.int32)
        for g in range(t):
            members = centers[groups == g]
            if len(members):
                seeds[g] = members.mean(axis=0)
    return groups


def group_members(group_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(start, members)``: the centers of group ``g`` are ``members[start[g]:start[g+1]]``."""
    members = np.argsort(group_of, kind="stable").astype(np.int64)
    counts = np.bincount(group_of, minlength=int(group_of.max()) + 1)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), members


class BoundParams(NamedTuple):
    centers: np.ndarray  # (k, d) float64
    run: str  # the run's key in the stores
    iteration: int  # passes of this run so far: state from pass ``iteration - 1`` is used
    drift: np.ndarray | None  # (k,) how far each center moved since the previous pass
    group_of: np.ndarray  # (k,) int32
    groups: tuple[np.ndarray, np.ndarray]  # group g: members[start[g]:start[g + 1]]
    group_drift: np.ndarray | None  # (t,) the largest drift in each group
    with_inertia: bool
    moments: bool  # column moments too (first pass)
    update_centers: bool = True  # sums and weights per center (else the inertia alone)


class ElkanStats(NamedTuple):
    """A Lloyd step's statistics (the fields of :class:`~bigclust.cluster._kernels.LloydStats`)
    plus what the bounds saved; combine by addition."""

    sums: np.ndarray
    weights: np.ndarray
    inertia: float
    rows: int  # rows assigned
    computed: int  # rows whose distances to every center were computed
    tightened: int  # rows whose distance to their own center was computed
    where: dict  # first row of each chunk -> the distributed worker holding its bounds

    def combine(self, other: ElkanStats) -> ElkanStats:
        return ElkanStats(
            *(a + b for a, b in zip(self[:-1], other[:-1], strict=True)),
            {**self.where, **other.where},
        )


class _ChunkState:
    __slots__ = ("iteration", "labels", "lower", "upper")

    def __init__(self, n: int, t: int):
        self.iteration = -1
        self.labels = np.zeros(n, np.int32)
        self.upper = np.zeros(n, np.float32)
        self.lower = np.zeros((n, t), np.float32)


def _take(run: str, start: int, n: int, t: int, iteration: int) -> _ChunkState | None:
    state = _chunk_state.take(run, start)
    if state is None or state.iteration != iteration - 1 or state.labels.shape[0] != n:
        return None
    if state.lower.shape[1] != t:
        return None
    return state


def _fused():
    from bigclust.cluster import _bounds

    return _bounds


def bounded_chunk(block: np.ndarray, params: BoundParams, start: int):
    """One bounded Lloyd step over an unweighted chunk."""
    return _bounded(block, None, params, start)


def bounded_chunk_weighted(block, sample_weight, params: BoundParams, start: int):
    """One bounded Lloyd step over a chunk with sample weights."""
    return _bounded(block, sample_weight, params, start)


def _bounded(block, sample_weight, params: BoundParams, start: int):
    bounds = _fused()
    n = block.shape[0]
    k = len(params.centers)
    t = int(params.group_of.max()) + 1
    search = kern.Nearest(params.centers, block.dtype)
    passes = kern.compiled_passes("lloyd", block.dtype, n * k)
    elements = kern.COMPILED_BLOCK_ELEMENTS if passes else kern.BLOCK_ELEMENTS
    eps = float(np.finfo(block.dtype).eps) / 2
    coef = (2 * block.shape[1] + 16) * eps * ROUNDING_MARGIN
    rho_coef = 2 * eps * ROUNDING_MARGIN
    shift = np.zeros(block.shape[1]) if search.shift is None else search.shift.astype(np.float64)
    radius = float(np.sqrt(((params.centers - shift) ** 2).sum(axis=1)).max()) * (1 + 1e-9)

    state = None
    if params.drift is not None:
        state = _take(params.run, start, n, t, params.iteration)
    tightened = 0
    if state is None:  # no bounds to trust: every row from full distances, in Lloyd's blocks
        state = _ChunkState(n, t)
        for rows in kern.row_blocks(n, k, elements):
            _assign_exactly(block[rows], np.arange(rows.start, rows.stop), search, params,
                            radius, coef, rho_coef, state, bounds)  # fmt: skip
        computed = n
    else:
        failed = np.empty(n, np.int64)
        n_failed, tightened = bounds.filter_rows(
            _c_order(block), params.centers, state.labels, state.upper, state.lower,
            params.drift, params.group_drift, radius, coef, rho_coef, failed,
        )  # fmt: skip
        computed = n_failed
        _assign_failed(block, failed[:n_failed], search, params, radius, coef, rho_coef,
                       state, bounds, elements)  # fmt: skip
    state.iteration = params.iteration
    labels = state.labels
    _chunk_state.put(params.run, start, state)

    sums, weights, inertia = _lloyd_sums(block, sample_weight, labels, search, params, passes)
    stats = ElkanStats(
        sums, weights, inertia, n, computed, tightened, {start: _chunk_state.worker_address()}
    )
    if not params.moments:
        return stats
    return stats, kern.column_moments_chunk(block, start)


def _c_order(block: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(block)


def _assign_exactly(X, rows, search, params, radius, coef, rho_coef, state, bounds) -> None:
    """Labels and bounds of ``rows`` (rows ``X`` of the chunk) from Lloyd's own distances."""
    Xs = search.shifted(X)
    Xs = np.ascontiguousarray(Xs)
    D = search.partial(X)  # the shift again, into the same scratch buffer: same values
    labels = D.argmin(axis=1)
    group_start, members = params.groups
    bounds.refresh_rows(D, Xs, labels, rows, group_start, members, radius, coef, rho_coef,
                        state.labels, state.upper, state.lower)  # fmt: skip


def _assign_failed(block, failed, search, params, radius, coef, rho_coef, state, bounds,
                   elements) -> None:  # fmt: skip
    """The rows the bounds could not settle, from full distances computed as Lloyd's are.

    OpenBLAS computes each row of a product independently of the other rows only for
    products of 2 rows or more (a 1-row product goes through gemv, whose float64 sums differ
    in the last bit): a row that Lloyd assigns alone, as the single last row of a chunk's
    row blocks, is computed alone here too; any other row never is.
    """
    if failed.size == 0:
        return
    n, k = block.shape[0], len(params.centers)
    step = kern.block_rows(k, elements)
    if not block.flags.c_contiguous:
        # Lloyd's products read strided views of this chunk; a copy of some rows would go
        # through BLAS another way. Recompute whole blocks of Lloyd's, as the same views.
        for lo in np.unique(failed // step) * step:
            rows = slice(int(lo), int(min(lo + step, n)))
            _assign_exactly(block[rows], np.arange(rows.start, rows.stop), search, params,
                            radius, coef, rho_coef, state, bounds)  # fmt: skip
        return
    if n % step == 1 and failed[-1] == n - 1:  # Lloyd's last block is that one row
        _assign_exactly(block[n - 1 : n], failed[-1:], search, params, radius, coef,
                        rho_coef, state, bounds)  # fmt: skip
        failed = failed[:-1]
    for lo in range(0, failed.size, step):
        rows = failed[lo : lo + step]
        if rows.size == 1:  # padded to two rows: never gemv
            _assign_exactly(block[np.repeat(rows, 2)], np.repeat(rows, 2), search, params,
                            radius, coef, rho_coef, state, bounds)  # fmt: skip
        else:
            _assign_exactly(block[rows], rows, search, params, radius, coef, rho_coef, state,
                            bounds)  # fmt: skip


def _lloyd_sums(block, sample_weight, labels, search, params, passes):
    """Per-center sums, weights and (if asked) inertia for given labels, with exactly the
    operations, order and row blocks of :func:`bigclust.cluster._kernels._lloyd`: the same
    bits for the same labels."""
    step = kern.LloydSums(block, sample_weight, params, search, passes)
    if passes and not params.with_inertia:
        # The compiled sums add row after row whatever the blocks: one call, the same bits.
        step.add(slice(0, block.shape[0]), block, labels)
    else:
        for rows in step.blocks():
            step.add(rows, block[rows], labels[rows])
    return step.stats()


# --- the estimator's side -------------------------------------------------------------------


class BoundedPasses:
    """The passes of one K-Means run with bounds: called like a Lloyd pass, once per
    iteration, with the iteration's centers; :meth:`close` forgets the bounds everywhere.

    ``history`` lists ``(rows, computed, tightened)`` per pass: rows assigned, rows whose
    distances to every center were computed, rows whose distance to their own center was.
    """

    def __init__(self, n_clusters: int):
        self.run = uuid.uuid4().hex
        self.n_clusters = n_clusters
        self.iteration = 0
        self.previous: np.ndarray | None = None
        self.group_of: np.ndarray | None = None
        self.history: list[tuple[int, int, int]] = []
        self.where: dict[int, str | None] = {}  # chunk's first row -> worker with its bounds
        self.as_tasks = False  # a pass ran as tasks (its bounds may be on workers)

    def __call__(self, X, aligned, centers, with_inertia: bool, moments=False, update_centers=True):
        from bigclust.driver import map_reduce

        centers = np.asarray(centers, np.float64)
        if self.group_of is None:
            self.group_of = group_centers(centers, n_groups(self.n_clusters))
            self.groups = group_members(self.group_of)
        drift = group_drift = None
        if self.previous is not None:
            # Outward by far more than the float64 rounding of the norms.
            drift = np.sqrt(((centers - self.previous) ** 2).sum(axis=1)) * (1 + 1e-9)
            group_drift = np.zeros(int(self.group_of.max()) + 1)
            np.maximum.at(group_drift, self.group_of, drift)
        params = BoundParams(
            centers, self.run, self.iteration, drift, self.group_of, self.groups, group_drift,
            with_inertia, moments, update_centers,
        )  # fmt: skip
        kernel = bounded_chunk_weighted if aligned else bounded_chunk
        self.as_tasks = self.as_tasks or not isinstance(X, np.ndarray)
        workers = _chunk_state.chunk_workers(X, self.where)  # each chunk where its bounds are
        result = map_reduce(kernel, X, *aligned, params=params, workers=workers)
        stats = result[0] if moments else result
        self.where = stats.where
        self.history.append((stats.rows, stats.computed, stats.tightened))
        self.previous = centers
        self.iteration += 1
        return result

    def close(self) -> None:
        # Bounds on workers only if a pass ran as tasks (not for data kept in this process).
        _chunk_state.forget_everywhere(self.run, on_workers=self.as_tasks)


def describe(history: list[tuple[int, int, int]], n_clusters: int) -> list[dict[str, Any]]:
    """Per pass: the fraction of the ``rows x n_clusters`` distances that were not computed."""
    out = []
    for rows, computed, tightened in history:
        done = computed * n_clusters + tightened
        out.append({"rows": rows, "computed_rows": computed, "tightened": tightened,
                    "skipped": 1 - done / max(1, rows * n_clusters)})  # fmt: skip
    return out
