"""Together forms of the kernels: many models' statistics from one chunk, cheaper than one
kernel call per model, and each model's bits exactly those its own kernel gives it.

Shared passes (:func:`bigclust.driver.run_together`) hand every chunk to all the models still
fitting; a kernel registered here with :func:`~bigclust.driver.together_form` serves all its
requests in one call per chunk. Each form does once what does not depend on the model, and
replaces NumPy/SciPy sequences by compiled loops (:mod:`bigclust.cluster._together_fused`)
that replay the same floating-point operations in the same order:

- Lloyd steps (:func:`lloyd_together`): the float64 copy of each row block (the blocks a model
  uses alone), once for all the models; per model, its own BLAS product against its own
  shifted centers, then one loop for ``+= ||c||^2``, the argmin and the per-center sums and
  weights (instead of an argmin over short rows, a sparse product and a bincount);
- k-means|| rounds (:func:`parallel_round_together`): the uniforms of one seed and round,
  once; per model, one loop over its product for the distance to the nearest new candidate
  (instead of three NumPy passes and a reduction); the weighting pass
  (:func:`nearest_weights_together`) likewise for few candidates;
- greedy k-means++ steps (:func:`plusplus_together`): the exponentials of one seed and step,
  once; per model, one loop over its product with its trials for the squared distances; a
  step that another model's seeding takes too (one seed, one number of trials: most of a
  sweep over ``n_clusters``), once for both;
- Gaussian mixtures' E-steps (:func:`e_step_together`): each row block's features once for
  the mixtures of one covariance type (fits on the same data take them around the same
  point, the data's mean).

Measured on the 2-core machine (one chunk of 131,072 x 16 float32 rows, ten models with
k = 1..10), the forms take 0.5x (Lloyd, k-means|| rounds), 0.9x (weighting), 0.85x
(k-means++) and 0.7x (diag E-step) the time of ten kernel calls.

Stacking the models' centers (or mixture coefficients) into one BLAS product would save more,
but it is not exact: OpenBLAS gives a column of a product bits that depend on the other
columns (a single column goes through a matrix-vector product; in float64 the blocking of
the other operand matters), and each model has its own shift of the rows, so a model's labels
could change on a near tie. A model whose step alone takes the compiled passes
(:func:`~bigclust.cluster._kernels.compiled_passes`) runs its own kernel here: same path,
same bits.
"""

from __future__ import annotations

import functools

import numpy as np

from bigclust._rows import row_ranges
from bigclust._scratch import scratch_array
from bigclust.cluster import _kernels as kern
from bigclust.driver import together_form
from bigclust.mixture import _kernels as gk

__all__ = [
    "e_step_together",
    "lloyd_and_moments_together",
    "lloyd_together",
    "lloyd_together_weighted",
    "nearest_weights_together",
    "parallel_round_together",
    "plusplus_together",
]

#: Elements (rows x models) of a chunk from which the forms load their compiled loops (numba,
#: 0.25 s in a fresh process with a warm disk cache): below it, each model's own kernel. A
#: k-means++ step's distances to a model's newest center take 0.23 ms instead of 2.0 ms per
#: 131,072 x 16 float32 rows (one thread), so four models on such a chunk pay for the load
#: within a few passes of any store.
MIN_TOGETHER_ELEMENTS = 1 << 19


def _fused(n_rows: int, n_models: int):
    """The compiled loops, or ``None`` for each model's own kernel: by the size of the call,
    or always/never as ``BIGCLUST_COMPILED=1``/``0`` says for the compiled passes."""
    if kern.USE_COMPILED is False:
        return None
    if kern.USE_COMPILED is None and n_rows * n_models < MIN_TOGETHER_ELEMENTS:
        return None
    return _compiled()


def _seeding_fused(block, n_models: int):
    """:func:`_fused` for the seedings' distances, which are direct differences (no product to
    fuse) on few features (:data:`~bigclust.cluster._kernels.DIRECT_MAX_FEATURES`)."""
    if kern.direct_distances(block.shape[1]):
        return None
    return _fused(block.shape[0], n_models)


@functools.cache
def _compiled():
    try:
        from bigclust.cluster import _together_fused
    except (ImportError, RuntimeError):  # as for the compiled passes: the reference instead
        return None
    return _together_fused


_EMPTY = np.empty(0, np.float64)
_EMPTY_2D = np.empty((0, 0), np.float64)


class _Model:
    """One model's part of the step over a chunk: its search, accumulators and labels."""

    __slots__ = ("centers", "inertia", "params", "search", "shift", "sums", "weights")

    def __init__(self, params: kern.LloydParams, dtype):
        k, d = params.centers.shape
        self.params = params
        self.search = kern.Nearest(params.centers, dtype)
        self.centers = np.asarray(params.centers, np.float64)
        self.shift = (
            np.zeros(d) if self.search.shift is None else self.search.shift.astype(np.float64)
        )
        self.sums = np.zeros((k, d), np.float64)
        self.weights = np.zeros(k, np.float64)
        self.inertia = 0.0

    def step(self, fused, X, X64, w, labels, block_sums, block_totals):
        """The reference step's work on one row block (see ``kern._lloyd``)."""
        params, search = self.params, self.search
        # The product of Nearest.partial; its "+= centers_sq" is done in the compiled loop.
        P = np.matmul(search.shifted(X), search.minus_2_centers_t, out=self.product(X.shape[0]))
        fused.nearest(P, search.centers_sq, labels)
        if params.update_centers:
            block_sums[:] = 0.0
            block_totals[:] = 0.0
            row_weights = _EMPTY if w is None else w
            fused.sum_by_label(X64, self.shift, row_weights, labels, block_sums, block_totals)
            self.sums += block_sums
            self.weights += block_totals
        if params.with_inertia:
            self.inertia += kern._direct_inertia(X, labels, w, self.centers)

    def product(self, n_rows: int) -> np.ndarray:
        return self.search._scratch("distances", (n_rows, self.search.n_centers))

    def stats(self) -> kern.LloydStats:
        if self.params.update_centers and self.search.shift is not None:
            self.sums += np.outer(self.weights, self.shift)
        return kern.LloydStats(self.sums, self.weights, self.inertia)


def _lloyd_together(block, sample_weight, params_list) -> list[kern.LloydStats]:
    fused = _fused(block.shape[0], len(params_list))
    out: list = [None] * len(params_list)
    groups: dict[int, list[int]] = {}  # models by row-block size: one float64 copy per block
    for i, params in enumerate(params_list):
        k = params.centers.shape[0]
        passes = kern.compiled_passes("lloyd", block.dtype, block.shape[0] * k)
        if fused is None or passes:
            out[i] = kern._lloyd(block, sample_weight, params, passes)  # as alone
        else:
            groups.setdefault(kern.block_rows(k, kern.BLOCK_ELEMENTS), []).append(i)
    weights64 = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    for step, members in groups.items():
        models = [_Model(params_list[i], block.dtype) for i in members]
        labels = np.empty(min(step, block.shape[0]), np.int32)
        scratch = {}
        for lo in range(0, block.shape[0], step):
            rows = slice(lo, min(lo + step, block.shape[0]))
            X = block[rows]
            X64 = X.astype(np.float64)
            w = None if weights64 is None else weights64[rows]
            for model in models:
                k, d = model.sums.shape
                if k not in scratch:
                    scratch[k] = (np.empty((k, d)), np.empty(k))
                model.step(fused, X, X64, w, labels[: X.shape[0]], *scratch[k])
        for i, model in zip(members, models, strict=True):
            out[i] = model.stats()
    return out


@together_form(kern.lloyd_chunk)
def lloyd_together(block, params_list, start) -> list[kern.LloydStats]:
    """:func:`~bigclust.cluster._kernels.lloyd_chunk` for many models' params at once."""
    return _lloyd_together(block, None, params_list)


@together_form(kern.lloyd_chunk_weighted)
def lloyd_together_weighted(block, sample_weight, params_list, start) -> list[kern.LloydStats]:
    """:func:`~bigclust.cluster._kernels.lloyd_chunk_weighted` for many models' params."""
    return _lloyd_together(block, sample_weight, params_list)


@together_form(kern.lloyd_and_moments_chunk)
def lloyd_and_moments_together(block, *rest) -> list[tuple]:
    """:func:`~bigclust.cluster._kernels.lloyd_and_moments_chunk` for many models' params
    (the column moments, which depend on the data alone, computed once for all)."""
    *weights, params_list, start = rest
    lloyd = _lloyd_together(block, weights[0] if weights else None, params_list)
    moments = kern.column_moments_chunk(block, start)
    return [(stats, moments) for stats in lloyd]


# --- k-means|| rounds -------------------------------------------------------------------


class _RowsLess:
    """The chunk's rows less a shift, with their squared norms, per row block: computed once
    for the searches of every model whose shift is one of ``shared`` (models of one seed
    share their seeding's first center), else per search, as the search itself would."""

    def __init__(self, block, shared=()):
        self.block, self.shared, self.kept = block, set(shared), {}
        self.norms = None  # of the unshifted rows

    def __call__(self, search, r):
        if search.shift is None:
            if self.norms is None:
                self.norms = np.einsum("ij,ij->i", self.block, self.block)
            return self.block[r], self.norms[r]
        key = search.shift.tobytes()
        if key not in self.shared:
            X = search.shifted(self.block[r])
            return X, np.einsum("ij,ij->i", X, X)
        found = self.kept.get((key, r.start))
        if found is None:
            X = np.subtract(self.block[r], search.shift)  # search.shifted's values
            found = self.kept[key, r.start] = (X, np.einsum("ij,ij->i", X, X))
        return found


def _shared_shifts(block, firsts) -> list[bytes]:
    """The shifts (a seeding's first center, in the chunk's dtype) of two models or more."""
    keys = [np.asarray(first).astype(block.dtype).tobytes() for first in firsts]
    return [key for key in set(keys) if keys.count(key) > 1]


def _fused_min_squared(fused, rows_less, scratch):
    """``search.min_squared(block[r])`` by one compiled loop over the search's product."""

    def min_squared(search, block, r):
        X, row_norms = rows_less(search, r)
        buffer = search._scratch("transposed", (search.n_centers, X.shape[0]))
        P = np.matmul(search.minus_2_centers_t.T, X.T, out=buffer)
        dist = scratch[: X.shape[0]]
        fused.min_squared_t(P, search.centers_sq, row_norms, block.dtype.type(0), dist)
        return dist

    return min_squared


@together_form(kern.parallel_round_chunk)
def parallel_round_together(block, *rest) -> list[kern.Sampled]:
    """:func:`~bigclust.cluster._kernels.parallel_round_chunk` for many models' params: the
    uniforms of one seed and round drawn once (models of one seed share them), each model's
    distances to its new candidates in one compiled loop over its product instead of
    NumPy's three passes and a reduction."""
    *weights, params_list, start = rest
    fused = _seeding_fused(block, len(params_list))
    if fused is None:
        return [kern.parallel_round_chunk(block, *weights, p, start) for p in params_list]
    w = weights[0].astype(np.float64) if weights else None
    shared = _shared_shifts(block, [p.candidates[0] for p in params_list])
    rows_less = _RowsLess(block, shared)
    min_squared = _fused_min_squared(fused, rows_less, np.empty(block.shape[0], block.dtype))
    uniforms: dict = {}  # by seed and round: the models of one seed draw the same
    out = []
    for params in params_list:
        u = uniforms.get((params.seed, params.round))
        if u is None:
            u = uniforms[params.seed, params.round] = kern.parallel_round_uniforms(
                params, start, block.shape[0]
            )
        out.append(kern.parallel_round(block, w, params, start, u, min_squared))
    return out


@together_form(kern.plusplus_chunk)
def plusplus_together(block, *rest) -> list[kern.PlusPlusStats]:
    """:func:`~bigclust.cluster._kernels.plusplus_chunk` for many models' params: the
    exponentials of one seed, step and number of trials drawn once, each model's squared
    distances to its trials in one compiled loop over its product."""
    *weights, params_list, start = rest
    w = weights[0].astype(np.float64) if weights else None
    fused = _seeding_fused(block, len(params_list))
    squared_t = min_squared = None
    if fused is not None:
        rows_less = _RowsLess(block, _shared_shifts(block, [p.centers[0] for p in params_list]))
        squared_t = _fused_squared_t(fused, rows_less)
        min_squared = _fused_min_squared(fused, rows_less, np.empty(block.shape[0], block.dtype))
    races: dict = {}
    done: dict = {}  # the steps already taken here, by everything but their seeding's key
    out = []
    for params in params_list:
        same = done.get(_step_identity(params))
        if same is not None:  # the same step of another seeding: the same bits
            stats, run = same
            kern.copy_nearest_so_far(run, params.run, start)
            out.append(stats)
            continue
        key = (params.seed, params.step, params.n_next_trials)
        if key not in races:
            races[key] = kern.plusplus_races(params, start, block.shape[0])
        stats = kern.plusplus_step(block, w, params, start, races[key], squared_t, min_squared)
        done[_step_identity(params)] = stats, params.run
        out.append(stats)
    return out


def _step_identity(params: kern.PlusPlusParams) -> tuple:
    """What a greedy k-means++ step's result depends on (with the chunk): seedings of one
    seed and one number of trials (a sweep over ``n_clusters`` with one ``random_state``,
    where ``2 + log(k)`` is the same for many k) take the same steps until each has its
    centers, and each of those steps is taken once."""
    centers, trials = params.centers, params.trials
    return (centers.shape, centers.tobytes(), trials.shape, trials.tobytes(),
            params.n_next_trials, params.seed, params.step)  # fmt: skip


def _fused_squared_t(fused, rows_less):
    """``search.squared_t(block[r]).astype(np.float64)`` by one compiled loop over the
    search's product."""

    def squared_t(search, block, r):
        X, row_norms = rows_less(search, r)
        buffer = search._scratch("transposed", (search.n_centers, X.shape[0]))
        P = np.matmul(search.minus_2_centers_t.T, X.T, out=buffer)
        out = np.empty(P.shape)
        fused.squared_t64(P, search.centers_sq, row_norms, block.dtype.type(0), out)
        return out

    return squared_t


@together_form(kern.nearest_weights_chunk)
def nearest_weights_together(block, *rest) -> list[np.ndarray]:
    """:func:`~bigclust.cluster._kernels.nearest_weights_chunk` for many models' candidates:
    each model's argmin and weight per candidate in compiled loops over its product."""
    *weights, candidates_list, start = rest
    fused = _fused(block.shape[0], len(candidates_list))
    if fused is None:
        return [kern.nearest_weights_chunk(block, *weights, c, start) for c in candidates_list]
    w = np.asarray(weights[0], np.float64) if weights else None
    labels = np.empty(block.shape[0], np.int32)
    no_rows, no_shift = np.empty((0, block.shape[1])), np.zeros(block.shape[1])
    out = []
    for candidates in candidates_list:
        search = kern.Nearest(candidates, block.dtype)
        counts = np.zeros(len(candidates))
        totals = np.empty(len(candidates))
        for r in kern.row_blocks(block.shape[0], len(candidates)):
            X = search.shifted(block[r])
            buffer = search._scratch("distances", (X.shape[0], search.n_centers))
            P = np.matmul(X, search.minus_2_centers_t, out=buffer)
            totals[:] = 0.0
            row_weights = _EMPTY if w is None else w[r]
            fused.nearest(P, search.centers_sq, labels[: X.shape[0]])
            fused.sum_by_label(no_rows, no_shift, row_weights, labels[: X.shape[0]],
                               _EMPTY_2D, totals)  # fmt: skip
            counts += totals
        out.append(counts)
    return out


# --- Gaussian mixtures' E-step ------------------------------------------------------------


@together_form(gk.e_step_stats)
def e_step_together(block, models, start=0) -> list:
    """:func:`~bigclust.mixture._kernels.e_step_stats` for many mixtures: mixtures of one
    covariance type around one shift (fits on the same data: the data's mean) in blocks of
    the same rows share each block's features; the rest per model, as alone."""
    n_rows, d = block.shape
    steps = [gk.EStep(model, block.dtype, n_rows, d) for model in models]
    groups: dict[tuple, list] = {}
    for step in steps:
        key = (step.ctype.name, step.model.shift.tobytes(), step.rows())
        groups.setdefault(key, []).append(step)
    with np.errstate(invalid="ignore", over="ignore"):
        for group in groups.values():
            first = group[0]
            rows, p = first.rows(), first.model.coef.shape[1]
            buffer = scratch_array("e-step phi", (p, rows), np.float64)
            # One buffer for every model's log densities (each takes its first k rows, laid
            # out as its own would be): one per model would overflow the thread's scratch.
            k_max = max(step.k for step in group)
            log_probs = scratch_array("e-step log probs", (k_max, rows), np.float64)
            shift = first.model.shift
            for lo, hi in row_ranges(n_rows, rows):
                phi = gk.phi_rows(block, lo, hi, shift, first.ctype, buffer[:, : hi - lo])
                for step in group:
                    step.add(phi, log_probs[: step.k, : hi - lo])
    return [step.stats() for step in steps]
