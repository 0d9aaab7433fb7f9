"""k-means||'s last step: the weighted candidates reduced to ``n_clusters`` centers.

Weighted greedy k-means++ then weighted Lloyd over the candidates, as scikit-learn's
``KMeans(init="k-means++", n_init=REDUCE_RESTARTS)`` does, but with every restart advanced
in the same NumPy calls (arrays with a leading restart axis). The candidates are few
(about ``1 + rounds x oversampling_factor x n_clusters``), so scikit-learn's fixed cost per
call dominated there: a reduction of 81 candidates to 8 centers took 20-35 ms through
scikit-learn, most of a small MiniBatchKMeans fit, and takes 3-4 ms here.

Everything runs on one BLAS thread (:func:`~bigclust._blas.single_blas_thread`) and the
grouping of restarts depends on sizes alone, so the same candidates and seed give the same
centers on every run and machine with the same BLAS.
"""

from __future__ import annotations

import math

import numpy as np

from bigclust import _random
from bigclust._blas import single_blas_thread
from bigclust._random import Key

#: Restarts of the reduction. Candidates cover every cluster, but one weighted k-means++
#: pass over them can still put two centers in one cluster and none in another (measured:
#: 4 of 10 restarts on 64 blobs); the weighted inertia of the candidates picks the good one.
REDUCE_RESTARTS = 10

#: Lloyd iterations at most, and the tolerance on the centers' squared shift relative to the
#: candidates' mean per-feature variance (scikit-learn's KMeans defaults).
MAX_ITER, TOL = 300, 1e-4

#: Elements (restarts x candidates x clusters) of the arrays one group of restarts holds at a
#: time: all ten restarts of a reduction to 64 centers in one group, fewer for large k.
GROUP_ELEMENTS = 2**22


def reduce_candidates(candidates, weights, n_clusters: int, seed: int) -> np.ndarray:
    """``n_clusters`` float64 centers from the weighted candidates: the best of
    :data:`REDUCE_RESTARTS` runs of weighted greedy k-means++ then weighted Lloyd, by the
    weighted inertia of the candidates.

    Parameters
    ----------
    candidates : ndarray of shape (n_candidates, n_features)
        Distinct points; at least ``n_clusters`` of them.
    weights : ndarray of shape (n_candidates,)
        Positive weight of each candidate.
    n_clusters : int
        Centers wanted.
    seed : int
        Seeds the k-means++ draws.
    """
    X = np.array(candidates, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if len(X) == n_clusters:
        return X
    # Centered, as scikit-learn centers its data: far from the origin, ||x||^2 - 2 x.c + ||c||^2
    # loses the digits of the distances.
    mean = X.mean(axis=0)
    X -= mean
    rng = _random.generator(seed, Key.REDUCE)
    tol = float(np.mean(np.var(X, axis=0))) * TOL
    group = max(1, min(REDUCE_RESTARTS, GROUP_ELEMENTS // (len(X) * n_clusters)))
    best = best_labels = best_inertia = None
    with single_blas_thread():
        x_sq = np.einsum("ij,ij->i", X, X)
        for start in range(0, REDUCE_RESTARTS, group):
            restarts = min(group, REDUCE_RESTARTS - start)
            seeds = _plusplus(X, x_sq, w, n_clusters, restarts, rng)
            centers, labels, inertia = _lloyd(X, x_sq, w, seeds, tol)
            for r in range(restarts):
                # As scikit-learn: a later restart that found the same clustering (in another
                # order, its inertia a rounding away) does not replace the first, so that
                # data a rounding apart get their centers in the same order.
                if best is None or (
                    inertia[r] < best_inertia and not _same_clustering(labels[r], best_labels)
                ):
                    best, best_labels, best_inertia = centers[r], labels[r], inertia[r]
    return best + mean


def _sq_distances(points_sq, points, x_sq, X):
    """Squared distances from every point of a stack to every candidate, (..., n)."""
    d = (points.reshape(-1, X.shape[1]) @ X.T).reshape(*points.shape[:-1], -1)
    d *= -2.0
    d += points_sq[..., None]
    d += x_sq
    return np.maximum(d, 0.0, out=d)


def _plusplus(X, x_sq, w, n_clusters, restarts, rng) -> np.ndarray:
    """Weighted greedy k-means++ (scikit-learn's ``_kmeans_plusplus``) for ``restarts`` runs
    at once: each new center is the best by weighted potential of ``2 + log(k)`` candidates
    drawn proportionally to ``w d^2``. Returns (restarts, n_clusters, n_features)."""
    n = len(X)
    trials = 2 + int(math.log(n_clusters))
    each = np.arange(restarts)
    cumulative_w = np.cumsum(w)
    first = np.minimum(
        np.searchsorted(cumulative_w, rng.random(restarts) * cumulative_w[-1], side="right"),
        n - 1,
    )
    chosen = np.empty((restarts, n_clusters), np.int64)
    chosen[:, 0] = first
    closest = _sq_distances(x_sq[first], X[first], x_sq, X)  # (restarts, n)
    for c in range(1, n_clusters):
        cumulative = np.cumsum(closest * w, axis=1)
        targets = rng.random((restarts, trials)) * cumulative[:, -1:]
        # searchsorted(side="left") per restart: the count of cumulative sums below each target.
        ids = np.minimum((cumulative[:, None, :] < targets[:, :, None]).sum(axis=2), n - 1)
        to_trials = np.minimum(_sq_distances(x_sq[ids], X[ids], x_sq, X), closest[:, None, :])
        best = np.argmin(to_trials @ w, axis=1)
        chosen[:, c] = ids[each, best]
        closest = to_trials[each, best]
    return X[chosen]


def _lloyd(X, x_sq, w, centers, tol):
    """Weighted Lloyd from each restart's centers (restarts, k, d), every restart stopping
    on its own as scikit-learn's does: labels unchanged, or a squared center shift of at
    most ``tol``. Returns the final centers, labels and each restart's weighted inertia."""
    restarts, k, _ = centers.shape
    n = len(X)
    centers = centers.copy()
    labels = np.full((restarts, n), -1, np.int64)
    settled = np.zeros(restarts, bool)  # converged with labels consistent with the centers
    active = np.arange(restarts)
    for _ in range(MAX_ITER):
        c = centers[active]
        to_centers = _to_centers(X, x_sq, c)
        new_labels = np.argmin(to_centers, axis=2)
        moved, mass = _weighted_means(X, w, new_labels, k)
        for a in np.flatnonzero((mass == 0).any(axis=1)):
            _relocate_empty(moved[a], mass[a], to_centers[a], new_labels[a], X)
        strict = (new_labels == labels[active]).all(axis=1)
        shift = ((moved - c) ** 2).sum(axis=(1, 2))
        centers[active], labels[active] = moved, new_labels
        settled[active[strict]] = True
        active = active[~(strict | (shift <= tol))]
        if not len(active):
            break
    # Labels of the final centers for the restarts that stopped on the shift (or max_iter).
    final = np.argmin(_to_centers(X, x_sq, centers), axis=2)
    labels = np.where(settled[:, None], labels, final)
    # The inertia from direct differences, as scikit-learn reports it.
    gaps = X - centers[np.arange(restarts)[:, None], labels]
    inertia = np.einsum("rnd,rnd->rn", gaps, gaps) @ w
    return centers, labels, inertia


def _same_clustering(labels, other) -> bool:
    """Whether two labelings are one clustering with the clusters numbered differently."""
    pairs = np.unique(labels * (int(other.max()) + 1) + other)  # the distinct (label, other)
    return len(pairs) == len(np.unique(labels)) == len(np.unique(other))


def _to_centers(X, x_sq, centers):
    """Squared distances from every candidate to each restart's centers, (restarts, n, k)."""
    d = X @ centers.transpose(0, 2, 1)
    d *= -2.0
    d += x_sq[:, None]
    d += np.einsum("rkd,rkd->rk", centers, centers)[:, None, :]
    return np.maximum(d, 0.0, out=d)


def _weighted_means(X, w, labels, k):
    """Each restart's weighted cluster means (restarts, k, d) and masses (restarts, k).

    The weighted rows are sorted by slot ``restart * k + label`` (stably: each cluster sums its
    rows in row order) and summed per slot by ``np.add.reduceat``.
    """
    restarts, n = labels.shape
    slots = (labels + k * np.arange(restarts)[:, None]).ravel()
    order = np.argsort(slots, kind="stable")
    ordered = slots[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sums = np.zeros((restarts * k, X.shape[1]))
    sums[ordered[starts]] = np.add.reduceat((w[:, None] * X)[order % n], starts, axis=0)
    mass = np.bincount(slots, np.tile(w, restarts), minlength=restarts * k)
    sums, mass = sums.reshape(restarts, k, -1), mass.reshape(restarts, k)
    return sums / np.where(mass > 0, mass, 1.0)[..., None], mass


def _relocate_empty(centers, mass, to_centers, labels, X) -> None:
    """Move each empty center to one of the candidates farthest from their own center
    (scikit-learn relocates empty clusters the same way)."""
    empty = np.flatnonzero(mass == 0)
    own = to_centers[np.arange(len(labels)), labels]
    farthest = np.argsort(own, kind="stable")[::-1][: len(empty)]
    centers[empty] = X[farthest]
