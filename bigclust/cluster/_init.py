"""K-Means initializations over chunked data: k-means||, greedy k-means++, random rows.

Each returns float64 centers of shape (n_clusters, n_features). Randomness comes from the
fit's integer seed through row-keyed streams (:mod:`bigclust._random`), so the same seed gives
the same centers for any chunking, scheduler or worker count.
"""

from __future__ import annotations

import math
import warnings

import dask.array as da
import numpy as np
from sklearn.cluster import KMeans as _SkKMeans
from sklearn.exceptions import ConvergenceWarning

from bigclust import _random
from bigclust.cluster import _kernels as kern
from bigclust.driver import map_reduce

#: Stream keys for driver-side draws.
_KEY_FIRST_CENTER, _KEY_REDUCE, _KEY_RANDOM_ROWS, _KEY_FILL = 21, 22, 23, 24

#: k-means|| rounds when ``init_max_iter`` is None. Bahmani et al. find 5 rounds with
#: l = 2k enough in practice; Spark's default is 2.
DEFAULT_PARALLEL_ROUNDS = 5


def take_rows(X: da.Array, rows: np.ndarray) -> np.ndarray:
    """Rows of X by global index, as float64, reading only the chunks that hold them."""
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    picked = np.asarray(X[rows[order]].compute(), dtype=np.float64)
    out = np.empty_like(picked)
    out[order] = picked
    return out


def weighted_rows(
    n_samples: int, size: int, sample_weight: da.Array | None, rng: np.random.Generator
) -> np.ndarray:
    """``size`` row indices drawn with replacement with probability proportional to weight.

    Reads the weights once, chunk totals first, so the client never holds all of them.
    """
    if sample_weight is None:
        return rng.integers(0, n_samples, size=size)
    totals = np.array(
        da.map_blocks(
            lambda b: np.array([b.sum(dtype=np.float64)]),
            sample_weight,
            chunks=((1,) * sample_weight.numblocks[0],),
            dtype=np.float64,
        ).compute()
    )
    offsets = np.concatenate([[0], np.cumsum(sample_weight.chunks[0])])
    targets = rng.random(size) * totals.sum()
    chunk_ids = np.minimum(
        np.searchsorted(np.cumsum(totals), targets, side="right"), len(totals) - 1
    )
    rows = np.empty(size, np.int64)
    for c in np.unique(chunk_ids):
        weights = np.asarray(sample_weight.blocks[c].compute(), dtype=np.float64)
        mine = chunk_ids == c
        local = targets[mine] - (np.cumsum(totals)[c] - totals[c])
        rows[mine] = offsets[c] + np.minimum(
            np.searchsorted(np.cumsum(weights), local, side="right"), len(weights) - 1
        )
    return rows


def random_init(X, n_clusters, sample_weight, seed) -> np.ndarray:
    """``n_clusters`` distinct rows, uniformly (or by weight, as scikit-learn does)."""
    rng = _random.generator(seed, _KEY_RANDOM_ROWS)
    n = X.shape[0]
    if sample_weight is None:
        rows = rng.choice(n, n_clusters, replace=False)
    else:
        rows = _distinct_weighted_rows(n, n_clusters, sample_weight, rng)
    return take_rows(X, rows)


def _distinct_weighted_rows(n, size, sample_weight, rng) -> np.ndarray:
    # Draw with replacement until `size` distinct rows are found; rows of zero weight are
    # never drawn, so fail clearly if too few rows have weight.
    chosen: list[int] = []
    for _ in range(100):
        for row in weighted_rows(n, 2 * size, sample_weight, rng):
            if row not in chosen:
                chosen.append(int(row))
            if len(chosen) == size:
                return np.array(chosen)
    raise ValueError(f"fewer than n_clusters={size} samples have a positive sample_weight.")


def kmeans_parallel(
    X: da.Array,
    n_clusters: int,
    sample_weight: da.Array | None,
    seed: int,
    *,
    oversampling_factor: float = 2.0,
    n_rounds: int | None = None,
) -> np.ndarray:
    """k-means|| (Bahmani et al., "Scalable K-Means++", VLDB 2012).

    One uniformly drawn first center; ``n_rounds`` passes, each sampling every row
    independently with probability ``min(1, l w d^2 / phi)`` (l = ``oversampling_factor`` x
    ``n_clusters``); one more pass weighting each candidate by the sample weight closest to it;
    then weighted k-means++ and weighted Lloyd over the candidates on the client.
    Cost: ``n_rounds + 1`` passes over the data plus reading one chunk.
    """
    rounds = DEFAULT_PARALLEL_ROUNDS if n_rounds is None else int(n_rounds)
    aligned = () if sample_weight is None else (sample_weight,)
    first = weighted_rows(X.shape[0], 1, sample_weight, _random.generator(seed, _KEY_FIRST_CENTER))
    candidates = take_rows(X, first)
    oversampling = oversampling_factor * n_clusters
    for r in range(rounds):
        sampled = map_reduce(
            kern.parallel_round_chunk,
            X,
            *aligned,
            params=kern.ParallelRoundParams(candidates, oversampling, seed, r),
        )
        if sampled.cost == 0:  # every row sits on a candidate
            break
        order = np.argsort(sampled.rows)
        candidates = np.vstack([candidates, sampled.points[order]])
    weights = map_reduce(
        kern.nearest_weights_chunk, X, *aligned, params=candidates, check_finite=False
    )
    candidates, weights = candidates[weights > 0], weights[weights > 0]
    if len(candidates) < n_clusters:
        extra = random_init(
            X, n_clusters, sample_weight, _random.generator(seed, _KEY_FILL).integers(2**62)
        )
        return _warn_if_few_distinct(extra, n_clusters)
    return reduce_candidates(candidates, weights, n_clusters, seed)


#: Restarts of the client-side reduction. Candidates cover every cluster, but one weighted
#: k-means++ pass over them can still put two centers in one cluster and none in another
#: (measured: 4 of 10 restarts on 64 blobs); restarts cost milliseconds on ~l x rounds points,
#: and the weighted inertia of the candidates picks the good one.
REDUCE_RESTARTS = 10


def reduce_candidates(candidates, weights, n_clusters, seed) -> np.ndarray:
    """Weighted k-means++ then weighted Lloyd over the candidates, on the client; the best of
    ``REDUCE_RESTARTS`` by weighted inertia."""
    if len(candidates) == n_clusters:
        return candidates
    state = int(_random.generator(seed, _KEY_REDUCE).integers(2**31 - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lloyd = _SkKMeans(n_clusters, init="k-means++", n_init=REDUCE_RESTARTS, random_state=state)
        lloyd.fit(candidates, sample_weight=weights)
    return lloyd.cluster_centers_.astype(np.float64)


def kmeans_plusplus_greedy(
    X: da.Array,
    n_clusters: int,
    sample_weight: da.Array | None,
    seed: int,
    n_local_trials: int | None = None,
    *,
    return_rows: bool = False,
):
    """Greedy k-means++ as in scikit-learn: each new center is the best of
    ``2 + log(k)`` candidates drawn proportionally to ``w d^2``.

    Cost: ``n_clusters`` passes over the data (one per center), each computing distances to
    the centers so far: prefer k-means|| for large ``n_clusters``.

    Returns the centers, float64 of shape (n_clusters, n_features), and with
    ``return_rows`` also the global row index of each (GaussianMixture's "k-means++" init
    starts from those rows).
    """
    trials = 2 + int(math.log(n_clusters)) if n_local_trials is None else n_local_trials
    aligned = () if sample_weight is None else (sample_weight,)
    rows = weighted_rows(X.shape[0], 1, sample_weight, _random.generator(seed, _KEY_FIRST_CENTER))
    centers = take_rows(X, rows)
    # A duplicate "trial" for the first pass: it changes no distance.
    pending, pending_rows = centers[:1], rows[:1]
    for step in range(n_clusters):
        stats = map_reduce(
            kern.plusplus_chunk,
            X,
            *aligned,
            params=kern.PlusPlusParams(centers, pending, trials, seed, step),
        )
        best = int(np.argmin(stats.potential))
        if step > 0:
            centers = np.vstack([centers, pending[best]])
            rows = np.append(rows, pending_rows[best])
        if len(centers) == n_clusters:
            break
        pending, pending_rows = stats.points[best], stats.rows[best]
        missing = pending_rows < 0
        if missing.any():  # fewer distinct points than clusters: no mass left to sample
            fill = _random.generator(seed, _KEY_FILL, step).integers(0, X.shape[0], missing.sum())
            pending[missing], pending_rows[missing] = take_rows(X, fill), fill
    return (centers, rows.astype(np.int64)) if return_rows else centers


def _warn_if_few_distinct(centers, n_clusters):
    distinct = len(np.unique(centers, axis=0))
    if distinct < n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({distinct}) found smaller than "
            f"n_clusters ({n_clusters}). Possibly due to duplicate points in X.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return centers


#: The named initializations, for ``init=`` and its error message.
INITS = ("k-means||", "k-means++", "random")
