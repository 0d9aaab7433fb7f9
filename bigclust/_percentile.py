"""Exact percentiles of lazy values in a few passes, without gathering them; one per group.

:func:`percentile` gives ``np.percentile`` of a lazy 1-D array, e.g. the 2nd percentile of
``GaussianMixture.score_samples`` of a Zarr array as a density threshold.
:func:`grouped_percentile` gives one percentile per group of values computed from the rows
of ``X`` by a kernel, e.g. the 20th percentile of each cluster's distances to its center
(:func:`bigclust.cluster.propagate_labels`). The client only ever receives per-group
histograms and at most about ``max_gather`` values.

How: one pass finds each group's count and range; each further pass histograms the values
inside each group's current interval into ``bins`` bins and narrows the interval to the bins
that hold the two order statistics ``np.percentile`` interpolates between (ranks
``floor(h)`` and ``floor(h) + 1``, with ``h = (n - 1) q / 100``); a group whose interval
shrinks to one value is resolved; once the intervals hold at most ``max_gather`` values in
all, a last pass returns them and the exact answers are read off. Each pass recomputes the
values (for ``score_samples`` of a Zarr array: one read of the data), and about
``log(n / max_gather) / log(bins)`` histogram passes are needed: two for a billion rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import dask.array as da
import numpy as np

from bigclust.driver import map_reduce

__all__ = ["grouped_percentile", "percentile"]

#: Histogram bins of all groups together in one pass (bins per group shrink with many
#: groups, so a partial result stays at a few MiB).
BIN_BUDGET = 1 << 18


class _Range(NamedTuple):
    count: np.ndarray  # (G,) non-NaN values per group
    low: np.ndarray  # (G,) smallest value (0 where count is 0)
    high: np.ndarray  # (G,) largest value (0 where count is 0)
    n_nan: int
    # NaN when some value is: the driver then names the first non-finite row of the data.
    nan_flag: float

    def combine(self, other: _Range) -> _Range:
        a, b = self.count > 0, other.count > 0
        low = np.where(a & b, np.minimum(self.low, other.low), np.where(a, self.low, other.low))
        high = np.where(
            a & b, np.maximum(self.high, other.high), np.where(a, self.high, other.high)
        )
        return _Range(
            self.count + other.count,
            low,
            high,
            self.n_nan + other.n_nan,
            self.nan_flag + other.nan_flag,
        )


class _Histogram(NamedTuple):
    below: np.ndarray  # (G,) values < the group's low edge
    counts: np.ndarray  # (G, bins): bins [e_j, e_j+1), the last one closed


class _Gathered:
    """Values inside each group's final interval, and the count below it."""

    __slots__ = ("below", "groups", "values")

    def __init__(self, below, values, groups):
        self.below, self.values, self.groups = below, values, groups

    def combine(self, other: _Gathered) -> _Gathered:
        return _Gathered(
            self.below + other.below,
            np.concatenate([self.values, other.values]),
            np.concatenate([self.groups, other.groups]),
        )


def _edges(low: np.ndarray, high: np.ndarray, bins: int) -> np.ndarray:
    """Bin edges per group, shape (G, bins + 1): computed by the client and the kernels alike,
    so both count against identical numbers; the last edge is the group's high exactly."""
    steps = np.arange(bins + 1) / bins
    edges = low[:, None] + (high - low)[:, None] * steps
    edges[:, -1] = high
    return np.clip(edges, low[:, None], high[:, None])


def _values(block, rest):
    """The kernel's values and groups for one chunk, as float64 and intp."""
    *aligned, (values_kernel, params, pass_params), _start = rest
    values, groups = values_kernel(block, *aligned, params)
    return np.asarray(values, np.float64), np.asarray(groups, np.intp), pass_params


def _range_kernel(block, *rest) -> _Range:
    values, groups, n_groups = _values(block, rest)
    nan = np.isnan(values)
    values, groups = values[~nan], groups[~nan]
    count = np.bincount(groups, minlength=n_groups)
    low = np.full(n_groups, np.inf)
    high = np.full(n_groups, -np.inf)
    np.minimum.at(low, groups, values)
    np.maximum.at(high, groups, values)
    empty = count == 0
    low[empty] = high[empty] = 0.0
    n_nan = int(nan.sum())
    return _Range(count, low, high, n_nan, np.nan if n_nan else 0.0)


def _bin_of(values, groups, edges):
    """np.histogram's bin of each value (every value lies within its group's edges)."""
    bins = edges.shape[1] - 1
    low, high = edges[groups, 0], edges[groups, -1]
    width = high - low
    with np.errstate(invalid="ignore", divide="ignore"):
        guess = np.floor((values - low) / width * bins)
    index = np.clip(np.nan_to_num(guess), 0, bins - 1).astype(np.intp)
    # The guess can be off by a bin through rounding: move it until edges agree exactly.
    for _ in range(bins):
        down = values < edges[groups, index]
        up = (values >= edges[groups, index + 1]) & (index < bins - 1)
        if not (down.any() or up.any()):
            break
        index = index - down + up
    return index


def _histogram_kernel(block, *rest) -> _Histogram:
    values, groups, (low, high, active, bins) = _values(block, rest)
    n_groups = len(low)
    keep = active[groups]
    values, groups = values[keep], groups[keep]
    below = np.bincount(groups[values < low[groups]], minlength=n_groups)
    inside = (values >= low[groups]) & (values <= high[groups])
    values, groups = values[inside], groups[inside]
    index = _bin_of(values, groups, _edges(low, high, bins))
    counts = np.bincount(groups * bins + index, minlength=n_groups * bins)
    return _Histogram(below, counts.reshape(n_groups, bins))


def _gather_kernel(block, *rest) -> _Gathered:
    values, groups, (low, high, active) = _values(block, rest)
    keep = active[groups]
    values, groups = values[keep], groups[keep]
    below = np.bincount(groups[values < low[groups]], minlength=len(low))
    inside = (values >= low[groups]) & (values <= high[groups])
    return _Gathered(below, values[inside], groups[inside])


def _ranks(n: np.ndarray, q: float):
    """np.percentile's (linear) virtual index, and the two ranks it interpolates between."""
    virtual = (n - 1) * np.true_divide(q, 100)
    at_end = virtual >= n - 1
    lo = np.where(at_end, n - 1, np.floor(virtual)).astype(np.int64)
    hi = np.where(at_end, n - 1, lo + 1)
    return virtual, np.maximum(lo, 0), np.maximum(hi, 0)


def _lerp(a, b, t):
    """np.percentile's interpolation, operation for operation (so results are equal)."""
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def grouped_percentile(
    values_kernel: Callable,
    X: da.Array,
    *aligned: da.Array,
    q: float,
    n_groups: int,
    params=None,
    bins: int = 4096,
    max_gather: int = 65536,
    check_finite: bool = False,
    what: str = "X",
) -> np.ndarray:
    """Exact ``np.percentile(values[groups == g], q)`` for every group ``g``.

    Parameters
    ----------
    values_kernel : callable
        ``values_kernel(block, *aligned_blocks, params) -> (values, groups)``: the values of
        one chunk's rows and their groups in ``[0, n_groups)``. Module-level (picklable).
    X : dask.array.Array of shape (n_samples, n_features)
        Chunked along rows only; read once per pass.
    *aligned : dask.array.Array
        Arrays aligned with the rows of ``X``, handed to ``values_kernel``.
    q : float
        Percentile in [0, 100].
    n_groups : int
        Number of groups.
    params : object, optional
        Passed to ``values_kernel``.
    bins : int, default=4096
        Histogram bins per group and pass (fewer with many groups).
    max_gather : int, default=65536
        About the most values brought to the client, in the last pass.
    check_finite : bool, default=False
        Let the driver name the first non-finite row of ``X`` when a value is NaN.
    what : str, default="X"
        Name of the data in error messages.

    Returns
    -------
    ndarray of shape (n_groups,)
        NaN for an empty group.

    Raises
    ------
    ValueError
        A value is NaN.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"q={q} should be in [0, 100].")
    if bins < 2:
        raise ValueError(f"bins={bins} should be >= 2.")

    def run(kernel, pass_params):
        return map_reduce(
            kernel,
            X,
            *aligned,
            params=(values_kernel, params, pass_params),
            check_finite=check_finite,
            what=what,
        )

    rng = run(_range_kernel, n_groups)
    if rng.n_nan:
        raise ValueError(f"the values hold {rng.n_nan} NaN; percentile is undefined.")
    n = rng.count
    virtual, lo_rank, hi_rank = _ranks(n, q)
    low, high = rng.low.astype(np.float64), rng.high.astype(np.float64)
    count = n.copy()  # values in [low, high], about
    bins = int(max(2, min(bins, BIN_BUDGET // max(1, n_groups))))
    active = (n > 0) & (low < high)
    for _ in range(64):  # each pass narrows an interval by about bins / 2
        if count[active].sum() <= max_gather:
            break
        hist = run(_histogram_kernel, (low, high, active, bins))
        edges = _edges(low, high, bins)
        cumulative = hist.below[:, None] + np.cumsum(hist.counts, axis=1)
        first = (cumulative <= lo_rank[:, None]).sum(axis=1)
        last = (cumulative <= hi_rank[:, None]).sum(axis=1)
        rows = np.arange(n_groups)
        new_low = np.where(active, edges[rows, np.minimum(first, bins)], low)
        new_high = np.where(active, edges[rows, np.minimum(last + 1, bins)], high)
        inside = np.take_along_axis(cumulative, np.minimum(last, bins - 1)[:, None], 1)[:, 0]
        before = np.where(
            first > 0,
            np.take_along_axis(cumulative, np.maximum(first - 1, 0)[:, None], 1)[:, 0],
            hist.below,
        )
        stuck = active & (new_low == low) & (new_high == high)
        low, high = new_low, new_high
        count = np.where(active, inside - before, count)
        active = active & (low < high)
        if stuck.all() or not active.any():
            break
    result = np.where(n > 0, low, np.nan)  # a resolved group: one value, its answer
    if active.any():
        gathered = run(_gather_kernel, (low, high, active))
        order = np.lexsort((gathered.values, gathered.groups))
        values, groups = gathered.values[order], gathered.groups[order]
        starts = np.searchsorted(groups, np.arange(n_groups))
        for g in np.flatnonzero(active):
            a = values[starts[g] + lo_rank[g] - gathered.below[g]]
            b = values[starts[g] + hi_rank[g] - gathered.below[g]]
            result[g] = _lerp(a, b, virtual[g] - np.floor(virtual[g]))
    return result


def _column(block, params):
    return block[:, 0], np.zeros(block.shape[0], np.intp)


def percentile(a, q: float, *, bins: int = 4096, max_gather: int = 65536) -> float:
    """Exact ``np.percentile(a, q)`` (linear interpolation) of a large 1-D array.

    Available as ``bigclust.percentile``. Use it for thresholds on lazy per-row outputs,
    e.g. the density threshold ``bigclust.percentile(gm.score_samples(X_zarr), 2)``.

    Parameters
    ----------
    a : dask.array.Array or ndarray of shape (n,)
        Values, e.g. the lazy result of ``GaussianMixture.score_samples`` on a Zarr array.
        A NumPy array is passed to ``np.percentile``.
    q : float
        Percentile in [0, 100].
    bins : int, default=4096
        Histogram bins per refinement pass.
    max_gather : int, default=65536
        Most values brought to the client, in the last pass.

    Returns
    -------
    float
        Equal to ``np.percentile(np.asarray(a), q)``.

    Raises
    ------
    ValueError
        ``a`` is empty, not 1-D, or holds NaN.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> x = da.from_array(np.arange(1000.0)[::-1], chunks=100)
    >>> bool(percentile(x, 2) == np.percentile(np.arange(1000.0), 2))
    True
    """
    if not 0 <= q <= 100:
        raise ValueError(f"q={q} should be in [0, 100].")
    if not isinstance(a, da.Array):
        return float(np.percentile(np.asarray(a), q))
    if a.ndim != 1 or a.shape[0] == 0:
        raise ValueError(f"percentile needs a non-empty 1-D array; got shape {a.shape}.")
    column = a[:, None].astype(np.float64)
    (value,) = grouped_percentile(
        _column, column, q=q, n_groups=1, bins=bins, max_gather=max_gather
    )
    return float(value)
