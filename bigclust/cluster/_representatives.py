"""Cluster representatives for semi-supervised labelling: the rows nearest each center, and
labels propagated from them to every row.

The workflow (Geron, *Hands-On Machine Learning*, ch. 9, on the digits): cluster with
``KMeans(50)``, label by hand the row nearest each center, give every row its cluster's
label, or only the rows closest to their center (within a per-cluster distance percentile),
and train on those. :func:`representatives` is one pass over the data with a tree-reduced
top-m per cluster; :func:`propagate_labels` writes the labels lazily for lazy input.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
from sklearn.utils.validation import check_is_fitted

from bigclust import _percentile
from bigclust._errors import NonFiniteRow
from bigclust._input import read_input
from bigclust._selection import TopPerCluster
from bigclust.cluster._kernels import Nearest, row_blocks
from bigclust.driver import map_reduce, map_rows, place

__all__ = ["Representatives", "propagate_labels", "representatives"]


class Representatives(NamedTuple):
    """The rows nearest each center, nearest first.

    Attributes
    ----------
    indices : ndarray of shape (n_clusters, m)
        Global row numbers; -1 where a cluster has fewer than ``m`` rows.
    distances : ndarray of shape (n_clusters, m)
        Euclidean distances to the center; ``inf`` where there is no row.
    rows : ndarray of shape (n_clusters, m, n_features)
        The rows themselves, in the data's dtype; NaN where there is no row.
    """

    indices: np.ndarray
    distances: np.ndarray
    rows: np.ndarray


def _centers(centers_or_estimator, n_features: int) -> np.ndarray:
    if hasattr(centers_or_estimator, "fit"):
        check_is_fitted(centers_or_estimator)
        if not hasattr(centers_or_estimator, "cluster_centers_"):
            raise TypeError(
                f"{type(centers_or_estimator).__name__} has no cluster_centers_; pass a "
                "fitted KMeans or MiniBatchKMeans, or an array of centers."
            )
        centers_or_estimator = centers_or_estimator.cluster_centers_
    centers = np.asarray(centers_or_estimator)
    if centers.dtype.kind not in "iuf":
        raise TypeError(f"centers have dtype {centers.dtype}; expected real numbers.")
    if centers.ndim != 2 or centers.shape[0] == 0:
        raise ValueError(f"centers should be 2-D (n_clusters, n_features); got {centers.shape}.")
    if centers.shape[1] != n_features:
        raise ValueError(
            f"X has {n_features} features, but the centers have {centers.shape[1]} features."
        )
    if not np.isfinite(centers).all():
        raise ValueError("centers contain NaN or infinity.")
    return centers.astype(np.float64)


def _assign(block: np.ndarray, centers: np.ndarray):
    """Nearest center of each row (as ``KMeans.predict``) and the Euclidean distance to it,
    from the row's differences to that center (so it does not depend on the chunking)."""
    search = Nearest(centers, block.dtype)
    labels = np.empty(block.shape[0], np.intp)
    distances = np.empty(block.shape[0])
    # A non-finite row gives a non-finite distance, reported by the callers with its row.
    with np.errstate(invalid="ignore", over="ignore"):
        for rows in row_blocks(block.shape[0], max(len(centers), block.shape[1])):
            labels[rows] = search.labels(block[rows])
            deviations = block[rows].astype(np.float64) - centers[labels[rows]]
            distances[rows] = np.sqrt(np.einsum("ij,ij->i", deviations, deviations))
    return labels, distances


def _nearest_rows_chunk(block, params, start) -> TopPerCluster:
    centers, m = params
    labels, distances = _assign(block, centers)
    index = np.arange(block.shape[0], dtype=np.int64) + start
    limit = np.full(len(centers), m)
    return TopPerCluster.select(limit, distances, index, labels, lambda keep: block[keep])


def representatives(X, centers, m: int = 1) -> Representatives:
    """For each cluster, the ``m`` rows nearest its center, in one pass.

    A row belongs to the cluster of its nearest center (as ``KMeans.predict``). Each chunk
    keeps its ``m`` nearest rows per cluster and the partial results are merged as a tree;
    ties are broken by global row number, so the answer does not depend on the chunking.
    With ``m=1`` and a fitted ``KMeans``, ``indices[:, 0]`` is the notebook's
    ``np.argmin(kmeans.transform(X), axis=0)`` wherever that row belongs to the cluster.

    Parameters
    ----------
    X : array-like, np.memmap, path, zarr.Array or dask.array.Array of shape \
(n_samples, n_features)
        The data (see :func:`bigclust.as_dask_array`); any size.
    centers : ndarray of shape (n_clusters, n_features) or fitted estimator
        Centers, or a fitted estimator with ``cluster_centers_`` (KMeans, MiniBatchKMeans).
    m : int, default=1
        Representatives per cluster.

    Returns
    -------
    Representatives
        ``(indices, distances, rows)``, NumPy arrays, nearest first; padded with -1, ``inf``
        and NaN where a cluster has fewer than ``m`` rows.

    Examples
    --------
    >>> import numpy as np
    >>> from bigclust.cluster import representatives
    >>> X = np.array([[0.0], [0.4], [1.0], [9.0], [10.2]])
    >>> representatives(X, np.array([[0.5], [10.0]])).indices.ravel().tolist()
    [1, 4]
    """
    if not isinstance(m, numbers.Integral) or isinstance(m, bool) or m < 1:
        raise ValueError(f"m={m!r} should be an int >= 1.")
    data = place(read_input(X))
    centers = _centers(centers, data.shape[1])
    k, d = centers.shape
    top = map_reduce(_nearest_rows_chunk, data, params=(centers, int(m)))
    indices = np.full((k, m), -1, np.int64)
    distances = np.full((k, m), np.inf)
    rows = np.full((k, m, d), np.nan, dtype=data.dtype)
    order = np.lexsort((top.index, top.keys, top.cluster))
    cluster = top.cluster[order]
    rank = np.arange(len(order)) - np.searchsorted(cluster, cluster, side="left")
    indices[cluster, rank] = top.index[order]
    distances[cluster, rank] = top.keys[order]
    rows[cluster, rank] = top.rows[order]
    return Representatives(indices, distances, rows)


def _distance_values(block, params):
    labels, distances = _assign(block, params)
    return distances, labels


def _propagate_block(block, params) -> np.ndarray:
    centers, cluster_labels, cutoffs = params
    labels, distances = _assign(block, centers)
    if not np.isfinite(distances).all():
        raise NonFiniteRow(int(np.flatnonzero(~np.isfinite(distances))[0]))
    out = cluster_labels[labels]
    if cutoffs is not None:
        out[distances > cutoffs[labels]] = -1
    return out


def propagate_labels(X, centers, representative_labels, *, percentile: float | None = None):
    """Give every row the label of its cluster's representative.

    Each row gets ``representative_labels[c]`` where ``c`` is its nearest center (the
    notebook's ``y_representative[kmeans.labels_]``). With ``percentile``, only the rows of
    each cluster whose distance to the center is within that cluster's ``percentile``-th
    percentile of distances keep the label, the others get -1 (the notebook's partial
    propagation to the 20% of each cluster closest to its center). The percentiles are
    exact, equal to ``np.percentile`` of each cluster's distances, computed in a few
    passes that bring only histograms and a few values to the client.

    Parameters
    ----------
    X : array-like, np.memmap, path, zarr.Array or dask.array.Array of shape \
(n_samples, n_features)
        The data (see :func:`bigclust.as_dask_array`).
    centers : ndarray of shape (n_clusters, n_features) or fitted estimator
        Centers, or a fitted estimator with ``cluster_centers_``.
    representative_labels : array-like of int, shape (n_clusters,)
        The label given to each cluster's representative (e.g. by hand, for the rows of
        :func:`representatives`).
    percentile : float in [0, 100], default=None
        Keep only the rows within this percentile of their cluster's distances to its
        center (distance <= the percentile); ``None`` labels every row.

    Returns
    -------
    labels : ndarray or dask.array.Array of shape (n_samples,), int64
        NumPy for in-memory input; a lazy Dask array for Dask/Zarr input (write it with
        ``.to_zarr()``). -1 for rows outside the percentile.

    Examples
    --------
    >>> import numpy as np
    >>> from bigclust.cluster import propagate_labels
    >>> X = np.array([[0.0], [0.4], [1.2], [9.0], [10.2]])
    >>> centers = np.array([[0.5], [10.0]])
    >>> propagate_labels(X, centers, [3, 7]).tolist()
    [3, 3, 3, 7, 7]
    >>> propagate_labels(X, centers, [3, 7], percentile=50).tolist()
    [3, 3, -1, -1, 7]
    """
    inp = read_input(X)
    data = place(inp)
    centers = _centers(centers, data.shape[1])
    cluster_labels = np.asarray(representative_labels)
    if cluster_labels.dtype.kind not in "iu":
        raise TypeError(
            f"representative_labels have dtype {cluster_labels.dtype}; expected integers."
        )
    if cluster_labels.shape != (len(centers),):
        raise ValueError(
            f"representative_labels has shape {cluster_labels.shape}; expected one label per "
            f"cluster, ({len(centers)},)."
        )
    cutoffs = None
    if percentile is not None:
        if not 0 <= percentile <= 100:
            raise ValueError(f"percentile={percentile} should be in [0, 100].")
        cutoffs = _percentile.grouped_percentile(
            _distance_values,
            data,
            q=percentile,
            n_groups=len(centers),
            params=centers,
            check_finite=True,
        )
    params = (centers, cluster_labels.astype(np.int64), cutoffs)
    return map_rows(
        _propagate_block,
        data,
        params=params,
        dtype=np.int64,
        numpy_out=inp.numpy_out,
        in_memory=inp.in_memory,
    )
