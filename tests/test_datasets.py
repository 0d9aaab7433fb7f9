"""Synthetic data: a function of the seed alone; Zarr writing that never loses data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from bigclust import _random
from bigclust.datasets import CODECS, make_blobs, write_zarr
from bigclust.io import DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES, MAX_CHUNKS_PER_PASS

# More rows than one random block, so chunk boundaries fall inside and across blocks.
N = _random.BLOCK_ROWS * 2 + 1234


def tree_hash(path) -> str:
    digest = hashlib.sha256()
    for f in sorted(Path(path).rglob("*")):
        if f.is_file():
            digest.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def reference():
    X, y = make_blobs(N, 3, centers=5, random_state=7)
    with dask.config.set(scheduler="threads"):
        return dask.compute(X, y)


@pytest.mark.parametrize("chunk_rows", [None, 7919, _random.BLOCK_ROWS, 100_000, N])
def test_same_seed_same_data_for_any_chunking(chunk_rows, reference):
    X, y = make_blobs(N, 3, centers=5, random_state=7, chunk_rows=chunk_rows)
    if chunk_rows is not None:
        assert X.chunks[0][0] == min(chunk_rows, N) and y.chunks == X.chunks[:1]
    with dask.config.set(scheduler="threads"):
        Xc, yc = dask.compute(X, y)
    np.testing.assert_array_equal(Xc, reference[0])
    np.testing.assert_array_equal(yc, reference[1])


def test_one_row_chunks_match_too():
    X1, y1 = make_blobs(300, 3, centers=5, random_state=7, chunk_rows=1)
    X, y = make_blobs(300, 3, centers=5, random_state=7)
    assert X1.numblocks == (300, 1) and X.numblocks == (1, 1)
    np.testing.assert_array_equal(X1.compute(), X.compute())
    np.testing.assert_array_equal(y1.compute(), y.compute())


def test_different_seeds_differ(reference):
    X, y = make_blobs(N, 3, centers=5, random_state=8)
    Xc, yc = dask.compute(X, y)
    assert not np.allclose(Xc, reference[0])
    assert (yc != reference[1]).mean() > 0.5
    # The centers depend on the seed too.
    _, _, c7 = make_blobs(10, 3, centers=5, random_state=7, return_centers=True)
    _, _, c8 = make_blobs(10, 3, centers=5, random_state=8, return_centers=True)
    assert not np.allclose(c7, c8)


def test_labels_and_spread_match_the_centers():
    centers = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [-50.0, -50.0]])
    stds = np.array([0.5, 1.0, 2.0, 3.0])
    X, y = make_blobs(40_000, 2, centers=centers, cluster_std=stds, random_state=0,
                      dtype=np.float64, chunk_rows=3000)  # fmt: skip
    X, y = dask.compute(X, y)
    assert X.dtype == np.float64 and y.dtype == np.int32
    nearest = ((X[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(nearest, y)
    for k in range(4):
        members = X[y == k]
        assert len(members) > 8000  # uniform weights: about 10,000 each
        np.testing.assert_allclose(members.mean(0), centers[k], atol=5 * stds[k] / 90)
        np.testing.assert_allclose(members.std(0), stds[k], rtol=0.05)


def test_weights_set_the_blob_frequencies():
    _, y = make_blobs(50_000, 2, centers=3, weights=[0.7, 0.3, 0.0], random_state=1)
    counts = np.bincount(y.compute(), minlength=3) / 50_000
    assert counts[2] == 0
    np.testing.assert_allclose(counts[:2], [0.7, 0.3], atol=0.01)


def test_random_centers_lie_in_the_box():
    _, _, centers = make_blobs(5, 4, centers=50, center_box=(2.0, 3.0), random_state=0,
                               return_centers=True)  # fmt: skip
    assert centers.shape == (50, 4) and (centers >= 2).all() and (centers <= 3).all()


def test_float32_default_and_lazy():
    X, y = make_blobs(10**9, 64, random_state=0)  # 256 GB: must cost nothing until computed
    assert X.dtype == np.float32 and X.shape == (10**9, 64) and y.shape == (10**9,)
    assert X.chunks[0][0] % _random.BLOCK_ROWS == 0
    # 256 GB: the chunk policy's larger chunks (at most MAX_CHUNKS_PER_PASS of them, each at
    # most MAX_CHUNK_BYTES rounded up to a random block).
    assert X.chunks[0][0] * 64 * 4 <= max(MAX_CHUNK_BYTES, DEFAULT_CHUNK_BYTES) + (
        _random.BLOCK_ROWS * 64 * 4
    )
    assert X.numblocks[0] <= MAX_CHUNKS_PER_PASS
    assert X[-2:].compute().shape == (2, 64)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(n_samples=0), ValueError, "n_samples=0"),
        (dict(n_features=0), ValueError, "n_features=0"),
        (dict(centers=0), ValueError, "centers=0 should be >= 1"),
        (dict(centers=np.zeros((3, 5))), ValueError, r"centers has shape \(3, 5\)"),
        (dict(centers=np.zeros(3)), ValueError, r"centers has shape \(3,\)"),
        (dict(centers=[[np.nan, 0.0]]), ValueError, "centers contains NaN"),
        (dict(cluster_std=-1.0), ValueError, "cluster_std=-1.0 should be finite and >= 0"),
        (dict(cluster_std=np.inf), ValueError, "cluster_std=inf"),
        (dict(cluster_std=[1.0, 2.0]), ValueError, r"cluster_std has shape \(2,\); expected"),
        (dict(weights=[1.0, 1.0]), ValueError, r"weights=\[1.0, 1.0\] should be 3 finite"),
        (dict(weights=[-1.0, 1.0, 1.0]), ValueError, "non-negative"),
        (dict(weights=[0.0, 0.0, 0.0]), ValueError, "positive sum"),
        (dict(weights=[np.nan, 1.0, 1.0]), ValueError, r"weights=\[nan"),
        (dict(weights=[np.inf, 1.0, 1.0]), ValueError, r"weights=\[inf"),
        (dict(center_box=(5.0, -5.0)), ValueError, r"center_box=\(5.0, -5.0\)"),
        (dict(chunk_rows=0), ValueError, "chunk_rows=0"),
        (dict(dtype=np.int32), TypeError, "dtype=int32 should be a floating-point"),
        (dict(random_state=-1), ValueError, "random_state=-1"),
        (dict(random_state="seed"), TypeError, "random_state='seed'"),
    ],
)
def test_make_blobs_validation(kwargs, error, message):
    kwargs = {"n_samples": 100, "n_features": 2, "centers": 3, **kwargs}
    with pytest.raises(error, match=message):
        make_blobs(**kwargs)


def test_accepts_generators_and_random_states():
    for rs in (np.random.RandomState(0), np.random.default_rng(0)):
        X, _ = make_blobs(100, 2, random_state=rs)
        assert np.isfinite(X.compute()).all()


@pytest.fixture(scope="module")
def small():
    X, _ = make_blobs(10_000, 6, centers=4, random_state=3, chunk_rows=1500)
    return X, X.compute()


@pytest.mark.parametrize("codec", CODECS)
def test_write_zarr_round_trip(codec, small, tmp_path):
    X, values = small
    path = tmp_path / f"{codec}.zarr"
    z = write_zarr(X, path, codec=codec, attributes={"seed": 3})
    assert z.shape == values.shape and z.dtype == np.float32 and z.chunks == (1500, 6)
    np.testing.assert_array_equal(z[:], values)
    reopened = zarr.open_array(str(path), mode="r")
    np.testing.assert_array_equal(reopened[:], values)
    assert reopened.attrs["seed"] == 3
    names = [type(c).__name__ for c in reopened.compressors]
    expected = {"none": [], "zstd": ["ZstdCodec"], "lz4": ["BloscCodec"],
                "blosc-zstd": ["BloscCodec"]}[codec]  # fmt: skip
    assert names == [*expected, "Crc32cCodec"]  # the checksum covers the stored bytes
    assert reopened.attrs["bigclust"] == {"complete": True}
    if codec in ("lz4", "blosc-zstd"):
        assert reopened.compressors[0].cname.value == codec.removeprefix("blosc-")
    with pytest.raises(ValueError, match="read-only"):
        z[0, 0] = 1.0  # the returned array is opened read-only


@pytest.mark.parametrize(
    "chunks, chunk_rows, zarr_rows",
    [
        (((1000,) * 10, (4, 2)), None, 1000),  # columns split: once lost data under threads
        (((3000, 3000, 4000), (6,)), None, 3000),  # uneven last chunk, larger than the rest
        (((1000, 2500, 6500), (6,)), None, 1000),  # irregular chunks
        ((1500, 6), 777, 777),  # explicit chunk_rows
    ],
)
def test_write_zarr_any_dask_chunking(chunks, chunk_rows, zarr_rows, small, tmp_path):
    _, values = small
    X = da.from_array(values, chunks=chunks)
    for attempt in range(3):  # a race shows up in some runs only
        path = tmp_path / f"x{attempt}.zarr"
        with dask.config.set(scheduler="threads"):
            z = write_zarr(X, path, chunk_rows=chunk_rows)
        assert z.chunks == (zarr_rows, 6)
        np.testing.assert_array_equal(z[:], values)


def test_write_zarr_refuses_to_overwrite(small, tmp_path):
    X, values = small
    path = tmp_path / "x.zarr"
    write_zarr(X, path)
    before = tree_hash(path)
    other, _ = make_blobs(500, 2, random_state=0)
    with pytest.raises(FileExistsError, match=r"x\.zarr' exists; pass overwrite=True"):
        write_zarr(other, path)
    assert tree_hash(path) == before
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[:], values)
    # A plain file in the way is not replaced either.
    plain = tmp_path / "notes.txt"
    plain.write_text("keep me")
    with pytest.raises(FileExistsError):
        write_zarr(other, plain)
    assert plain.read_text() == "keep me"
    # With overwrite=True it is replaced.
    z = write_zarr(other, path, overwrite=True)
    assert z.shape == (500, 2)
    np.testing.assert_array_equal(z[:], other.compute())


def test_write_zarr_to_an_fsspec_url(small):
    X, values = small
    url = "memory://bigclust-test-datasets/x.zarr"
    z = write_zarr(X, url, codec="zstd", overwrite=True)
    np.testing.assert_array_equal(z[:], values)
    np.testing.assert_array_equal(zarr.open_array(url, mode="r")[:], values)


def test_write_zarr_unknown_codec(small, tmp_path):
    X, _ = small
    with pytest.raises(ValueError, match="unknown codec 'gzip'; valid: 'none', 'zstd'"):
        write_zarr(X, tmp_path / "x.zarr", codec="gzip")
    assert not (tmp_path / "x.zarr").exists()


def test_write_zarr_progress(small, tmp_path, capsys):
    X, values = small
    z = write_zarr(X, tmp_path / "x.zarr", progress=True)
    np.testing.assert_array_equal(z[:], values)
    assert "written in" in capsys.readouterr().err
