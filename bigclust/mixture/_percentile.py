"""Exact percentiles of a lazy 1-D Dask array in a few passes, without gathering it.

Used for density thresholds: ``percentile(gm.score_samples(X_zarr), 2)`` gives the 2nd
percentile of the log-likelihoods, equal to ``np.percentile`` of the materialised scores,
while the client only ever receives histograms and at most ``max_gather`` values.

How: one pass finds the range; each further pass histograms the values inside the current
interval into ``bins`` bins and narrows the interval to the bins that hold the two order
statistics ``np.percentile`` interpolates between (ranks ``floor(h)`` and ``ceil(h)``, with
``h = (n - 1) q / 100``); once the interval holds at most ``max_gather`` values a last pass
returns them and the exact answer is read off. Each pass recomputes the input (for
``score_samples`` of a Zarr array: one read of the data), and about
``log(n / max_gather) / log(bins)`` histogram passes are needed: two for a billion rows.
"""

from __future__ import annotations

from typing import NamedTuple

import dask.array as da
import numpy as np

from bigclust.driver import map_reduce

__all__ = ["percentile"]


class _Range(NamedTuple):
    low: float
    high: float
    n_nan: int

    def combine(self, other):
        return _Range(
            min(self.low, other.low), max(self.high, other.high), self.n_nan + other.n_nan
        )


class _Histogram(NamedTuple):
    below: int  # values < edges[0]
    counts: np.ndarray  # np.histogram over edges (last bin closed)


class _Gathered:
    __slots__ = ("below", "values")

    def __init__(self, below, values):
        self.below, self.values = below, values

    def combine(self, other):
        return _Gathered(self.below + other.below, np.concatenate([self.values, other.values]))


def _range_kernel(block, params, start):
    values = block[:, 0]
    nan = np.isnan(values)
    finite = values[~nan]
    if finite.size == 0:
        return _Range(np.inf, -np.inf, int(nan.sum()))
    return _Range(float(finite.min()), float(finite.max()), int(nan.sum()))


def _histogram_kernel(block, edges, start):
    values = block[:, 0]
    counts, _ = np.histogram(values, bins=edges)
    return _Histogram(int((values < edges[0]).sum()), counts.astype(np.int64))


def _gather_kernel(block, interval, start):
    values = block[:, 0]
    low, high = interval
    return _Gathered(int((values < low).sum()), values[(values >= low) & (values <= high)])


def percentile(a, q: float, *, bins: int = 4096, max_gather: int = 65536) -> float:
    """Exact ``np.percentile(a, q)`` (linear interpolation) of a large 1-D array.

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
    n = a.shape[0]
    column = a[:, None].astype(np.float64)
    h = (n - 1) * q / 100.0
    lo_rank, hi_rank = int(np.floor(h)), int(np.ceil(h))

    rng = map_reduce(_range_kernel, column, check_finite=False)
    if rng.n_nan:
        raise ValueError(f"the array holds {rng.n_nan} NaN values; percentile is undefined.")
    low, high = rng.low, rng.high
    count = n  # values in [low, high]
    for _ in range(64):  # each pass narrows the interval by about bins / 2
        if count <= max_gather or not low < high:
            break
        edges = np.linspace(low, high, bins + 1)
        hist = map_reduce(_histogram_kernel, column, params=edges, check_finite=False)
        cumulative = hist.below + np.cumsum(hist.counts)  # values <= right edge (approx.)
        first = int(np.searchsorted(cumulative, lo_rank, side="right"))
        last = int(np.searchsorted(cumulative, hi_rank, side="right"))
        low, high = float(edges[first]), float(edges[min(last + 1, bins)])
        count = int(hist.counts[first : last + 1].sum())
    gathered = map_reduce(_gather_kernel, column, params=(low, high), check_finite=False)
    values = np.sort(gathered.values)
    below = gathered.below
    a_lo = values[lo_rank - below]
    a_hi = values[hi_rank - below]
    return float(a_lo + (h - lo_rank) * (a_hi - a_lo)) if hi_rank != lo_rank else float(a_lo)
