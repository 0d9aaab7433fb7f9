"""Silhouette coefficients: exact from per-cluster aggregates (squared Euclidean), exact
blockwise for small data (Euclidean), and a stratified-sample estimate with its standard error
in which every sampled row is scored exactly against all rows."""

from __future__ import annotations

import numbers

import dask.array as da
import numpy as np

from bigclust import _random
from bigclust.driver import map_reduce, map_rows_aligned
from bigclust.metrics import _kernels as kern
from bigclust.metrics._validation import (
    check_data,
    check_labels,
    check_number_of_labels,
    cluster_moments,
)

__all__ = ["silhouette_samples", "silhouette_score"]

METRICS = ("euclidean", "sqeuclidean")

#: Largest data for the exact Euclidean silhouette (O(n^2 d) work, n / MAX_QUERY_ROWS passes);
#: beyond it, pass ``sample_size`` or use ``metric="sqeuclidean"``.
MAX_EXACT_ROWS = 100_000

#: Rows scored against all rows per pass: the kernels' per-cluster sums are
#: (n_clusters x MAX_QUERY_ROWS) per partial result.
MAX_QUERY_ROWS = 8192


def _check_metric(metric) -> str:
    if metric not in METRICS:
        raise ValueError(
            f"metric={metric!r} is not supported; valid: {', '.join(map(repr, METRICS))}."
        )
    return metric


def _squared_params(moments: kern.ClusterMoments) -> kern.SquaredParams:
    return kern.SquaredParams(moments.classes, moments.counts, moments.means, moments.spreads)


def _check_exact_size(n_samples: int) -> None:
    if n_samples > MAX_EXACT_ROWS:
        raise ValueError(
            f"The exact Euclidean silhouette of n_samples={n_samples} rows costs O(n^2) "
            f"distances (limit: {MAX_EXACT_ROWS} rows). Pass sample_size=... to "
            "silhouette_score for an estimate with its standard error (each sampled row "
            'scored against all rows), or use metric="sqeuclidean" (exact for any n).'
        )


def _score_rows(data, labels, moments, rows: kern.Gathered, gather=None):
    """Euclidean silhouettes of ``rows`` against all rows, in ceil(q / MAX_QUERY_ROWS) passes;
    the last pass also brings back the data rows ``gather`` (a range) if asked."""
    shift = moments.counts @ moments.means / data.shape[0]
    codes = kern.encode(rows.labels, moments.classes)
    scores, gathered = [], None
    for lo in range(0, max(1, len(rows.index)), MAX_QUERY_ROWS):
        part = slice(lo, lo + MAX_QUERY_ROWS)
        last = lo + MAX_QUERY_ROWS >= len(rows.index)
        params = kern.QueryParams(
            moments.classes,
            shift,
            rows.rows[part] - shift,
            rows.index[part],
            gather if last else None,
        )
        result = map_reduce(kern.query_distance_chunk, data, labels, params=params)
        scores.append(kern.silhouette_from_sums(result.sums, codes[part], moments.counts))
        gathered = result.gathered
    return np.concatenate(scores), gathered


def _exact_euclidean(data, labels):
    """Exact Euclidean silhouettes of all rows: blocks of rows scored against all rows, each
    pass bringing back the next block; never more than MAX_QUERY_ROWS x chunk in memory."""
    n = data.shape[0]
    _check_exact_size(n)
    first = map_reduce(kern.moments_and_gather_chunk, data, labels, params=(0, MAX_QUERY_ROWS))
    moments = first.moments
    check_number_of_labels(len(moments.classes), n)
    block, scores = first.gathered.sorted(), []
    for lo in range(0, n, MAX_QUERY_ROWS):
        hi = lo + MAX_QUERY_ROWS
        following = (hi, hi + MAX_QUERY_ROWS) if hi < n else None
        part, gathered = _score_rows(data, labels, moments, block, following)
        scores.append(part)
        if following is not None:
            block = gathered.sorted()
    return np.concatenate(scores)


def allocate(sizes: np.ndarray, total: int) -> np.ndarray:
    """Rows to sample from each cluster: ``min(size, max(2, total // (2 k)))`` each first (so
    that small clusters are represented), the rest in proportion to the cluster sizes.

    Sums to ``min(total, n)``, or more when ``total < 2 k`` (two rows per cluster at least).
    """
    sizes = np.asarray(sizes, np.int64)
    total = int(min(total, sizes.sum()))
    taken = np.minimum(sizes, max(2, total // (2 * len(sizes))))
    remaining = total - int(taken.sum())
    while remaining > 0:
        room = sizes - taken
        open_ = np.flatnonzero(room > 0)
        share = np.floor(remaining * sizes[open_] / sizes[open_].sum()).astype(np.int64)
        share = np.minimum(share, room[open_])
        if share.sum() == 0:  # the last few rows: one each to the largest open clusters
            order = open_[np.argsort(-sizes[open_], kind="stable")][:remaining]
            taken[order] += 1
            break
        taken[open_] += share
        remaining -= int(share.sum())
    return taken


def stratified_mean(values: np.ndarray, strata: np.ndarray, sizes: np.ndarray):
    """Mean over all rows estimated from a stratified simple random sample, and its standard
    error: ``sum_h W_h ybar_h`` and ``sqrt(sum_h W_h^2 (1 - n_h / N_h) s_h^2 / n_h)``, with
    ``W_h = N_h / N`` and ``s_h^2`` the sample variance of stratum ``h`` (Cochran 1977, 5.3)."""
    sizes = np.asarray(sizes, np.float64)
    n_h = np.bincount(strata, minlength=len(sizes)).astype(np.float64)
    sums = np.bincount(strata, weights=values, minlength=len(sizes))
    means = np.divide(sums, n_h, out=np.zeros_like(sums), where=n_h > 0)
    deviations = values - means[strata]
    squares = np.bincount(strata, weights=deviations**2, minlength=len(sizes))
    variances = np.divide(squares, n_h - 1, out=np.zeros_like(squares), where=n_h > 1)
    weights = sizes / sizes.sum()
    estimate = float(weights @ means)
    fpc = 1.0 - np.divide(n_h, sizes, out=np.ones_like(n_h), where=sizes > 0)
    terms = np.divide(weights**2 * fpc * variances, n_h, out=np.zeros_like(n_h), where=n_h > 0)
    return estimate, float(np.sqrt(max(terms.sum(), 0.0)))


def _sampled(data, labels, metric, sample_size, random_state):
    moments = cluster_moments(data, labels)
    limit = allocate(moments.counts, sample_size)
    seed = _random.seed_from(random_state)
    sample = map_reduce(kern.sample_chunk, data, labels, params=(moments.classes, limit, seed))
    order = np.argsort(sample.index, kind="stable")
    codes, index, rows = sample.cluster[order], sample.index[order], sample.rows[order]
    if metric == "sqeuclidean":
        values = kern.silhouette_from_means(rows, codes, _squared_params(moments))
    else:
        chosen = kern.Gathered(index, rows, moments.classes[codes])
        values, _ = _score_rows(data, labels, moments, chosen)
    return stratified_mean(values, codes, moments.counts)


def silhouette_score(
    X,
    labels,
    *,
    metric: str = "euclidean",
    sample_size: int | None = None,
    random_state=None,
    return_std: bool = False,
):
    """Mean silhouette coefficient over all rows: exact, or estimated from a stratified
    sample in which every sampled row is scored exactly against all rows.

    The silhouette of a row is ``(b - a) / max(a, b)``, with ``a`` its mean distance to the
    other rows of its cluster and ``b`` its mean distance to the rows of the nearest other
    cluster; 0 for a row alone in its cluster.

    - ``metric="sqeuclidean"``: exact for any number of rows, in two passes and O(n k) work.
      The mean squared distance from a row ``x`` to cluster C is
      ``|x - m_C|^2 + spread_C / n_C`` (``spread_C`` the sum of squared distances to the
      mean ``m_C``), so a first pass computes each cluster's count, mean and spread and a
      second pass scores every row.
    - ``metric="euclidean"`` (scikit-learn's default): exact over all rows up to
      ``MAX_EXACT_ROWS`` rows (100,000), blockwise (blocks of rows against all rows, one pass
      per block, never an n x n matrix); for more rows pass ``sample_size``.
    - ``sample_size``: an estimate from ``sample_size`` rows. Unlike scikit-learn's
      ``sample_size``, which scores the sample against itself (a biased answer), each
      sampled row's ``a`` and ``b`` are exact, computed against all rows in one pass. The
      sample is stratified by cluster: each cluster gives ``min(N_h, max(2, sample_size //
      (2 k)))`` rows, so that small clusters are represented, and the rest of the sample is
      allocated in proportion to cluster sizes. The estimate ``sum_h (N_h / N) mean_h`` is
      unbiased for the mean over all rows; its standard error is
      ``sqrt(sum_h (N_h / N)^2 (1 - n_h / N_h) s_h^2 / n_h)`` (stratified simple random
      sampling, ``s_h^2`` the sample variance in cluster ``h``). Three passes: cluster sizes,
      the sample, the scores.

    Parameters
    ----------
    X : array-like, np.memmap, path, zarr.Array or dask.array.Array of shape \
(n_samples, n_features)
        The data (see :func:`bigclust.as_dask_array`).
    labels : ndarray or dask.array.Array of shape (n_samples,)
        Cluster label of each row; lazy labels (e.g. ``KMeans.predict`` of a Zarr array) are
        computed with each pass.
    metric : {"euclidean", "sqeuclidean"}, default="euclidean"
        Distance between rows.
    sample_size : int, default=None
        Rows in the stratified sample; ``None`` computes the exact score.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds the sample (keyed by global row, so any chunking gives the same sample).
    return_std : bool, default=False
        Also return the standard error of the score (0.0 when exact).

    Returns
    -------
    score : float
        Mean silhouette, between -1 and 1 (higher is better).
    std_error : float
        Only with ``return_std=True``.

    Raises
    ------
    ValueError
        An unsupported metric; labels not aligned with ``X``; fewer than 2 or more than
        ``n_samples - 1`` distinct labels; the exact Euclidean score of more than
        ``MAX_EXACT_ROWS`` rows.

    Examples
    --------
    >>> import numpy as np
    >>> from bigclust.metrics import silhouette_score
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> round(silhouette_score(X, [0, 0, 1, 1]), 4)
    0.8997
    """
    metric = _check_metric(metric)
    if sample_size is not None and (
        not isinstance(sample_size, numbers.Integral) or isinstance(sample_size, bool)
    ):
        raise TypeError(f"sample_size={sample_size!r} should be an int or None.")
    if sample_size is not None and sample_size < 1:
        raise ValueError(f"sample_size={sample_size} should be >= 1.")
    _, data = check_data(X)
    labels = check_labels(labels, data)
    if sample_size is not None:
        score, std = _sampled(data, labels, metric, int(sample_size), random_state)
    elif metric == "sqeuclidean":
        moments = cluster_moments(data, labels)
        total = map_reduce(
            kern.squared_silhouette_sum, data, labels, params=_squared_params(moments)
        )
        score, std = total / data.shape[0], 0.0
    else:
        score, std = float(np.mean(_exact_euclidean(data, labels))), 0.0
    return (score, std) if return_std else score


def silhouette_samples(X, labels, *, metric: str = "euclidean"):
    """Silhouette coefficient of every row, exact.

    See :func:`silhouette_score` for the algorithms: ``metric="sqeuclidean"`` works on any
    number of rows (the scores of a Zarr or Dask input are a lazy Dask array, one more read
    of the data when computed); ``metric="euclidean"`` on up to ``MAX_EXACT_ROWS`` rows (its
    scores are computed at once, then wrapped as a Dask array for Dask/Zarr input).

    Parameters
    ----------
    X : array-like, np.memmap, path, zarr.Array or dask.array.Array of shape \
(n_samples, n_features)
        The data (see :func:`bigclust.as_dask_array`).
    labels : ndarray or dask.array.Array of shape (n_samples,)
        Cluster label of each row.
    metric : {"euclidean", "sqeuclidean"}, default="euclidean"
        Distance between rows.

    Returns
    -------
    ndarray or dask.array.Array of shape (n_samples,)
        NumPy for in-memory input, lazy Dask for Dask/Zarr input. Equal to
        ``sklearn.metrics.silhouette_samples``.

    Raises
    ------
    ValueError
        As :func:`silhouette_score`.

    Examples
    --------
    >>> import numpy as np
    >>> from bigclust.metrics import silhouette_samples
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> silhouette_samples(X, [0, 0, 1, 1]).round(4)
    array([0.9048, 0.8947, 0.8947, 0.9048])
    """
    metric = _check_metric(metric)
    inp, data = check_data(X)
    labels = check_labels(labels, data)
    if metric == "euclidean":
        values = _exact_euclidean(data, labels)
        # All scores are known at once: a lazy input gets them as a Dask array all the same.
        return values if inp.numpy_out else da.from_array(values, chunks=(inp.data.chunks[0],))
    moments = cluster_moments(data, labels)
    return map_rows_aligned(
        kern.squared_silhouette_rows,
        data,
        labels,
        params=_squared_params(moments),
        dtype=np.float64,
        numpy_out=inp.numpy_out,
    )
