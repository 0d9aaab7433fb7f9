"""Calinski-Harabasz and Davies-Bouldin scores from per-cluster statistics."""

from __future__ import annotations

import numpy as np

from bigclust.driver import map_reduce
from bigclust.metrics import _kernels as kern
from bigclust.metrics._validation import check_data, check_labels, cluster_moments

__all__ = ["calinski_harabasz_score", "davies_bouldin_score"]


def calinski_harabasz_score(X, labels) -> float:
    """Calinski-Harabasz score (variance ratio criterion), exact, in one pass.

    The ratio of the between-cluster dispersion ``sum_C n_C |m_C - m|^2`` to the
    within-cluster dispersion ``sum_C sum_{x in C} |x - m_C|^2``, each divided by its degrees
    of freedom: ``(B / (k - 1)) / (W / (n - k))``. Both come from per-cluster counts, means
    and spreads accumulated around each chunk's first row and merged exactly, so data far
    from the origin keep their digits. Equal to ``sklearn.metrics.calinski_harabasz_score``.

    Parameters
    ----------
    X : array-like, np.memmap, path, zarr.Array or dask.array.Array of shape \
(n_samples, n_features)
        The data (see :func:`bigclust.as_dask_array`).
    labels : ndarray or dask.array.Array of shape (n_samples,)
        Cluster label of each row; lazy labels (e.g. ``KMeans.predict`` of a Zarr array)
        are read in the same pass as ``X``.

    Returns
    -------
    float
        Higher is better. 1.0 when every cluster is a single point repeated.

    Raises
    ------
    ValueError
        Labels not aligned with ``X``, or fewer than 2 or more than ``n_samples - 1``
        distinct labels.

    Examples
    --------
    >>> import numpy as np
    >>> from bigclust.metrics import calinski_harabasz_score
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 0.0], [5.0, 1.0]])
    >>> float(round(calinski_harabasz_score(X, [0, 0, 1, 1]), 6))
    50.0
    """
    _, data = check_data(X)
    labels = check_labels(labels, data)
    moments = cluster_moments(data, labels)
    n, k = data.shape[0], len(moments.classes)
    overall = moments.counts @ moments.means / n
    between = moments.means - overall
    extra = float(moments.counts @ np.einsum("ij,ij->i", between, between))
    intra = float(moments.spreads.sum())
    if intra == 0.0:
        return 1.0
    return extra * (n - k) / (intra * (k - 1.0))


def _pairwise_distances(means: np.ndarray) -> np.ndarray:
    """Euclidean distances between centroids, one row at a time (k x k, never k x k x d)."""
    out = np.empty((len(means), len(means)))
    for i, mean in enumerate(means):
        diff = means - mean
        out[i] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def davies_bouldin_score(X, labels) -> float:
    """Davies-Bouldin score, exact, in two passes.

    For each cluster, the largest ratio ``(s_i + s_j) / |m_i - m_j|`` over the other
    clusters, averaged over the clusters; ``s_i`` is the mean Euclidean distance from the
    rows of cluster ``i`` to its centroid ``m_i``. The first pass finds the centroids, the
    second the mean distances to them. Equal to ``sklearn.metrics.davies_bouldin_score``.

    Parameters
    ----------
    X : array-like, np.memmap, path, zarr.Array or dask.array.Array of shape \
(n_samples, n_features)
        The data (see :func:`bigclust.as_dask_array`).
    labels : ndarray or dask.array.Array of shape (n_samples,)
        Cluster label of each row.

    Returns
    -------
    float
        Lower is better; 0 is the minimum.

    Raises
    ------
    ValueError
        Labels not aligned with ``X``, or fewer than 2 or more than ``n_samples - 1``
        distinct labels.

    Examples
    --------
    >>> from bigclust.metrics import davies_bouldin_score
    >>> round(davies_bouldin_score([[0, 1], [1, 1], [3, 4]], [0, 0, 1]), 3)
    0.128
    """
    _, data = check_data(X)
    labels = check_labels(labels, data)
    moments = cluster_moments(data, labels)
    sums = map_reduce(
        kern.centroid_distance_chunk, data, labels, params=(moments.classes, moments.means)
    )
    intra = sums / moments.counts
    centroid_distances = _pairwise_distances(moments.means)
    if np.allclose(intra, 0.0) or np.allclose(centroid_distances, 0.0):
        return 0.0
    centroid_distances[centroid_distances == 0] = np.inf
    combined = intra[:, None] + intra
    return float(np.mean(np.max(combined / centroid_distances, axis=1)))
