"""Per-chunk kernels of the clustering metrics: pure NumPy, no Dask.

Every kernel takes one chunk of rows, the matching block of labels, small parameters and the
chunk's global row offset, and returns statistics that combine by addition or their own
``combine``. Labels are encoded per chunk against the sorted unique labels (``classes``), so
they may be any sortable values. Work runs in row blocks of bounded size, in float64.

Precision far from the origin: per-cluster means and spreads are accumulated around the
chunk's first row and merged with the parallel-variance formula (Chan, Golub and LeVeque
1979), and distances to means are formed from differences or around the means' centroid
(:class:`bigclust.cluster._kernels.Nearest`), never from raw ``|x|^2`` of far-away rows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bigclust import _random
from bigclust._selection import TopPerCluster
from bigclust.cluster._kernels import Nearest, cluster_sums

#: Elements of a row block's temporary (rows x width): 2**19 floats is 4 MiB.
BLOCK_ELEMENTS = 1 << 19

#: Integer labels spanning at most this many values are counted and encoded through a table.
DENSE_LABEL_RANGE = 1 << 16


def row_slices(n_rows: int, width: int):
    """Slices covering ``range(n_rows)`` so that ``rows x width`` stays within BLOCK_ELEMENTS."""
    step = int(max(16, BLOCK_ELEMENTS // max(1, width)))
    return [slice(lo, min(lo + step, n_rows)) for lo in range(0, n_rows, step)]


def encode(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Index of each label in the sorted ``classes`` (which hold every label)."""
    if labels.dtype.kind in "iu" and classes.dtype.kind in "iu" and len(classes):
        low = int(classes[0])
        span = int(classes[-1]) - low + 1
        if span <= DENSE_LABEL_RANGE:  # a lookup table: no binary search per row
            lookup = np.zeros(span, np.intp)
            lookup[(classes - low).astype(np.intp)] = np.arange(len(classes))
            return lookup[(labels - low).astype(np.intp, copy=False)]
    return np.searchsorted(classes, labels).astype(np.intp, copy=False)


# --- per-cluster moments ------------------------------------------------------------------


class ClusterMoments:
    """Count, mean and spread (sum of squared distances to the mean) of every cluster seen.

    ``classes`` are the sorted label values present; ``combine`` merges two sets of clusters
    by value with the parallel-variance formula, so no shift has to be agreed in advance.
    """

    __slots__ = ("classes", "counts", "means", "spreads")

    def __init__(self, classes, counts, means, spreads):
        self.classes = classes  # (K,) sorted label values
        self.counts = counts  # (K,) int64
        self.means = means  # (K, d) float64
        self.spreads = spreads  # (K,) float64: sum over the cluster of |x - mean|^2

    def combine(self, other: ClusterMoments) -> ClusterMoments:
        classes = np.union1d(self.classes, other.classes)
        k, d = len(classes), self.means.shape[1]
        ia = np.searchsorted(classes, self.classes)
        ib = np.searchsorted(classes, other.classes)
        na, nb = np.zeros(k), np.zeros(k)
        na[ia], nb[ib] = self.counts, other.counts
        ma, mb = np.zeros((k, d)), np.zeros((k, d))
        ma[ia], mb[ib] = self.means, other.means
        spreads = np.zeros(k)
        spreads[ia] += self.spreads
        spreads[ib] += other.spreads
        n = na + nb
        delta = mb - ma
        both = (na > 0) & (nb > 0)
        means = np.where((na > 0)[:, None], ma, mb)
        means[both] += delta[both] * (nb[both] / n[both])[:, None]
        spreads[both] += np.einsum("ij,ij->i", delta[both], delta[both]) * (
            na[both] * nb[both] / n[both]
        )
        return ClusterMoments(classes, n.astype(np.int64), means, spreads)

    def all_finite(self) -> bool:
        return bool(np.isfinite(self.means).all() and np.isfinite(self.spreads).all())


def unique_codes(labels: np.ndarray):
    """Sorted distinct labels, the index of each label among them, and their counts.

    ``np.unique`` sorts the labels (a third of a moments pass); small non-negative-range
    integer labels, the usual case, are counted directly.
    """
    if labels.dtype.kind in "iu" and labels.size:
        low = int(labels.min())
        span = int(labels.max()) - low + 1
        if span <= DENSE_LABEL_RANGE:
            shifted = (labels - low).astype(np.intp, copy=False)
            counts = np.bincount(shifted, minlength=span)
            present = np.flatnonzero(counts)
            lookup = np.zeros(span, np.intp)
            lookup[present] = np.arange(len(present))
            return (present + low).astype(labels.dtype), lookup[shifted], counts[present]
    classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return classes, codes.reshape(-1), counts


def moments_chunk(block: np.ndarray, labels: np.ndarray, params, start: int) -> ClusterMoments:
    """Per-cluster moments of one chunk, around its first row."""
    classes, codes, counts = unique_codes(labels)
    k, d = len(classes), block.shape[1]
    origin = block[0].astype(np.float64)
    slices = row_slices(block.shape[0], d)
    sums = np.zeros((k, d))
    for rows in slices:
        sums += cluster_sums(np.subtract(block[rows], origin), codes[rows], None, k)
    local = sums / counts[:, None]  # means around `origin`
    spreads = np.zeros(k)
    for rows in slices:
        deviations = np.subtract(block[rows], origin)
        deviations -= local[codes[rows]]
        squared = np.einsum("ij,ij->i", deviations, deviations)
        spreads += np.bincount(codes[rows], weights=squared, minlength=k)
    return ClusterMoments(classes, counts.astype(np.int64), local + origin, spreads)


# --- Davies-Bouldin: mean distance to the own centroid ------------------------------------


def centroid_distance_chunk(block, labels, params, start) -> np.ndarray:
    """Per-cluster sums of the Euclidean distance from each row to its cluster's mean."""
    classes, means = params
    codes = encode(labels, classes)
    sums = np.zeros(len(classes))
    for rows in row_slices(block.shape[0], block.shape[1]):
        deviations = block[rows].astype(np.float64) - means[codes[rows]]
        distances = np.sqrt(np.einsum("ij,ij->i", deviations, deviations))
        sums += np.bincount(codes[rows], weights=distances, minlength=len(classes))
    return sums


# --- silhouette, squared Euclidean: from the per-cluster moments --------------------------


class SquaredParams(NamedTuple):
    classes: np.ndarray  # (K,)
    counts: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    spreads: np.ndarray  # (K,)


def silhouette_from_means(x: np.ndarray, codes: np.ndarray, p: SquaredParams) -> np.ndarray:
    """Squared-Euclidean silhouette of rows ``x`` (float64) with cluster indices ``codes``.

    The mean squared distance from ``x`` to the rows of cluster C is
    ``|x - m_C|^2 + spread_C / n_C``; for the row's own cluster, whose sum includes the zero
    distance to itself, ``a = n_C / (n_C - 1)`` times that. A singleton cluster gives 0, as
    in scikit-learn.
    """
    search = Nearest(p.means, np.float64)
    mean_sq = search.squared_t(x)  # (K, rows), a scratch buffer of this thread
    mean_sq += (p.spreads / p.counts)[:, None]
    columns = np.arange(x.shape[0])
    own = mean_sq[codes, columns]
    n_own = p.counts[codes]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = own * n_own / (n_own - 1)
        mean_sq[codes, columns] = np.inf
        b = mean_sq.min(axis=0)
        s = (b - a) / np.maximum(a, b)
    s[(n_own == 1) | ~np.isfinite(s)] = 0.0
    return s


def _squared_rows(block, labels, p: SquaredParams) -> np.ndarray:
    codes = encode(labels, p.classes)
    out = np.empty(block.shape[0])
    for rows in row_slices(block.shape[0], max(len(p.classes), block.shape[1])):
        out[rows] = silhouette_from_means(block[rows].astype(np.float64), codes[rows], p)
    return out


def squared_silhouette_rows(block, labels, params: SquaredParams) -> np.ndarray:
    """Per-row squared-Euclidean silhouette (a lazy output's kernel)."""
    return _squared_rows(block, labels, params)


def squared_silhouette_sum(block, labels, params: SquaredParams, start) -> float:
    """Sum of the chunk's squared-Euclidean silhouettes."""
    return float(_squared_rows(block, labels, params).sum())


# --- silhouette, Euclidean: chosen rows against all rows ----------------------------------


class Gathered:
    """Some rows of the data with their global index and label; ``combine`` concatenates."""

    __slots__ = ("index", "labels", "rows")

    def __init__(self, index, rows, labels):
        self.index, self.rows, self.labels = index, rows, labels

    def combine(self, other: Gathered) -> Gathered:
        return Gathered(
            np.concatenate([self.index, other.index]),
            np.concatenate([self.rows, other.rows]),
            np.concatenate([self.labels, other.labels]),
        )

    def sorted(self) -> Gathered:
        order = np.argsort(self.index, kind="stable")
        return Gathered(self.index[order], self.rows[order], self.labels[order])

    def all_finite(self) -> bool:
        return bool(np.isfinite(self.rows).all())


def gather_range(block, labels, lo: int, hi: int, start: int) -> Gathered:
    """The chunk's rows with global index in ``[lo, hi)``."""
    first, last = max(lo, start) - start, min(hi, start + block.shape[0]) - start
    if last <= first:
        return Gathered(np.empty(0, np.int64), np.empty((0, block.shape[1])), labels[:0])
    return Gathered(
        np.arange(first, last, dtype=np.int64) + start,
        block[first:last].astype(np.float64),
        labels[first:last],
    )


class QueryParams(NamedTuple):
    classes: np.ndarray  # (K,)
    shift: np.ndarray  # (d,) subtracted from every row (the data's mean)
    queries: np.ndarray  # (q, d) float64 rows, shifted
    index: np.ndarray  # (q,) their global rows, sorted
    gather: tuple[int, int] | None  # rows to bring back in the same pass


class QuerySums(NamedTuple):
    sums: np.ndarray  # (K, q): per cluster, the sum of distances to each query row
    gathered: Gathered | None


def query_distance_chunk(block, labels, params: QueryParams, start) -> QuerySums:
    """Per-cluster sums of the Euclidean distances from each query row to the chunk's rows.

    Distances are computed around ``shift`` through one product per row block; a query row's
    distance to itself is set to 0 exactly (the product leaves rounding noise of the order of
    ``sqrt(eps) |x|``, which would bias its mean intra-cluster distance).
    """
    queries, index = params.queries, params.index
    k, q = len(params.classes), len(index)
    codes = encode(labels, params.classes)
    queries_sq = np.einsum("ij,ij->i", queries, queries)
    sums = np.zeros((k, q))
    for rows in row_slices(block.shape[0], q):
        x = block[rows].astype(np.float64) - params.shift
        D = x @ queries.T
        D *= -2
        D += np.einsum("ij,ij->i", x, x)[:, None]
        D += queries_sq
        np.maximum(D, 0, out=D)
        np.sqrt(D, out=D)
        global_rows = np.arange(rows.start, rows.stop) + start
        at = np.minimum(np.searchsorted(index, global_rows), q - 1)
        self_pairs = index[at] == global_rows
        D[np.flatnonzero(self_pairs), at[self_pairs]] = 0.0
        sums += cluster_sums(D, codes[rows], None, k)
    gathered = None
    if params.gather is not None:
        gathered = gather_range(block, labels, *params.gather, start)
    return QuerySums(sums, gathered)


def silhouette_from_sums(sums: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Silhouettes of query rows from their per-cluster distance sums (K, q)."""
    columns = np.arange(sums.shape[1])
    n_own = counts[codes]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = sums[codes, columns] / (n_own - 1)
        means = sums / counts[:, None]
        means[codes, columns] = np.inf
        b = means.min(axis=0)
        s = (b - a) / np.maximum(a, b)
    s[(n_own == 1) | ~np.isfinite(s)] = 0.0
    return s


class MomentsAndRows(NamedTuple):
    moments: ClusterMoments
    gathered: Gathered


def moments_and_gather_chunk(block, labels, params, start) -> MomentsAndRows:
    """:func:`moments_chunk` and the rows ``[lo, hi)`` of ``params`` in one pass."""
    lo, hi = params
    return MomentsAndRows(
        moments_chunk(block, labels, None, start), gather_range(block, labels, lo, hi, start)
    )


# --- stratified sample ------------------------------------------------------------------


def _uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.random(n)


def sample_chunk(block, labels, params, start) -> TopPerCluster:
    """A uniform random sample of ``limit[c]`` rows of each cluster ``c``, drawn by giving
    every row a uniform key from a stream keyed by its global row and keeping the smallest."""
    classes, limit, seed = params
    codes = encode(labels, classes)
    keys = _random.rows_random(
        seed, (_random.Key.SILHOUETTE_SAMPLE,), start, start + block.shape[0], _uniform
    )
    index = np.arange(block.shape[0], dtype=np.int64) + start
    return TopPerCluster.select(
        limit, keys, index, codes, lambda keep: block[keep].astype(np.float64)
    )
