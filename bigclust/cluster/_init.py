"""The initialization registry: k-means||, greedy k-means++ and random rows, for every model.

:data:`INITS` maps each ``init`` name to its strategy; :func:`initial_centers` resolves an
estimator's ``init`` (a name, an array or a callable) to float64 centers of shape
(n_clusters, n_features). ``KMeans`` runs them on the whole data, ``MiniBatchKMeans`` on an
in-memory sample, the mixtures' ``init_params="k-means++"`` takes the rows greedy
k-means++ picks. Every strategy runs through the driver (:func:`bigclust.driver.map_reduce`
accepts a Dask array or an in-memory sample, which it reduces in this process) and draws
from row-keyed streams (:mod:`bigclust._random`), so the same seed gives the same centers for
any chunking, scheduler or worker count.
"""

from __future__ import annotations

import math
import uuid
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from bigclust import _chunk_state, _random
from bigclust._progress import Progress
from bigclust._random import Key
from bigclust.cluster import _kernels as kern
from bigclust.cluster._reduce import reduce_candidates
from bigclust.driver import chunk_totals, map_reduce, read_block, take_rows

__all__ = ["INITS", "Seeding", "initial_centers"]

#: k-means|| rounds when ``init_max_iter`` is None. Bahmani et al. find 5 rounds with
#: l = 2k enough in practice; Spark's default is 2.
DEFAULT_PARALLEL_ROUNDS = 5


class Seeding(NamedTuple):
    """Initial centers, and the global rows they were taken from when they are rows."""

    centers: np.ndarray
    rows: np.ndarray | None = None


def _rows_of(X, rows) -> np.ndarray:
    if isinstance(X, np.ndarray):
        return np.asarray(X[np.asarray(rows, dtype=np.int64)], dtype=np.float64)
    return take_rows(X, rows)


def weighted_rows(n_samples: int, size: int, sample_weight, rng: np.random.Generator) -> np.ndarray:
    """``size`` row indices drawn with replacement with probability proportional to weight.

    Reads the weights once, chunk totals first, so the client never holds all of them.
    """
    if sample_weight is None:
        return rng.integers(0, n_samples, size=size)
    if isinstance(sample_weight, np.ndarray):
        cumulative = np.cumsum(sample_weight, dtype=np.float64)
        targets = rng.random(size) * cumulative[-1]
        return np.minimum(np.searchsorted(cumulative, targets, side="right"), n_samples - 1)
    totals = chunk_totals(sample_weight)
    offsets = np.concatenate([[0], np.cumsum(sample_weight.chunks[0])])
    targets = rng.random(size) * totals.sum()
    chunk_ids = np.minimum(
        np.searchsorted(np.cumsum(totals), targets, side="right"), len(totals) - 1
    )
    rows = np.empty(size, np.int64)
    for c in np.unique(chunk_ids):
        weights = np.asarray(read_block(sample_weight, int(c)), dtype=np.float64)
        mine = chunk_ids == c
        local = targets[mine] - (np.cumsum(totals)[c] - totals[c])
        rows[mine] = offsets[c] + np.minimum(
            np.searchsorted(np.cumsum(weights), local, side="right"), len(weights) - 1
        )
    return rows


def random_init(X, n_clusters, sample_weight, seed, **_) -> Seeding:
    """``n_clusters`` distinct rows, uniformly (or by weight, as scikit-learn does)."""
    rng = _random.generator(seed, Key.RANDOM_ROWS)
    n = X.shape[0]
    if sample_weight is None:
        rows = rng.choice(n, n_clusters, replace=False)
    else:
        rows = _distinct_weighted_rows(n, n_clusters, sample_weight, rng)
    return Seeding(_rows_of(X, rows), np.asarray(rows, dtype=np.int64))


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


#: Rows up to which "k-means||" seeds by greedy k-means++ on the data themselves. k-means||
#: exists to shrink the data to a few candidates in few passes; on small data the reduction
#: of its candidates (weighted k-means++ and Lloyd, ``REDUCE_RESTARTS`` times) costs more than
#: greedy k-means++ over every row (a whole KMeans(8) fit on 1,250 x 2: 90 ms seeded by
#: k-means||, 11 ms by greedy k-means++; KMeans(50, n_init=10) on digits 3.1 s and 1.2 s,
#: benchmarks/bench_small.py). The result is distributed as scikit-learn's, which seeds the
#: same way (over 100 seeds on the notebook's blobs: as often at the best inertia), but one
#: run lands in a local minimum more often than after the reduction's ten restarts: use
#: ``n_init`` as with scikit-learn.
SEED_ON_DATA_ROWS = 10_000


def seeds_on_data(n_samples: int, n_clusters: int, oversampling_factor: float, rounds: int):
    """Whether k-means|| leaves the seeding to greedy k-means++ over the data: when they are
    no more rows than it would sample as candidates, or at most ``SEED_ON_DATA_ROWS``.

    Decided from sizes and parameters alone, so that a fit in this process and one over a
    Dask array of the same data (any chunking) take the same path and the same centers.
    """
    candidates = 1 + rounds * oversampling_factor * n_clusters
    return n_samples <= max(candidates, SEED_ON_DATA_ROWS)


def kmeans_parallel(
    X,
    n_clusters: int,
    sample_weight,
    seed: int,
    *,
    oversampling_factor: float = 2.0,
    n_rounds: int | None = None,
    seed_on_data: bool = True,
    **_,
) -> Seeding:
    """k-means|| (Bahmani et al., "Scalable K-Means++", VLDB 2012).

    One uniformly drawn first center; ``n_rounds`` passes, each sampling every row
    independently with probability ``min(1, l w d^2 / phi)`` (l = ``oversampling_factor`` x
    ``n_clusters``); one more pass weighting each candidate by the sample weight closest to
    it (never 1 each: a candidate in a dense region must count for its rows); then weighted
    k-means++ and weighted Lloyd over the candidates on the client.
    Cost: ``n_rounds + 1`` passes over the data plus reading one chunk.

    With ``seed_on_data``, small data (:func:`seeds_on_data`) are seeded by greedy k-means++
    on the rows themselves instead.
    """
    rounds = DEFAULT_PARALLEL_ROUNDS if n_rounds is None else int(n_rounds)
    if seed_on_data and seeds_on_data(X.shape[0], n_clusters, oversampling_factor, rounds):
        return kmeans_plusplus_greedy(X, n_clusters, sample_weight, seed)
    first = weighted_rows(X.shape[0], 1, sample_weight, _random.generator(seed, Key.FIRST_CENTER))
    # Each chunk keeps its rows' distances to the nearest candidate between the rounds
    # (bigclust._chunk_state), under a key of this seeding's own.
    run = uuid.uuid4().hex
    try:
        candidates = _parallel_rounds(
            X, sample_weight, _rows_of(X, first), oversampling_factor * n_clusters, seed,
            rounds, run,
        )  # fmt: skip
    finally:
        _chunk_state.forget_everywhere(run, on_workers=not isinstance(X, np.ndarray))
    aligned = () if sample_weight is None else (sample_weight,)
    weights = map_reduce(
        kern.nearest_weights_chunk, X, *aligned, params=candidates, check_finite=False
    )
    candidates, weights = candidates[weights > 0], weights[weights > 0]
    if len(candidates) < n_clusters:
        fill_seed = int(_random.generator(seed, Key.FILL).integers(2**62))
        extra = random_init(X, n_clusters, sample_weight, fill_seed).centers
        return Seeding(warn_if_few_distinct(extra, n_clusters, stacklevel=4))
    return Seeding(reduce_candidates(candidates, weights, n_clusters, seed))


def _parallel_rounds(X, sample_weight, candidates, oversampling, seed, rounds, run):
    """The candidates of k-means||'s rounds, from the first center."""
    aligned = () if sample_weight is None else (sample_weight,)
    progress = Progress("k-means||", total=rounds, unit="round", rows=X.shape[0])
    groups, workers = (1,), None
    for r in progress.iterate(range(rounds)):
        sampled = map_reduce(
            kern.parallel_round_chunk,
            X,
            *aligned,
            params=kern.ParallelRoundParams(candidates, oversampling, seed, r, groups, run),
            workers=workers,
        )
        workers = _chunk_state.chunk_workers(X, sampled.where)
        if sampled.cost == 0:  # every row sits on a candidate
            break
        order = np.argsort(sampled.rows)
        candidates = np.vstack([candidates, sampled.points[order]])
        groups = (*groups, len(order))
        progress.pass_done(candidates=len(candidates), cost=sampled.cost)
    return candidates


def kmeans_plusplus_greedy(
    X,
    n_clusters: int,
    sample_weight,
    seed: int,
    n_local_trials: int | None = None,
    **_,
) -> Seeding:
    """Greedy k-means++ as in scikit-learn: each new center is the best of
    ``2 + log(k)`` candidates drawn proportionally to ``w d^2``.

    Cost: ``n_clusters`` passes over the data (one per center), each computing distances to
    its trials and to the newest center (each chunk keeps its rows' distances to the nearest
    center so far, :func:`~bigclust.cluster._kernels.nearest_so_far`): prefer k-means|| for
    large ``n_clusters`` on large data. Returns the centers with the global row of each
    (GaussianMixture's "k-means++" init starts from those rows).
    """
    trials = 2 + int(math.log(n_clusters)) if n_local_trials is None else n_local_trials
    rows = weighted_rows(X.shape[0], 1, sample_weight, _random.generator(seed, Key.FIRST_CENTER))
    centers = _rows_of(X, rows)
    # Each chunk keeps its rows' distances to the nearest chosen center between the steps
    # (bigclust._chunk_state), under a key of this seeding's own.
    run = uuid.uuid4().hex
    try:
        return _plusplus_steps(X, n_clusters, sample_weight, seed, trials, centers, rows, run)
    finally:
        _chunk_state.forget_everywhere(run, on_workers=not isinstance(X, np.ndarray))


def _plusplus_steps(X, n_clusters, sample_weight, seed, trials, centers, rows, run) -> Seeding:
    aligned = () if sample_weight is None else (sample_weight,)
    # A duplicate "trial" for the first pass: it changes no distance.
    pending, pending_rows = centers[:1], rows[:1]
    progress = Progress("k-means++", total=n_clusters, unit="center", rows=X.shape[0])
    workers = None
    for step in progress.iterate(range(n_clusters)):
        stats = map_reduce(
            kern.plusplus_chunk,
            X,
            *aligned,
            params=kern.PlusPlusParams(centers, pending, trials, seed, step, run),
            workers=workers,
        )
        workers = _chunk_state.chunk_workers(X, stats.where)
        best = int(np.argmin(stats.potential))
        if step > 0:
            centers = np.vstack([centers, pending[best]])
            rows = np.append(rows, pending_rows[best])
        progress.pass_done(centers=len(centers), potential=float(stats.potential[best]))
        if len(centers) == n_clusters:
            break
        pending, pending_rows = stats.points[best], stats.rows[best]
        missing = pending_rows < 0
        if missing.any():  # fewer distinct points than clusters: no mass left to sample
            fill = _random.generator(seed, Key.FILL, step).integers(0, X.shape[0], missing.sum())
            pending[missing], pending_rows[missing] = _rows_of(X, fill), fill
    return Seeding(centers, rows.astype(np.int64))


def warn_if_few_distinct(centers, n_clusters, stacklevel=3):
    # Rows compared by their bytes (np.unique(axis=0) costs 0.17 ms for 8 centers); adding
    # +0.0 turns -0.0 into 0.0, the one pair of equal finite floats with different bytes.
    distinct = len({row.tobytes() for row in np.asarray(centers, np.float64) + 0.0})
    if distinct < n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({distinct}) found smaller than "
            f"n_clusters ({n_clusters}). Possibly due to duplicate points in X.",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
    return centers


#: The named initializations: ``strategy(X, n_clusters, sample_weight, seed, **options)``
#: with ``X`` a row-chunked Dask array or an in-memory sample, ``sample_weight`` aligned with
#: it or None. Options: ``oversampling_factor`` and ``n_rounds`` (k-means||).
INITS: dict[str, Callable[..., Seeding]] = {
    "k-means||": kmeans_parallel,
    "k-means++": kmeans_plusplus_greedy,
    "random": random_init,
}


def check_centers(centers, n_clusters: int, n_features: int, what: str) -> np.ndarray:
    """Validate given or returned centers; float64 copy."""
    centers = np.asarray(centers)
    if centers.dtype.kind not in "iuf":
        raise TypeError(f"{what} has dtype {centers.dtype}; expected real numbers.")
    if centers.shape != (n_clusters, n_features):
        raise ValueError(
            f"{what} has shape {centers.shape}; expected (n_clusters={n_clusters}, "
            f"n_features={n_features})."
        )
    if not np.isfinite(centers).all():
        raise ValueError(f"{what} contains NaN or infinity.")
    return centers.astype(np.float64)


def initial_centers(init, X, n_clusters: int, sample_weight, seed: int, **options) -> np.ndarray:
    """Resolve ``init`` (a registry name, a callable or an array) to float64 centers.

    A callable is called as ``init(X, n_clusters, random_state)`` with ``X`` as given here
    (the row-chunked Dask array, or the in-memory sample) and a ``RandomState`` from ``seed``.
    """
    d = X.shape[1]
    if isinstance(init, str):
        return INITS[init](X, n_clusters, sample_weight, seed, **options).centers
    if callable(init):
        centers = init(X, n_clusters, np.random.RandomState(seed % 2**32))
        return check_centers(centers, n_clusters, d, "the centers returned by init")
    return check_centers(init, n_clusters, d, "init")


def is_explicit(init) -> bool:
    """An array of centers: one run is all there is to do."""
    return not isinstance(init, str) and not callable(init)
