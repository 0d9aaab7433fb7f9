"""Per-chunk K-Means kernels: pure NumPy, no Dask.

Each kernel takes one chunk (``block``), optionally its sample weights, small parameters and
the chunk's global row offset, and returns small statistics that combine by addition (or
through their own ``combine``). Work is done in row blocks so that a block's
``rows x n_clusters`` distance matrix stays within cache-sized bounds, and sums are
accumulated in float64 whatever the input dtype.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from bigclust import _chunk_state, _random
from bigclust._blas import single_blas_thread
from bigclust._errors import NonFiniteRow
from bigclust._scratch import scratch_array, thread_cached

#: Elements of one block's distance matrix (rows x centers): 2**19 floats is 2-4 MiB; larger
#: blocks amortise the Python overhead per block, smaller ones stay in cache (measured).
BLOCK_ELEMENTS = 1 << 19


#: The same for the compiled passes, which read the block's rows and labels again after the
#: argmin: 2**17 floats (a 0.5-1 MiB matrix) keep them in L2. On the 2-core AMD EPYC,
#: 2**16 to 2**19 measured alike in CPU time; 2**15 was 15% slower.
COMPILED_BLOCK_ELEMENTS = 1 << 17


def block_rows(n_centers: int, elements: int = BLOCK_ELEMENTS) -> int:
    """Rows per block for a distance matrix against ``n_centers`` centers."""
    return int(min(16384, max(256, elements // max(1, n_centers))))


def row_blocks(n_rows: int, n_centers: int, elements: int = BLOCK_ELEMENTS):
    """Yield ``slice`` objects covering ``range(n_rows)`` in blocks."""
    step = block_rows(n_centers, elements)
    for lo in range(0, n_rows, step):
        yield slice(lo, min(lo + step, n_rows))


def _even_row_blocks(n_rows: int, n_centers: int, parts: int):
    step = min(block_rows(n_centers), -(-n_rows // parts))
    return [slice(lo, min(lo + step, n_rows)) for lo in range(0, n_rows, step)]


@functools.cache
def _n_threads() -> int:
    return os.cpu_count() or 1  # not free: tens of microseconds on some systems


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_n_threads() - 1, thread_name_prefix="bigclust-rows")


#: Rows below which splitting a batch over threads costs more than it saves.
MIN_PARALLEL_ROWS = 4096


def map_row_blocks(fn, n_rows: int, n_centers: int, *, parallel: bool = False) -> list:
    """``[fn(rows) for rows in row blocks]``; with ``parallel``, the blocks run on a thread per
    core with one BLAS thread each (NumPy releases the GIL in the products and reductions).

    Only for work on the client's own thread: inside Dask tasks the scheduler already runs one
    task per core.
    """
    threads = _n_threads()
    if not parallel or threads == 1 or n_rows < MIN_PARALLEL_ROWS:
        return [fn(rows) for rows in row_blocks(n_rows, n_centers)]
    first, *rest = _even_row_blocks(n_rows, n_centers, threads)
    with single_blas_thread():
        # The calling thread takes a share too: one thread fewer to wake and wait for.
        others = [_pool().submit(fn, rows) for rows in rest]
        return [fn(first), *(other.result() for other in others)]


# --- compiled passes --------------------------------------------------------------------

#: Distance-matrix elements (rows x centers) from which one kernel call of each kind uses the
#: compiled passes of :mod:`bigclust.cluster._fused`. Loading them costs 0.25 s in a fresh
#: process when numba's disk cache is warm (0.15 s in a Dask worker), 0.4-1 s per kind and
#: dtype when it must compile (``benchmarks.bench_kmeans --parts compile``). A Lloyd call of
#: 1M elements saves 1.5-8 ms (one thread: 131,072 x 32 float32 at k=8 14.1 -> 6.2 ms,
#: 65,536 x 32 at k=16 7.9 -> 4.6 ms, 16,384 x 64 at k=64 5.9 -> 3.2 ms; at k=16 on a
#: 16 MiB chunk 49 -> 8.3 ms), so the load pays within a pass or two of any store. The rule
#: depends on the call alone, never on what the process did before, so a rerun (or a resumed
#: fit) takes the same path and gives the same bits: a 16 MiB chunk of 32 float32 columns at
#: k >= 8, or a mini-batch step of 64k elements (1,024 rows, k >= 64), uses them; the
#: notebook's small fits (digits at k=50: 90k elements per call) never load numba.
#: A mixture E-step (``"e-step"``, elements: rows x components of a chunk) uses the compiled
#: normalization of :mod:`bigclust.mixture._fused` from half that size, where it saves about
#: a third of the step (one thread, 131,072 x 16 float32, diag: k=4 8.9 -> 6.4 ms, k=7
#: 13.3 -> 9.5 ms, k=10 17.2 -> 10.4 ms; k=2 6.2 -> 6.0 ms).
COMPILED_MIN_ELEMENTS = {"lloyd": 1 << 20, "minibatch": 1 << 16, "e-step": 1 << 19}

#: The module of compiled passes of each kind.
_COMPILED_MODULES = {
    "lloyd": "bigclust.cluster._fused",
    "minibatch": "bigclust.cluster._fused",
    "e-step": "bigclust.mixture._fused",
}

#: ``None``: the rule above; ``True``/``False``: always/never the compiled passes. Set from
#: the environment variable ``BIGCLUST_COMPILED=1``/``0`` (inherited by worker processes).
USE_COMPILED: bool | None = {"1": True, "0": False}.get(os.environ.get("BIGCLUST_COMPILED", ""))

_compiled_lock = threading.Lock()


#: Features up to which a mini-batch call is judged by its distance-matrix elements alone.
#: Wider rows count as ``features / NARROW_FEATURES`` times their elements: a step's product
#: and sums grow with the width, and so does what the compiled step saves (1,024 x 784 at
#: k=10: 5.2 -> 2.3 ms a step, float64, though 10,240 elements).
NARROW_FEATURES = 32


def compiled_passes(kind: str, dtype, elements: int, features: int = 0):
    """The module of compiled passes if a kernel of ``kind`` about to process ``elements``
    distance-matrix elements of rows of ``features`` features (given for ``"minibatch"``)
    should use it, else ``None`` (NumPy reference)."""
    if USE_COMPILED is not None:
        return _fused_module(_COMPILED_MODULES[kind]) if USE_COMPILED else None
    if features > NARROW_FEATURES:
        elements = elements * features // NARROW_FEATURES
    if elements < COMPILED_MIN_ELEMENTS[kind]:
        return None
    return _fused_module(_COMPILED_MODULES[kind])


@functools.cache
def _fused_module(name: str = "bigclust.cluster._fused"):
    with _compiled_lock:  # one thread imports numba; the others wait for it
        try:
            module = importlib.import_module(name)
        except (ImportError, RuntimeError) as err:  # RuntimeError: nowhere to cache the code
            warnings.warn(
                f"bigclust's compiled passes are unavailable ({err}); the NumPy ones "
                "give the same results (to rounding) more slowly. Setting NUMBA_CACHE_DIR to "
                "a writable folder may help.",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
    return module


def _partial_distances(X, minus_2_centers_t, centers_sq, out=None):
    """``||c||^2 - 2 x.c`` for every row and center, through one BLAS product.

    Adding ``||x||^2`` gives the squared Euclidean distance; the argmin does not need it.
    """
    # The factor -2 is folded into the small matrix, not the big one.
    D = np.matmul(X, minus_2_centers_t, out=out)
    D += centers_sq
    return D


def origin_shift(centers: np.ndarray, dtype) -> np.ndarray | None:
    """The centers' mean, in ``dtype``, when it lies farther from the origin than the centers
    lie from each other; else ``None``.

    Squared distances computed as ``||x||^2 - 2 x.c + ||c||^2`` lose every digit to
    cancellation when the data sit far from the origin relative to their spread; rows and
    centers shifted by this vector keep them (scikit-learn's KMeans centers its data for the
    same reason).
    """
    centers = np.asarray(centers, dtype=np.float64)
    # Sums over the count: the bits of ``mean()``, without its overhead (a few us each, and
    # a pass computes this once per chunk).
    k = len(centers)
    mean = centers.sum(axis=0) / k
    diff = centers - mean
    # np.vdot and np.dot: a fifth of the cost of einsum and ``@`` on vectors this short.
    spread = np.vdot(diff, diff) / k
    return mean.astype(dtype) if np.dot(mean, mean) > spread else None


#: Up to this many features, the seedings (greedy k-means++ and k-means|| rounds) take their
#: squared distances as direct differences in float64 instead of through a BLAS product: on
#: so few columns the product's row norms, shifts and broadcasts over short rows cost more
#: than the differences themselves, and each distance is then a function of its row and its
#: point alone, so a center's distances are the same bits whether it was computed as one of
#: a step's trials or alone (:func:`nearest_so_far` folds the chosen trial's instead of
#: computing them again). Decided from the number of features alone: every chunking and
#: every path of a fit takes the same one.
DIRECT_MAX_FEATURES = 8


def direct_distances(n_features: int) -> bool:
    """Whether seedings on ``n_features`` columns take direct differences
    (:data:`DIRECT_MAX_FEATURES`)."""
    return n_features <= DIRECT_MAX_FEATURES


def direct_squared_t(X: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Squared distances from the rows of ``X`` to ``points``, transposed (points x rows),
    in float64: ``sum_j (x_j - p_j)^2`` added feature by feature in order, exact to
    rounding wherever the data lie, and the same bits for a point whatever other points are
    computed with it."""
    Xt = np.ascontiguousarray(X.T, dtype=np.float64)  # (d, rows): features over rows
    points = np.asarray(points, np.float64)
    D = np.subtract(Xt[0], points[:, :1])
    np.multiply(D, D, out=D)
    if len(Xt) > 1:
        term = np.empty_like(D)
        for j in range(1, len(Xt)):
            np.subtract(Xt[j], points[:, j : j + 1], out=term)
            np.multiply(term, term, out=term)
            D += term
    return D


class Nearest:
    """Nearest-center search against fixed centers, prepared once per chunk.

    Distances are computed as ``||c||^2 - 2 x.c + ||x||^2``, which loses every digit to
    cancellation when the data sit far from the origin relative to their spread (float32
    coordinates around 1e4 already do); rows and centers are then shifted by
    :func:`origin_shift` first. Distances and labels are unchanged in exact arithmetic.

    The distance matrices of successive row blocks reuse one buffer per thread (see
    :mod:`bigclust._scratch`): a returned distance matrix is only valid until the thread's
    next search.
    """

    def __init__(self, centers: np.ndarray, dtype: np.dtype, around: np.ndarray | None = None):
        centers = np.asarray(centers, dtype=np.float64)
        self.dtype = np.dtype(dtype)
        # ``around``: a shift fixed by the caller (so that searches against different
        # centers subtract the same one), instead of origin_shift's choice for these centers.
        self.shift = origin_shift(centers, dtype) if around is None else around.astype(dtype)
        if self.shift is not None:
            centers = centers - self.shift
        centers = centers.astype(dtype)
        self.n_centers = len(centers)
        self.minus_2_centers_t = np.ascontiguousarray(-2 * centers.T)
        self.centers_sq = np.einsum("ij,ij->i", centers, centers)

    def _scratch(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        # Kept per thread, not per search: a chunk's search would otherwise page-fault its
        # buffers anew in every task of a worker process.
        return scratch_array("nearest " + name, shape, self.dtype)

    def shifted(self, X: np.ndarray) -> np.ndarray:
        """``X`` less the shift (if any), in a buffer valid until the next call."""
        if self.shift is None:
            return X
        return np.subtract(X, self.shift, out=self._scratch("shifted", X.shape))

    def squared_t(self, X: np.ndarray) -> np.ndarray:
        """Squared distances, transposed: shape (n_centers, n_rows), clamped at 0.

        Reductions over centers then run along axis 0, elementwise across contiguous rows,
        many times faster than ``min(axis=1)`` over short rows.
        """
        X = self.shifted(X)
        return self.squared_t_of_shifted(X, np.einsum("ij,ij->i", X, X))

    def squared_t_of_shifted(self, X: np.ndarray, norms: np.ndarray) -> np.ndarray:
        """:meth:`squared_t` of rows already less the shift, ``norms`` their squared norms."""
        out = self._scratch("transposed", (self.n_centers, X.shape[0]))
        D = np.matmul(self.minus_2_centers_t.T, X.T, out=out)
        D += self.centers_sq[:, None]
        D += norms
        return np.maximum(D, 0, out=D)

    def min_squared(self, X: np.ndarray) -> np.ndarray:
        """Squared distance from each row to its nearest center."""
        return self.squared_t(X).min(axis=0)

    def _partial(self, X: np.ndarray) -> np.ndarray:
        out = self._scratch("distances", (X.shape[0], self.n_centers))
        return _partial_distances(X, self.minus_2_centers_t, self.centers_sq, out)

    def partial(self, X: np.ndarray) -> np.ndarray:
        """``||c||^2 - 2 x.c``: squared distances less ``||x||^2`` (after the shift)."""
        return self._partial(self.shifted(X))

    def squared(self, X: np.ndarray) -> np.ndarray:
        """Squared distances from every row to every center, clamped at 0."""
        X = self.shifted(X)
        D = self._partial(X)
        D += np.einsum("ij,ij->i", X, X)[:, None]
        return np.maximum(D, 0, out=D)

    def labels(self, X: np.ndarray) -> np.ndarray:
        return self.labels_of_shifted(self.shifted(X))

    def labels_of_shifted(self, X: np.ndarray) -> np.ndarray:
        """:meth:`labels` of rows already less the shift (:meth:`shifted`)."""
        return self._partial(X).argmin(axis=1).astype(np.int32, copy=False)

    def compiled_labels(self, X: np.ndarray, passes) -> np.ndarray:
        """:meth:`labels` through the compiled passes' :func:`~bigclust.cluster._fused.nearest`:
        the same labels, in a buffer valid until the thread's next search."""
        X = self.shifted(X)
        out = self._scratch("distances", (X.shape[0], self.n_centers))
        labels = scratch_array("nearest labels", (X.shape[0],), np.int32)
        passes.nearest(np.matmul(X, self.minus_2_centers_t, out=out), self.centers_sq, labels)
        return labels

    def __call__(self, X: np.ndarray):
        """Nearest center and squared distance to it, for the rows of one block."""
        X = self.shifted(X)
        D = self._partial(X)
        labels = D.argmin(axis=1)
        dist = D.ravel().take(labels + np.arange(0, D.size, D.shape[1]))  # 3x take_along_axis
        dist += np.einsum("ij,ij->i", X, X)
        np.maximum(dist, 0, out=dist)  # rounding can make tiny squared distances negative
        return labels.astype(np.int32, copy=False), dist


class OneHot:
    """The ``(n_clusters, n_rows)`` one-hot matrix of row labels (sparse CSC: one entry per
    column), whose product with rows gives per-cluster weighted sums.

    Linear in the rows whatever ``n_clusters``, much faster than ``np.add.at``. Reusable for
    many batches of ``n_rows`` rows: :meth:`sums` rewrites the labels and values in place,
    because building a scipy matrix checks its input, which costs more than the product
    itself for a batch of a thousand rows.
    """

    def __init__(self, n_rows: int, n_clusters: int, dtype):
        self.matrix = sp.csc_matrix(
            (np.ones(n_rows, dtype), np.zeros(n_rows, np.int32), np.arange(n_rows + 1)),
            shape=(n_clusters, n_rows),
        )

    def sums(self, X: np.ndarray, labels: np.ndarray, weights=None) -> np.ndarray:
        """Per-cluster sums of the rows of ``X`` (weighted), in the dtype of ``X``."""
        self.matrix.indices[:] = labels
        self.matrix.data[:] = 1 if weights is None else weights
        return self.matrix @ X


def cluster_sums(X: np.ndarray, labels: np.ndarray, weights, n_clusters: int) -> np.ndarray:
    """Per-cluster weighted sums of the rows of ``X`` (see :class:`OneHot`), through this
    thread's one-hot matrix of that shape (building one costs 30 us, five times the product
    on a block of a thousand rows)."""
    n_rows, dtype = X.shape[0], X.dtype
    onehot = thread_cached(
        ("one-hot", n_rows, n_clusters, dtype), lambda: OneHot(n_rows, n_clusters, dtype)
    )
    return onehot.sums(X, labels, weights)


# --- Lloyd -----------------------------------------------------------------------------


class LloydStats(NamedTuple):
    """Statistics of one Lloyd step over some rows; combine by addition."""

    sums: np.ndarray  # (k, d) float64: weighted sum of the rows assigned to each center
    weights: np.ndarray  # (k,) float64: total weight assigned to each center
    inertia: float  # weighted sum of squared distances to the nearest center (if asked)

    def all_finite(self) -> bool:
        """A NaN or infinite row makes its center's sums (or the inertia) non-finite."""
        return math.isfinite(self.inertia) and math.isfinite(self.sums.sum())


class LloydParams(NamedTuple):
    centers: np.ndarray  # (k, d), in the dtype of X
    update_centers: bool = True  # sums and weights per center
    with_inertia: bool = False  # the inertia too: costs a gather and the row norms


def lloyd_chunk(block: np.ndarray, params: LloydParams, start: int) -> LloydStats:
    """One Lloyd step's statistics for an unweighted chunk."""
    return _lloyd(block, None, params)


def lloyd_chunk_weighted(
    block: np.ndarray, sample_weight: np.ndarray, params: LloydParams, start: int
) -> LloydStats:
    """One Lloyd step's statistics for a chunk with sample weights."""
    return _lloyd(block, sample_weight, params)


def _lloyd(block, sample_weight, params: LloydParams, passes=None) -> LloydStats:
    """One Lloyd step's statistics over a chunk, in row blocks: nearest centers by one BLAS
    product per block, per-center sums of the rows around the shift in float64 and, if asked,
    the inertia from direct differences ``||x - c||^2`` in float64 (as scikit-learn reports
    it: the expanded form used for the assignment leaves ~1e-3 on float32 rows that lie on
    their centers).

    ``passes``: the compiled passes (see :func:`compiled_passes`) for the labels, the sums and
    the inertia, equal to the NumPy reference's to rounding (the labels are NumPy's argmin's,
    bit for bit); ``None`` decides by the rule there, ``False`` forces the NumPy reference.
    """
    k = len(params.centers)
    if passes is None:
        passes = compiled_passes("lloyd", block.dtype, block.shape[0] * k)
    search = Nearest(params.centers, block.dtype)
    step = LloydSums(block, sample_weight, params, search, passes)
    for rows in step.blocks():
        X = block[rows]
        if passes:
            step.add(rows, X, search.compiled_labels(X, passes))
            continue
        shifted = search.shifted(X)
        step.add(rows, X, search.labels_of_shifted(shifted), shifted)
    return step.stats()


class LloydSums:
    """The statistics of a Lloyd step over a chunk from its rows' labels, added row block by
    row block (:meth:`blocks`) in :func:`_lloyd`'s order, so that any scheme that finds the
    same labels (:mod:`bigclust.cluster._elkan`) gets the same bits."""

    def __init__(self, block, sample_weight, params: LloydParams, search: Nearest, passes):
        k, d = params.centers.shape
        self.n_rows, self.k, self.params, self.passes = block.shape[0], k, params, passes
        self.centers = np.asarray(params.centers, np.float64)
        self.shift = None if search.shift is None else search.shift.astype(np.float64)
        self.around = np.zeros(d) if self.shift is None else self.shift  # compiled sums' origin
        self.weights64 = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        self.sums = np.zeros((k, d), np.float64)
        self.weights = np.zeros(k, np.float64)
        self.inertia = 0.0

    def blocks(self):
        elements = COMPILED_BLOCK_ELEMENTS if self.passes else BLOCK_ELEMENTS
        return row_blocks(self.n_rows, self.k, elements)

    def add(self, rows: slice, X: np.ndarray, labels: np.ndarray, shifted=None) -> None:
        """Add the rows ``rows`` (``X``, the chunk's rows there) with their ``labels``;
        ``shifted``, if given, is ``X`` less the search's shift, as the search computed it."""
        params, shift = self.params, self.shift
        w = None if self.weights64 is None else self.weights64[rows]
        if self.passes:
            X = np.ascontiguousarray(X)  # one compiled specialization per dtype
            w = _NO_WEIGHTS if w is None else w
            if params.update_centers:
                self.passes.accumulate(X, labels, w, self.around, self.sums, self.weights)
            if params.with_inertia:
                self.inertia += self.passes.inertia(X, labels, w, self.centers)
            return
        if params.update_centers:
            # Summed near the origin in float64: far from it, the sums would lose the digits.
            if direct_distances(X.shape[1]):
                self._add_by_feature(X, labels, w)
            elif shifted is not None and shifted.dtype == np.float64:
                # float64 rows: the search's shifted rows are the values computed below
                self.sums += cluster_sums(shifted, labels, w, self.k)
            else:
                X64 = X.astype(np.float64)
                if shift is not None:
                    X64 -= shift
                self.sums += cluster_sums(X64, labels, w, self.k)
            self.weights += np.bincount(labels, weights=w, minlength=self.k)
        if params.with_inertia:
            self.inertia += _direct_inertia(X, labels, w, self.centers)

    def _add_by_feature(self, X, labels, w) -> None:
        """The per-center sums of few features (:data:`DIRECT_MAX_FEATURES`) by one
        ``bincount`` per feature over the rows transposed: the sparse product's additions in
        the same order (the same bits), without its broadcasts over short rows."""
        # A copy whatever the layout: a one-row block's transpose is already contiguous, and
        # the shift and weights below are applied in place.
        Xt = np.array(X.T, dtype=np.float64, order="C")
        if self.shift is not None:
            Xt -= self.shift[:, None]
        if w is not None:
            Xt *= w
        for j, feature in enumerate(Xt):
            self.sums[:, j] += np.bincount(labels, weights=feature, minlength=self.k)

    def stats(self) -> LloydStats:
        if self.params.update_centers and self.shift is not None:
            self.sums += np.outer(self.weights, self.shift)
        return LloydStats(self.sums, self.weights, self.inertia)


#: The compiled passes take an empty weight array for "all weights 1".
_NO_WEIGHTS = np.empty(0, np.float64)


#: Elements of the float64 differences :func:`_direct_inertia` computes at a time, in
#: per-thread buffers: a mini-batch of 1,024 x 784 float64 rows took 3.8 ms with fresh
#: ones (page faults on 6 MiB, twice) and 1.4 ms with kept ones.
INERTIA_ELEMENTS = 1 << 17


def _direct_inertia(X, labels, w, centers) -> float:
    """``sum_i w_i ||x_i - c_{labels[i]}||^2`` from direct differences in float64."""
    n, d = X.shape
    step = max(1, INERTIA_ELEMENTS // max(d, 1))
    dist = np.empty(n)
    for lo in range(0, n, step):
        rows = slice(lo, min(lo + step, n))
        m = rows.stop - lo
        diff = scratch_array("inertia rows", (min(step, n), d), np.float64)[:m]
        near = scratch_array("inertia centers", (min(step, n), d), np.float64)[:m]
        np.copyto(diff, X[rows])
        np.take(centers, labels[rows], axis=0, out=near, mode="clip")  # labels are in range
        diff -= near
        np.einsum("ij,ij->i", diff, diff, out=dist[rows])
    return float(dist.sum() if w is None else dist @ w)


class Farthest(NamedTuple):
    """The rows farthest from their assigned centers, for empty-cluster relocation."""

    distances: np.ndarray  # (m,)
    rows: np.ndarray  # (m,) global row index
    labels: np.ndarray  # (m,) assigned center
    weights: np.ndarray  # (m,) sample weight
    points: np.ndarray  # (m, d)

    def combine(self, other: Farthest) -> Farthest:
        return _top(
            Farthest(*(np.concatenate(pair) for pair in zip(self, other, strict=False))),
            len(self.rows),
        )

    def all_finite(self) -> bool:
        return bool(np.isfinite(self.distances).all())


def _top(f: Farthest, m: int) -> Farthest:
    if len(f.distances) <= m:
        return f
    # Largest distances first; ties broken by global row so the choice ignores chunking.
    order = np.lexsort((f.rows, -f.distances))[:m]
    return Farthest(*(a[order] for a in f))


def farthest_chunk(block, *rest) -> Farthest:
    """The ``n_far`` rows of a chunk farthest from their nearest center (as in scikit-learn's
    relocation rule: squared distance to the assigned center of the previous step)."""
    *weights, (centers, n_far), start = rest
    w = weights[0] if weights else np.ones(block.shape[0], block.dtype)
    search = Nearest(centers, block.dtype)
    best = None
    for rows in row_blocks(block.shape[0], len(centers)):
        labels, dist = search(block[rows])
        part = Farthest(
            dist.astype(np.float64),
            np.arange(rows.start, rows.stop) + start,
            labels,
            w[rows].astype(np.float64),
            block[rows].astype(np.float64),
        )
        part = _top(part, n_far)
        best = part if best is None else best.combine(part)
    return best


# --- predict / transform ---------------------------------------------------------------


def _check_finite_rows(values: np.ndarray, X: np.ndarray, offset: int) -> None:
    """Raise ``NonFiniteRow`` if ``values`` (derived from the rows of X) are not finite."""
    if not np.isfinite(values).all():
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise NonFiniteRow(offset + int(bad[0]) if bad.size else offset)


def labels_block(block: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest center for every row (the compiled search on large chunks, the
    same labels)."""
    search = Nearest(centers, block.dtype)
    out = np.empty(block.shape[0], np.int32)
    passes = compiled_passes("lloyd", block.dtype, block.shape[0] * len(centers))
    if passes:
        for rows in row_blocks(block.shape[0], len(centers), COMPILED_BLOCK_ELEMENTS):
            X = block[rows]
            out[rows] = search.compiled_labels(X, passes)
            if not np.isfinite(X.sum()):  # rare (or huge values): which row, if any
                _check_finite_rows(X, X, rows.start)
        return out
    for rows in row_blocks(block.shape[0], len(centers)):
        D = search.partial(block[rows])
        labels = D.argmin(axis=1)
        _check_finite_rows(np.take_along_axis(D, labels[:, None], axis=1), block[rows], rows.start)
        out[rows] = labels
    return out


def distances_block(block: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Euclidean distance from every row to every center (scikit-learn's ``transform``)."""
    search = Nearest(centers, block.dtype)
    out = np.empty((block.shape[0], len(centers)), block.dtype)
    for rows in row_blocks(block.shape[0], len(centers)):
        D = search.squared(block[rows])
        _check_finite_rows(D, block[rows], rows.start)
        out[rows] = np.sqrt(D)
    return out


# --- column moments (for scikit-learn's variance-scaled tol) ----------------------------


class ColumnMoments(NamedTuple):
    """Unweighted per-column row count, mean and sum of squared deviations from the mean.

    Parts combine by the pairwise update of Chan, Golub and LeVeque (1979), so no shift is
    needed to keep the variance exact for data far from the origin: the moments depend on
    the data alone, and models fitted together on the same data share one computation.
    """

    count: int
    mean: np.ndarray  # (d,)
    m2: np.ndarray  # (d,) sum of (x - mean)^2

    def combine(self, other: ColumnMoments) -> ColumnMoments:
        if not other.count:
            return self
        if not self.count:
            return other
        count = self.count + other.count
        # A NaN or infinite row makes the moments non-finite; the pass then names that row.
        with np.errstate(invalid="ignore", over="ignore"):
            delta = other.mean - self.mean
            mean = self.mean + delta * (other.count / count)
            m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / count)
        return ColumnMoments(count, mean, m2)

    def all_finite(self) -> bool:
        return bool(np.isfinite(self.mean).all() and np.isfinite(self.m2).all())

    def variance(self) -> np.ndarray:
        return self.m2 / self.count


def column_moments_chunk(block: np.ndarray, start: int) -> ColumnMoments:
    """Column moments of a chunk: each row block's (two passes over the block while it is in
    cache), combined in order."""
    total = ColumnMoments(0, np.zeros(block.shape[1]), np.zeros(block.shape[1]))
    for rows in row_blocks(block.shape[0], block.shape[1]):
        X = block[rows].astype(np.float64)
        mean = X.mean(axis=0)
        X -= mean
        total = total.combine(ColumnMoments(X.shape[0], mean, np.einsum("ij,ij->j", X, X)))
    return total


# --- k-means|| --------------------------------------------------------------------------


class ParallelRoundParams(NamedTuple):
    candidates: np.ndarray  # (m, d) float64: the candidate centers so far, round by round
    oversampling: float  # l: expected number of new candidates per round
    seed: int
    round: int
    groups: tuple[int, ...] = ()  # candidates added by each round (the first center: 1)
    run: str = ""  # the seeding's key for the distances kept per chunk ("": none kept)


class Sampled(NamedTuple):
    """One k-means|| round: the cost so far and the rows that may be sampled.

    Row ``x`` is sampled with probability ``min(1, l w(x) d^2(x) / phi)`` by drawing
    ``u(x)`` uniform in (0, 1] from the row-keyed stream and keeping it when its key
    ``l w(x) d^2(x) / u(x)`` exceeds ``phi``. ``phi`` is the total cost, known only after the
    reduction, but partial costs are lower bounds of it, so each combine can drop the rows
    whose key does not exceed the partial cost: the root holds exactly the sample.
    """

    cost: float
    keys: np.ndarray  # (m,)
    rows: np.ndarray  # (m,) global row index
    points: np.ndarray  # (m, d) float64
    where: dict  # first row of each chunk -> the distributed worker keeping its distances

    def combine(self, other: Sampled) -> Sampled:
        cost = self.cost + other.cost
        keys = np.concatenate([self.keys, other.keys])
        keep = keys > cost
        return Sampled(
            cost,
            keys[keep],
            np.concatenate([self.rows, other.rows])[keep],
            np.concatenate([self.points, other.points])[keep],
            {**self.where, **other.where},
        )

    def all_finite(self) -> bool:
        return bool(np.isfinite(self.cost))


#: Stream keys (see bigclust._random).
KEY_PARALLEL_ROUND = _random.Key.PARALLEL_ROUND


def parallel_round_chunk(block, *rest) -> Sampled:
    """Cost of a chunk against the current candidates, and its rows that may be sampled."""
    *weights, params, start = rest
    w = weights[0].astype(np.float64) if weights else None
    u = parallel_round_uniforms(params, start, block.shape[0])
    return parallel_round(block, w, params, start, u)


def parallel_round_uniforms(params: ParallelRoundParams, start: int, n_rows: int) -> np.ndarray:
    """The uniforms in (0, 1] of a k-means|| round for global rows ``[start, start + n_rows)``."""
    return 1.0 - _random.rows_random(
        params.seed,
        (KEY_PARALLEL_ROUND, params.round),
        start,
        start + n_rows,
        lambda rng, m: rng.random(m),
    )


def parallel_round(block, w, params: ParallelRoundParams, start, u, min_squared=None) -> Sampled:
    """:func:`parallel_round_chunk` given the chunk's float64 weights (or ``None``) and
    uniforms ``u``; ``min_squared(search, block, r)`` (default
    ``search.min_squared(block[r])``) is the squared distance of each row of ``block[r]`` to
    the nearest of a group of candidates.

    Each row's distance to the nearest candidate so far is kept per chunk from one round to
    the next (:func:`nearest_so_far`, a group per round), so a round computes distances to
    the previous round's candidates alone, not to every candidate again.
    """
    groups = params.groups or (len(params.candidates),)
    candidates = params.candidates
    nearest = nearest_so_far(
        block, candidates, groups, params.run, start, candidates[0], min_squared
    )
    cost = 0.0
    keys, rows = [], []
    for r in row_blocks(block.shape[0], 1):
        dist = nearest[r].astype(np.float64)
        if w is not None:
            dist *= w[r]
        cost += float(dist.sum())
        key = params.oversampling * dist / u[r]
        keep = np.flatnonzero(key > cost)  # running cost <= final cost: a superset
        keys.append(key[keep])
        rows.append(keep + r.start)
    keys, local = np.concatenate(keys), np.concatenate(rows)
    keep = keys > cost
    keys, local = keys[keep], local[keep]
    points = block[local].astype(np.float64)
    return Sampled(cost, keys, local + start, points, {start: _chunk_state.worker_address()})


def nearest_weights_chunk(block, *rest) -> np.ndarray:
    """Total sample weight closest to each candidate (the k-means|| weighting pass)."""
    *weights, candidates, _start = rest
    search = Nearest(candidates, block.dtype)
    counts = np.zeros(len(candidates))
    for r in row_blocks(block.shape[0], len(candidates)):
        labels = search.labels(block[r])
        counts += np.bincount(
            labels, weights=weights[0][r] if weights else None, minlength=len(candidates)
        )
    return counts


# --- greedy k-means++ -------------------------------------------------------------------


class PlusPlusParams(NamedTuple):
    centers: np.ndarray  # (j, d) float64: centers chosen so far (the first one is the shift)
    trials: np.ndarray  # (t, d) float64: candidates for the next center
    n_next_trials: int  # s: candidates to draw for the center after
    seed: int
    step: int
    run: str = ""  # the seeding's key for the distances kept per chunk ("": none kept)


class PlusPlusStats(NamedTuple):
    """For each trial: the potential if it were chosen, and the next trials drawn as if it were.

    Sampling row ``x`` with probability proportional to ``w(x) D(x)`` is an exponential race:
    the row with the smallest ``E(x) / (w(x) D(x))`` wins, ``E`` exponential from the row-keyed
    stream. Each race is a per-row minimum, so chunks combine by ``min`` and the global
    potential is never needed inside the pass. Races share their ``E`` across trials: only
    the branch of the chosen trial is ever used.
    """

    potential: np.ndarray  # (t,)
    score: np.ndarray  # (t, s) best race score
    rows: np.ndarray  # (t, s) winning global row (-1: none)
    points: np.ndarray  # (t, s, d) winning row
    where: dict  # first row of each chunk -> the distributed worker keeping its distances

    def combine(self, other: PlusPlusStats) -> PlusPlusStats:
        better = (other.score < self.score) | (
            (other.score == self.score) & (other.rows < self.rows) & (other.rows >= 0)
        )
        return PlusPlusStats(
            self.potential + other.potential,
            np.where(better, other.score, self.score),
            np.where(better, other.rows, self.rows),
            np.where(better[..., None], other.points, self.points),
            {**self.where, **other.where},
        )

    def all_finite(self) -> bool:
        return bool(np.isfinite(self.potential).all())


KEY_PLUSPLUS = _random.Key.PLUSPLUS


def plusplus_chunk(block, *rest) -> PlusPlusStats:
    """One greedy k-means++ step over a chunk (see :class:`PlusPlusStats`)."""
    *weights, params, start = rest
    w = weights[0].astype(np.float64) if weights else None
    return plusplus_step(block, w, params, start, plusplus_races(params, start, block.shape[0]))


def plusplus_races(params: PlusPlusParams, start: int, n_rows: int) -> np.ndarray:
    """The exponentials of a k-means++ step for global rows ``[start, start + n_rows)``,
    shape (next trials, rows): drawn row by row, stored trial by trial, so that the races'
    broadcast division and argmin run over contiguous rows (3x and 4x faster than over the
    transposed view; with it a minimum over rows took 40 times as long)."""
    s = params.n_next_trials
    by_row = _random.rows_random(
        params.seed,
        (KEY_PLUSPLUS, params.step),
        start,
        start + n_rows,
        lambda rng, m: rng.standard_exponential((m, s)),
    )
    return np.ascontiguousarray(by_row.T)


def plusplus_step(
    block, w, params: PlusPlusParams, start: int, exp, squared_t=None, min_squared=None
) -> PlusPlusStats:
    """:func:`plusplus_chunk` given the chunk's float64 weights (or ``None``) and its
    exponentials ``exp`` (:func:`plusplus_races`); ``squared_t(search, block, r)`` (default
    ``search.squared_t(block[r]).astype(np.float64)``, the search around the first center)
    gives the squared distances of the rows ``block[r]`` to the trials, ``min_squared`` those
    to a chosen center (see :func:`nearest_so_far`).

    Each row's squared distance to the nearest center chosen so far is kept per chunk from
    one step to the next (:func:`nearest_so_far`), so a step computes distances to its
    trials and to the newest center alone: ``n (t + 1)`` distances a step instead of
    ``n (j + t)``, which made the seeding quadratic in ``n_clusters``. On few features
    (:data:`DIRECT_MAX_FEATURES`) the distances are direct differences, and the step also
    keeps its trials' distances: the next step's new center is one of them, so that step
    computes ``n t`` distances alone (the overrides, which go through the product, are not
    used there).
    """
    centers, trials = params.centers, params.trials
    n_trials, s, d = len(trials), params.n_next_trials, block.shape[1]
    direct = direct_distances(d)
    if direct:  # the compiled forms compute through the product: the same bits need these
        squared_t = min_squared = None
    groups = (1,) * len(centers)
    state = _nearest_state(block, centers, groups, params.run, start, centers[0], min_squared)
    nearest = state.distances
    # The trials around the seeding's first center, as the chosen centers: the rows less it
    # (and their norms) serve both searches and every step.
    search = None if direct else Nearest(trials, block.dtype, around=centers[0])
    rows_around = None if direct or squared_t else state.rows_around(block, centers[0])
    n = block.shape[0]
    keep = direct and params.run and n_trials * n <= KEEP_TRIAL_ELEMENTS
    kept = np.empty((n_trials, n)) if keep else None
    potential = np.zeros(n_trials)
    score = np.full((n_trials, s), np.inf)
    rows = np.full((n_trials, s), -1, np.int64)
    points = np.zeros((n_trials, s, d))
    for r in row_blocks(n, n_trials):
        X = block[r]
        if direct:
            D = direct_squared_t(X, trials)
        elif squared_t is None:
            D = rows_around.squared_t(search, block, r).astype(np.float64)  # (t, b)
        else:
            D = squared_t(search, block, r)
        if keep:
            kept[:, r] = D
        with_trial = np.minimum(nearest[r], D)  # (t, b)
        if w is not None:
            with_trial *= w[r]
        potential += with_trial.sum(axis=1)
        with np.errstate(divide="ignore"):
            race = exp[None, :, r] / with_trial[:, None, :]  # (t, s, b)
        best = race.argmin(axis=2)  # (t, s)
        best_score = race.min(axis=2)  # the values at ``best``: the same bits
        better = best_score < score
        score = np.where(better, best_score, score)
        rows = np.where(better, best + r.start + start, rows)
        points = np.where(better[..., None], X[best].astype(np.float64), points)
    if params.run:
        if keep:
            state.trials, state.trial_distances = np.asarray(trials, np.float64), kept
        _chunk_state.put(params.run, start, state)
    return PlusPlusStats(potential, score, rows, points, {start: _chunk_state.worker_address()})


class _NearestSoFar:
    """A chunk's squared distances to the nearest point of its first ``n_folded`` groups and,
    with direct distances (:data:`DIRECT_MAX_FEATURES`), a greedy step's trials with their
    distances: the next step's new center is one of them."""

    __slots__ = ("around", "distances", "n_folded", "trial_distances", "trials")

    def __init__(self, n_rows: int, dtype):
        self.n_folded = 0
        self.distances = np.full(n_rows, np.inf, dtype)
        self.trials = self.trial_distances = None
        self.around = None  # _RowsAround: the rows less the seeding's shift, for the product

    def rows_around(self, block, shift) -> _RowsAround:
        """The chunk's rows less ``shift`` (the seeding's first center), kept between steps."""
        shift = np.asarray(shift).astype(block.dtype)
        if self.around is None or self.around.key != shift.tobytes():
            self.around = _RowsAround(block, shift)
        return self.around


#: A chunk of at most this many bytes keeps its rows less the seeding's shift between the
#: steps (a copy of the chunk); a larger one keeps their squared norms alone. Small, so that
#: only small chunks (in-memory data of a notebook's size) keep a copy: a bound per chunk is
#: no bound on the data's many chunks.
KEEP_SHIFTED_BYTES = 1 << 20


class _RowsAround:
    """A chunk's rows less a seeding's fixed shift, as :meth:`Nearest.shifted` computes
    them, and their squared norms, as :meth:`Nearest.squared_t` does (row by row: the same
    bits in any row blocks): computed once per seeding instead of twice per step."""

    __slots__ = ("key", "norms", "rows", "shift")

    def __init__(self, block, shift):
        self.shift, self.key = shift, shift.tobytes()
        small = block.nbytes <= KEEP_SHIFTED_BYTES
        self.rows = np.subtract(block, shift) if small else None
        self.norms = np.empty(block.shape[0], block.dtype)
        for r in row_blocks(block.shape[0], 1):
            X = self.rows[r] if small else np.subtract(block[r], shift)
            self.norms[r] = np.einsum("ij,ij->i", X, X)

    def squared_t(self, search: Nearest, block, r: slice) -> np.ndarray:
        """``search.squared_t(block[r])`` for a search around this shift."""
        X = self.rows[r] if self.rows is not None else search.shifted(block[r])
        return search.squared_t_of_shifted(X, self.norms[r])


#: A greedy step keeps its trials' direct distances for the next step while they take at most
#: this many float64s per chunk (512 KiB); a larger chunk computes its new center's again.
#: They take 8 bytes a row per trial (32 for k=8), several times rows of few features: kept
#: for small chunks alone, where the recomputation's call overhead is what they save.
KEEP_TRIAL_ELEMENTS = 1 << 16


def nearest_so_far(
    block, points: np.ndarray, groups, run: str, start: int, around=None, min_squared=None
):
    """Each row's squared distance to the nearest of ``points``, in the data's dtype (float64
    with direct distances, :data:`DIRECT_MAX_FEATURES`): the centers a seeding has chosen
    (greedy k-means++: a group of one per center) or the candidates of its rounds
    (k-means||: a group per round), ``groups`` their sizes in order.

    Computed group by group, each against the chunk alone (less the shift ``around``, or the
    group's own :func:`origin_shift`) in the row blocks of its own size, and folded into a
    running minimum in order: the bits depend on no other group and on no step. The minimum
    is kept for the chunk under ``run`` (:mod:`bigclust._chunk_state`) for the next step,
    which folds in its new group only; a chunk without it (a lost worker, a moved task,
    ``run=""``) folds every group again. ``min_squared(search, block, r)`` replaces
    ``search.min_squared(block[r])`` (the together forms' compiled loop).
    """
    state = _nearest_state(block, points, groups, run, start, around, min_squared)
    if run:
        _chunk_state.put(run, start, state)
    return state.distances


def _nearest_state(block, points, groups, run, start, around, min_squared) -> _NearestSoFar:
    """:func:`nearest_so_far`'s state for the chunk, taken out of the store (the caller puts
    it back)."""
    state = _chunk_state.take(run, start) if run else None
    n = block.shape[0]
    direct = direct_distances(block.shape[1])
    if state is None or state.distances.shape[0] != n or state.n_folded > len(groups):
        state = _NearestSoFar(n, np.float64 if direct else block.dtype)
    end = sum(groups[: state.n_folded])  # Python ints: np.cumsum costs more than a step here
    for g in range(state.n_folded, len(groups)):
        group, end = points[end : end + groups[g]], end + groups[g]
        if len(group) == 0:  # a round that sampled no row
            continue
        if direct:
            _fold_direct(state, block, group)
            continue
        search = Nearest(group, block.dtype, around=around)
        rows = state.rows_around(block, around) if around is not None else None
        for r in row_blocks(n, search.n_centers):
            if min_squared is not None:
                near = min_squared(search, block, r)
            elif rows is not None:
                near = rows.squared_t(search, block, r).min(axis=0)
            else:
                near = search.min_squared(block[r])
            np.minimum(state.distances[r], near, out=state.distances[r])
    state.n_folded = len(groups)
    state.trials = state.trial_distances = None  # kept for one step only
    return state


def _fold_direct(state: _NearestSoFar, block, group: np.ndarray) -> None:
    """Fold a group's direct distances into ``state``: a chosen trial's as its step kept
    them (the same bits as computing them again)."""
    if len(group) == 1 and state.trials is not None:
        same = np.flatnonzero((state.trials == group[0]).all(axis=1))
        if same.size:
            np.minimum(state.distances, state.trial_distances[same[0]], out=state.distances)
            return
    for r in row_blocks(block.shape[0], len(group)):
        near = direct_squared_t(block[r], group).min(axis=0)
        np.minimum(state.distances[r], near, out=state.distances[r])


def copy_nearest_so_far(source: str, target: str, start: int) -> None:
    """Give the seeding ``target`` the distances that the seeding ``source`` has just kept
    for the chunk starting at row ``start`` (:func:`nearest_so_far`), when both have chosen
    the same centers: ``target`` goes on from them as if it had taken the step itself."""
    if not target or target == source:
        return
    _chunk_state.take(target, start)  # its own, a step behind
    state = _chunk_state.take(source, start) if source else None
    if state is None:
        return
    _chunk_state.put(source, start, state)
    copy = _NearestSoFar(0, state.distances.dtype)
    copy.n_folded, copy.distances = state.n_folded, state.distances.copy()
    copy.trials, copy.trial_distances = state.trials, state.trial_distances
    copy.around = state.around  # read only
    _chunk_state.put(target, start, copy)


def lloyd_and_moments_chunk(block, *rest):
    """The first Lloyd pass also collects column moments (for the variance-scaled ``tol``),
    so that no separate pass reads the data."""
    *weights, lloyd_params, start = rest
    return (
        _lloyd(block, weights[0] if weights else None, lloyd_params),
        column_moments_chunk(block, start),
    )
