"""Inputs of the metrics: the data, judged once, and labels aligned with its rows."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from bigclust._input import Input, read_input
from bigclust.driver import compute, keep_aligned_in_memory, map_reduce, place
from bigclust.metrics import _kernels as kern


def check_number_of_labels(n_labels: int, n_samples: int) -> None:
    """scikit-learn's rule and message: the metrics need 2 <= n_labels <= n_samples - 1."""
    if not 1 < n_labels < n_samples:
        raise ValueError(
            f"Number of labels is {n_labels}. Valid values are 2 to n_samples - 1 (inclusive)"
        )


def check_data(X: Any) -> tuple[Input, da.Array | np.ndarray]:
    """The input judged once (it says whether per-row outputs are NumPy or lazy), and the data
    where the passes run: small in-memory data in this process, in-memory data on a cluster
    scattered once, anything else streamed from its store (:func:`bigclust.driver.place`)."""
    inp = read_input(X)
    return inp, place(inp)


def check_labels(labels: Any, data: da.Array | np.ndarray) -> np.ndarray | da.Array:
    """Labels aligned with the data's rows: NumPy labels are encoded as 0..K-1 (so that any
    values, strings included, work) and scattered once on a cluster, Dask labels stay lazy
    and are encoded by the kernels (computed once when the data are in this process)."""
    n_samples = data.shape[0]
    if isinstance(labels, da.Array):
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1:
            raise ValueError(f"labels should be 1-D; got shape {labels.shape}.")
        if np.isnan(labels.shape[0]):
            raise ValueError("labels has unknown chunk sizes; call labels.compute_chunk_sizes().")
    else:
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1:
            raise ValueError(f"labels should be 1-D; got shape {labels.shape}.")
    if labels.shape[0] != n_samples:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"[{n_samples}, {labels.shape[0]}] (X has {n_samples} rows, labels has "
            f"{labels.shape[0]} entries)."
        )
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind == "f" and not np.isfinite(labels).all():
            raise ValueError("labels contains NaN or infinity.")
        classes, codes = np.unique(labels, return_inverse=True)
        check_number_of_labels(len(classes), n_samples)
        codes = codes.reshape(-1).astype(np.int64 if len(classes) > 2**31 - 1 else np.int32)
        labels = keep_aligned_in_memory(codes, data)
    elif labels.dtype.kind not in "iuf":
        raise TypeError(
            f"lazy labels have dtype {labels.dtype}; expected integers (or floats). Pass "
            "NumPy labels for other label types."
        )
    elif isinstance(data, np.ndarray):  # the passes run here: read the labels once
        (labels,) = compute(labels)
    return labels


def cluster_moments(data: da.Array, labels) -> kern.ClusterMoments:
    """Per-cluster counts, means and spreads in one pass; checks the number of clusters."""
    moments = map_reduce(kern.moments_chunk, data, labels)
    check_number_of_labels(len(moments.classes), data.shape[0])
    if np.isnan(moments.classes.astype(np.float64, copy=False)).any():
        raise ValueError("labels contains NaN.")
    return moments
