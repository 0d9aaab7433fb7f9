"""Synthetic data of any size whose content depends only on the seed, never on the chunking."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import dask
import dask.array as da
import numpy as np

from bigclust import _random, _storage
from bigclust.io import DEFAULT_CHUNK_BYTES, rows_per_chunk

__all__ = ["CODECS", "make_blobs", "write_zarr"]

# Keys of the row-keyed random streams (see bigclust._random).
_LABELS, _NOISE = _random.Key.BLOBS_LABELS, _random.Key.BLOBS_NOISE


def _draw_labels(seed, weights, start, stop):
    cumulative = np.cumsum(weights)
    labels = _random.rows_random(
        seed,
        (_LABELS,),
        start,
        stop,
        lambda rng, m: np.searchsorted(cumulative, rng.random(m), side="right"),
    )
    return np.minimum(labels, len(weights) - 1)  # guards against cumsum rounding below 1


def _blobs_chunk(block_info=None, *, seed, centers, stds, weights, out_dtype):
    (start, stop), _ = block_info[None]["array-location"]
    centers = centers.astype(out_dtype)
    stds = stds.astype(out_dtype)
    n_features = centers.shape[1]
    out = np.empty((stop - start, n_features), dtype=out_dtype)
    # Fill one random block at a time: temporaries stay a few MiB whatever the chunk size.
    step = _random.BLOCK_ROWS
    lo = start
    while lo < stop:
        hi = min(stop, (lo // step + 1) * step)
        labels = _draw_labels(seed, weights, lo, hi)
        part = out[lo - start : hi - start]
        part[:] = _random.rows_random(
            seed,
            (_NOISE,),
            lo,
            hi,
            lambda rng, m: rng.standard_normal((m, n_features), dtype=np.float32),
        )
        part *= stds[labels, None]
        part += centers[labels]
        lo = hi
    return out


def _labels_chunk(block_info=None, *, seed, weights):
    ((start, stop),) = block_info[None]["array-location"]
    return _draw_labels(seed, weights, start, stop).astype(np.int32)


def make_blobs(
    n_samples: int = 100_000,
    n_features: int = 2,
    *,
    centers: int | np.ndarray = 3,
    cluster_std: float | np.ndarray = 1.0,
    center_box: tuple[float, float] = (-10.0, 10.0),
    weights: np.ndarray | None = None,
    random_state: int | None = None,
    dtype: Any = np.float32,
    chunk_rows: int | None = None,
    return_centers: bool = False,
):
    """Generate isotropic Gaussian blobs lazily, as Dask arrays of any size.

    Unlike :func:`sklearn.datasets.make_blobs`, rows are not grouped by blob: each row's blob
    is drawn independently (probabilities ``weights``). Every value is a function of
    ``random_state`` and the row's global index alone, so any ``chunk_rows`` gives the same
    array, and a billion rows cost no memory until computed.

    Parameters
    ----------
    n_samples : int, default=100_000
        Number of rows.
    n_features : int, default=2
        Number of columns.
    centers : int or ndarray of shape (n_centers, n_features), default=3
        Number of blobs (centers drawn uniformly in ``center_box``), or their locations.
    cluster_std : float or ndarray of shape (n_centers,), default=1.0
        Standard deviation of each blob.
    center_box : tuple of float, default=(-10.0, 10.0)
        Bounding box for randomly drawn centers.
    weights : ndarray of shape (n_centers,), optional
        Probability of each blob; uniform by default.
    random_state : int, optional
        Seed. ``None`` draws a fresh one.
    dtype : dtype, default=np.float32
        Dtype of ``X``.
    chunk_rows : int, optional
        Rows per chunk; by default the data layer's policy
        (:func:`bigclust.io.rows_per_chunk`), rounded to a multiple of the random block.
    return_centers : bool, default=False
        Also return the centers.

    Returns
    -------
    X : dask.array.Array of shape (n_samples, n_features)
    y : dask.array.Array of shape (n_samples,), int32
        The blob of each row.
    centers : ndarray of shape (n_centers, n_features)
        Only if ``return_centers``.

    Examples
    --------
    >>> from bigclust.datasets import make_blobs
    >>> X, y = make_blobs(1000, 4, centers=3, random_state=0)
    >>> X.shape, X.dtype.name, int(y.max()) < 3
    ((1000, 4), 'float32', True)
    """
    if n_samples < 1 or n_features < 1:
        raise ValueError(f"n_samples={n_samples} and n_features={n_features} should be >= 1.")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype={dtype} should be a floating-point dtype (float32 or float64).")
    if chunk_rows is not None and int(chunk_rows) < 1:
        raise ValueError(f"chunk_rows={chunk_rows} should be >= 1.")
    seed = _random.seed_from(random_state)
    if np.ndim(centers) == 0:
        n_centers = int(centers)
        if n_centers < 1:
            raise ValueError(f"centers={centers} should be >= 1.")
        low, high = center_box
        if not (np.isfinite(low) and np.isfinite(high) and low <= high):
            raise ValueError(
                f"center_box={center_box} should be finite (low, high) with low <= high."
            )
        rng = _random.generator(seed, _random.Key.BLOBS_CENTERS)
        centers = rng.uniform(low, high, size=(n_centers, n_features))
    centers = np.asarray(centers, dtype=np.float64)
    if centers.ndim != 2 or centers.shape[1] != n_features:
        raise ValueError(
            f"centers has shape {centers.shape}; expected (n_centers, n_features={n_features})."
        )
    if not np.isfinite(centers).all():
        raise ValueError("centers contains NaN or infinity.")
    n_centers = centers.shape[0]
    stds = np.asarray(cluster_std, dtype=np.float64)
    if stds.ndim > 1 or stds.size not in (1, n_centers):
        raise ValueError(
            f"cluster_std has shape {stds.shape}; expected a number or ({n_centers},) "
            "(one per center)."
        )
    stds = np.broadcast_to(stds.reshape(-1), (n_centers,)).copy()
    if not (np.isfinite(stds).all() and (stds >= 0).all()):
        raise ValueError(f"cluster_std={cluster_std} should be finite and >= 0.")
    if weights is None:
        weights = np.full(n_centers, 1.0 / n_centers)
    weights = np.asarray(weights, dtype=np.float64)
    if (
        weights.shape != (n_centers,)
        or not np.isfinite(weights).all()
        or (weights < 0).any()
        or weights.sum() <= 0
    ):
        raise ValueError(
            f"weights={weights.tolist()} should be {n_centers} finite non-negative numbers "
            "with a positive sum."
        )
    weights = weights / weights.sum()
    dtype = np.dtype(dtype)
    if chunk_rows is None:  # the data layer's policy, rounded to whole random blocks
        rows = rows_per_chunk(n_features, dtype.itemsize, n_samples=n_samples)
        block = _random.BLOCK_ROWS
        if rows * n_features * dtype.itemsize > DEFAULT_CHUNK_BYTES:  # grown for large data:
            chunk_rows = -(-rows // block) * block  # round up, keeping the bound on chunks
        else:
            chunk_rows = max(block, rows // block * block)
    chunk_rows = min(int(chunk_rows), n_samples)

    chunks = (da.core.normalize_chunks(chunk_rows, (n_samples,))[0], (n_features,))
    X = da.map_blocks(
        _blobs_chunk,
        chunks=chunks,
        dtype=dtype,
        meta=np.empty((0, 0), dtype),
        seed=seed,
        centers=centers,
        stds=stds,
        weights=weights,
        out_dtype=dtype,
    )
    y = da.map_blocks(
        _labels_chunk,
        chunks=(chunks[0],),
        dtype=np.int32,
        meta=np.empty((0,), np.int32),
        seed=seed,
        weights=weights,
    )
    return (X, y, centers) if return_centers else (X, y)


#: Codecs ``write_zarr`` can write, by name. Random floats barely compress (about 1.08x with
#: Zstd), and every codec costs read throughput, so ``"none"`` is the default: see
#: ``benchmarks/bench_io.py`` for the measurement.
CODECS = ("none", "zstd", "lz4", "blosc-zstd")


def _compressors(codec: str):
    from zarr.codecs import BloscCodec, ZstdCodec

    if codec == "none":
        return None
    if codec == "zstd":
        return ZstdCodec(level=1)
    if codec == "lz4":
        return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    if codec == "blosc-zstd":
        return BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
    raise ValueError(f"unknown codec {codec!r}; valid: {', '.join(map(repr, CODECS))}.")


def write_zarr(
    X: da.Array,
    path: str | os.PathLike,
    *,
    codec: str = "none",
    chunk_rows: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    storage_options: dict | None = None,
    attributes: dict | None = None,
):
    """Write a Dask array to a new Zarr v3 array, chunk by chunk in bounded memory, atomically.

    The array appears at ``path`` only once every chunk is written (locally it is written
    under a temporary name and renamed into place; on object storage it is marked complete in
    its metadata by the last write, and bigclust refuses to read a store left incomplete: see
    :mod:`bigclust._storage`). Every chunk carries a ``crc32c`` checksum, verified whenever
    bigclust reads it, and every chunk is written, so a chunk missing later is an error.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features) or (n_samples,)
        Data to write: e.g. from :func:`make_blobs`, or the lazy ``labels_`` of a fit.
    path : str or PathLike
        Local path or fsspec URL of the new array.
    codec : {"none", "zstd", "lz4", "blosc-zstd"}, default="none"
        Compression. Uncompressed reads fastest (see ``benchmarks/bench_io.py``).
    chunk_rows : int, optional
        Rows per Zarr chunk; default: ``X``'s row chunks. Columns are never split.
    overwrite : bool, default=False
        Replace an existing array at ``path``. Off by default: never delete data by accident.
    progress : bool, default=False
        Print a progress bar to stderr.
    storage_options : dict, optional
        Passed to fsspec for URLs.
    attributes : dict, optional
        JSON attributes stored with the array.

    Returns
    -------
    zarr.Array
        The new array, opened read-only.

    Examples
    --------
    >>> import tempfile, os
    >>> from bigclust.datasets import make_blobs, write_zarr
    >>> X, y = make_blobs(1000, 4, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.zarr")
    >>> write_zarr(y, path).shape
    (1000,)
    """
    compressors = _compressors(codec)
    if X.ndim not in (1, 2):
        raise ValueError(f"X has shape {X.shape}; expected a 1-D or 2-D array.")
    # Every Zarr chunk must be written whole by exactly one task (lock=False): columns in one
    # chunk, and all row chunks but the last of one size.
    if chunk_rows is not None:
        X = X.rechunk((int(chunk_rows), *X.shape[1:]))
    elif len(set(X.chunks[0][:-1])) > 1:
        X = X.rechunk((X.chunks[0][0], *X.shape[1:]))
    elif X.ndim == 2 and len(X.chunks[1]) > 1:
        X = X.rechunk({1: X.shape[1]})
    return _storage.write_zarr_array(
        X,
        path,
        chunks=(X.chunks[0][0], *X.shape[1:]),
        compressors=[] if compressors is None else [compressors],
        overwrite=overwrite,
        storage_options=storage_options,
        attributes=attributes,
        compute=_compute_with_progress if progress else None,
    )


def _compute_with_progress(task) -> None:
    """Run ``task`` with a progress bar on stderr (distributed's, or dask's local one)."""
    from bigclust.driver import active_client

    client = active_client()
    if client is not None:
        from distributed import progress

        future = client.compute(task)
        progress(future)
        future.result()
        return
    from dask.diagnostics import ProgressBar

    start = time.perf_counter()
    with ProgressBar(out=sys.stderr, dt=0.5):
        dask.compute(task)
    print(f"written in {time.perf_counter() - start:.1f} s", file=sys.stderr)
