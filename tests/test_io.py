"""The data layer: every input kind, any chunking, the same values; bad input fails clearly."""

from __future__ import annotations

import hashlib
import os
import pickle
import uuid
from pathlib import Path

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from bigclust.io import (
    DEFAULT_CHUNK_BYTES,
    MIN_CHUNK_BYTES,
    MIN_CHUNKS,
    NpyFile,
    StoreNotFoundError,
    ZarrChunkFiles,
    ZarrReader,
    as_dask_array,
    check_dtype,
    rows_per_chunk,
)

N_SAMPLES, N_FEATURES = 37, 5


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).standard_normal((N_SAMPLES, N_FEATURES))


def tree_hash(path) -> str:
    """sha256 over every file (name and bytes) under ``path``."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    for f in files:
        if f.is_file():
            digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()


# Every input kind: (a) builds the input holding ``a`` and (b) returns (input, path or None).
def _numpy(a, tmp):
    return a.copy(), None


def _memmap(a, tmp):
    path = tmp / "x.bin"
    mm = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
    mm[:] = a
    mm.flush()
    return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape), path


def _memmap_rows(a, tmp):
    # A row slice of a memmap opened at a byte offset: the view keeps the parent's offset.
    path = tmp / "x.bin"
    pad_before, pad_after = 3, 4
    big = np.concatenate(
        [
            np.full((pad_before, a.shape[1]), -1.0, a.dtype),
            a,
            np.full((pad_after, a.shape[1]), -2.0, a.dtype),
        ]
    )
    header = 24  # bytes of junk before the array, not a multiple of the page size
    with open(path, "wb") as f:
        f.write(b"\xff" * header)
        f.write(big.tobytes())
    mm = np.memmap(path, dtype=a.dtype, mode="r", offset=header, shape=big.shape)
    return mm[pad_before : pad_before + a.shape[0]], path


def _npy_path(a, tmp):
    path = tmp / "x.npy"
    np.save(path, a)
    return str(path), path


def _npy_pathlib(a, tmp):
    path = tmp / "x.npy"
    np.save(path, a)
    return path, path


def _npy_fortran(a, tmp):
    path = tmp / "f.npy"
    np.save(path, np.asfortranarray(a))
    return str(path), path


def _npy_fortran_memmap(a, tmp):
    path = tmp / "f.npy"
    np.save(path, np.asfortranarray(a))
    return np.load(path, mmap_mode="r"), path


def _zarr_store(a, tmp, chunks=(6, 3), **kwargs):
    # By default Zarr chunks that split the columns and do not divide the rows, compressed.
    path = tmp / "x.zarr"
    z = zarr.create_array(str(path), shape=a.shape, chunks=chunks, dtype=a.dtype, **kwargs)
    z[:] = a
    return path


def _zarr_uncompressed(a, tmp):
    # Read straight from the chunk files (ZarrChunkFiles), not through zarr.
    path = _zarr_store(a, tmp, chunks=(6, a.shape[1]), compressors=None)
    return str(path), path


def _zarr_zstd_rows(a, tmp):
    path = _zarr_store(a, tmp, chunks=(6, a.shape[1]))
    return str(path), path


def _zarr_v2(a, tmp):
    path = _zarr_store(a, tmp, chunks=(6, a.shape[1]), zarr_format=2, compressors=None)
    return str(path), path


def _zarr_array(a, tmp):
    path = _zarr_store(a, tmp)
    return zarr.open_array(str(path), mode="r+"), path


def _zarr_path(a, tmp):
    path = _zarr_store(a, tmp)
    return str(path), path


def _zarr_file_url(a, tmp):
    path = _zarr_store(a, tmp)
    return "file://" + str(path), path


def _zarr_memory_url(a, tmp):
    url = f"memory://bigclust-test-{uuid.uuid4().hex}.zarr"
    z = zarr.create_array(url, shape=a.shape, chunks=(6, 3), dtype=a.dtype)
    z[:] = a
    return url, None


def _dask(a, tmp):
    return da.from_array(a, chunks=(10, N_FEATURES)), None


def _dask_split_columns(a, tmp):
    return da.from_array(a, chunks=((10, 1, 20, 6), (2, 3))), None


KINDS = {
    "numpy": _numpy,
    "memmap": _memmap,
    "memmap-row-view": _memmap_rows,
    "npy-str": _npy_path,
    "npy-pathlib": _npy_pathlib,
    "npy-fortran": _npy_fortran,
    "npy-fortran-memmap": _npy_fortran_memmap,
    "zarr.Array": _zarr_array,
    "zarr-path": _zarr_path,
    "zarr-uncompressed": _zarr_uncompressed,
    "zarr-zstd-row-chunks": _zarr_zstd_rows,
    "zarr-v2": _zarr_v2,
    "zarr-file-url": _zarr_file_url,
    "zarr-memory-url": _zarr_memory_url,
    "dask": _dask,
    "dask-split-columns": _dask_split_columns,
}

# None: the default policy; 1: one row per chunk; 7: uneven last chunk (37 = 5 * 7 + 2);
# 37: exactly one chunk; 100: more rows than the data.
ROWS = [None, 1, 7, 37, 100]


@pytest.mark.parametrize("rows", ROWS, ids=lambda r: f"rows={r}")
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_and_chunking_gives_the_same_values(kind, rows, data, tmp_path):
    source, path = KINDS[kind](data, tmp_path)
    before = tree_hash(path) if path is not None else None

    X = as_dask_array(source, rows_per_chunk=rows)

    assert isinstance(X, da.Array)
    assert X.shape == data.shape and X.dtype == np.float64
    assert X.chunks[1] == (N_FEATURES,), "all columns must sit in one chunk"
    if rows is not None:
        expected = min(rows, N_SAMPLES)
        assert all(c == expected for c in X.chunks[0][:-1])
        assert 1 <= X.chunks[0][-1] <= expected
    with dask.config.set(scheduler="threads"):
        values = X.compute()
    np.testing.assert_array_equal(values, data)
    # Blocks computed one at a time see the same rows as the whole.
    offsets = np.cumsum((0, *X.chunks[0]))
    for i in (0, len(X.chunks[0]) - 1):
        block = X.blocks[i].compute(scheduler="synchronous")
        np.testing.assert_array_equal(block, data[offsets[i] : offsets[i + 1]])
    if path is not None:
        assert tree_hash(path) == before, "the source must never be written to"


def test_default_dask_chunking_is_kept_and_columns_are_merged():
    a = np.arange(60.0).reshape(12, 5)
    X = as_dask_array(da.from_array(a, chunks=((5, 7), (2, 3))))
    assert X.chunks == ((5, 7), (5,))
    np.testing.assert_array_equal(X.compute(), a)
    X = as_dask_array(da.from_array(a, chunks=((5, 7), (2, 3))), rows_per_chunk=4)
    assert X.chunks == ((4, 4, 4), (5,))
    X = as_dask_array(da.from_array(a, chunks=((5, 7), (2, 3))), chunk_bytes=3 * 5 * 8)
    assert X.chunks == ((3, 3, 3, 3), (5,))


def test_chunk_bytes_sets_rows_per_chunk():
    a = np.zeros((100, 5))
    X = as_dask_array(a, chunk_bytes=10 * 5 * 8)
    assert X.chunks[0] == (10,) * 10
    # A row larger than the target still gives one row per chunk.
    assert as_dask_array(a, chunk_bytes=1).chunks[0] == (1,) * 100


def test_rows_per_chunk_policy():
    assert rows_per_chunk(32, 4) == DEFAULT_CHUNK_BYTES // 128
    assert rows_per_chunk(32, 4, chunk_bytes=2**20) == 2**20 // 128
    assert rows_per_chunk(32, 8, chunk_bytes=2**20, n_samples=100) == 100
    assert rows_per_chunk(10**6, 8, chunk_bytes=1) == 1
    with pytest.raises(ValueError, match="chunk_bytes=0"):
        rows_per_chunk(3, 8, chunk_bytes=0)


def test_default_chunks_of_a_large_npy_follow_the_byte_target(tmp_path):
    path = tmp_path / "big.npy"
    n_rows = 9 * DEFAULT_CHUNK_BYTES // (32 * 4) + 5  # more than MIN_CHUNKS full chunks
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, 32)).flush()
    X = as_dask_array(path)
    assert X.dtype == np.float32
    assert X.chunks[0] == (DEFAULT_CHUNK_BYTES // 128,) * 9 + (5,)


def test_small_data_still_splits_for_every_core():
    n_rows = 2 * DEFAULT_CHUNK_BYTES // (32 * 4)  # two default chunks' worth
    assert rows_per_chunk(32, 4, n_samples=n_rows) == n_rows // MIN_CHUNKS
    tiny = MIN_CHUNK_BYTES // 128  # never below MIN_CHUNK_BYTES per chunk
    assert rows_per_chunk(32, 4, n_samples=tiny * 3) == tiny


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_rows_per_chunk(bad):
    with pytest.raises(ValueError, match=f"rows_per_chunk={bad}"):
        as_dask_array(np.zeros((4, 2)), rows_per_chunk=bad)


def test_npy_graph_pickles_small(tmp_path):
    # ~100 MB on disk; created sparse so the test does not write 100 MB.
    path = tmp_path / "big.npy"
    shape = (1_250_000, 10)  # float64: 100 MB
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=shape)
    mm[-3:] = np.arange(30.0).reshape(3, 10)
    mm.flush()
    del mm
    assert os.path.getsize(path) >= 100e6
    memmap = np.load(path, mmap_mode="r")
    for source in (str(path), memmap, memmap[1000:]):
        for rows in (None, 10_000):
            X = as_dask_array(source, rows_per_chunk=rows)
            graph = dict(X.__dask_graph__())
            assert len(cloudpickle.dumps(X)) < 100_000
            assert len(pickle.dumps(graph)) < 100_000
            # The pickled array still reads the right rows from the file.
            restored = pickle.loads(pickle.dumps(X))
            tail = restored[-3:].compute(scheduler="synchronous")
            np.testing.assert_array_equal(tail, np.arange(30.0).reshape(3, 10))
    # The contrast that makes the bound meaningful: the same data in memory pickles whole.
    assert len(cloudpickle.dumps(as_dask_array(np.asarray(memmap[:100_000])))) > 7_000_000


def test_relative_paths_survive_a_change_of_directory(tmp_path, monkeypatch, data):
    np.save(tmp_path / "x.npy", data)
    _zarr_store(data, tmp_path)
    monkeypatch.chdir(tmp_path)
    X_npy = as_dask_array("x.npy", rows_per_chunk=7)
    X_mm = as_dask_array(np.load("x.npy", mmap_mode="r"), rows_per_chunk=7)
    X_zarr = as_dask_array("x.zarr", rows_per_chunk=7)
    monkeypatch.chdir(tmp_path.parent)
    for X in (X_npy, X_mm, X_zarr):
        np.testing.assert_array_equal(X.compute(scheduler="synchronous"), data)


INT_DTYPES = [np.int8, np.int32, np.int64, np.uint16, np.uint64]


@pytest.mark.parametrize("dtype", [*INT_DTYPES, np.float16, np.float32, np.float64, ">f4", ">f8"])
@pytest.mark.parametrize("kind", ["numpy", "npy-str", "zarr-path", "dask"])
def test_dtypes(kind, dtype, tmp_path):
    a = (np.arange(24) % 7).reshape(8, 3).astype(dtype)
    source, _ = KINDS[kind](a, tmp_path)
    X = as_dask_array(source, rows_per_chunk=3)
    # float32 in any byte order stays float32; everything else real becomes float64.
    expected = np.float32 if np.dtype(dtype).str[1:] == "f4" else np.float64
    assert X.dtype == expected
    values = X.compute(scheduler="synchronous")
    assert values.dtype == expected and values.dtype.isnative
    np.testing.assert_array_equal(values, a.astype(expected))


def test_check_dtype_messages():
    assert check_dtype(np.int16) == np.float64
    assert check_dtype(np.float32) == np.float32
    # Both a TypeError (what it is) and a ValueError (what scikit-learn raises for it).
    with pytest.raises(TypeError, match=r"Complex data not supported: y has dtype complex128"):
        check_dtype(np.complex128, what="y")
    with pytest.raises(ValueError, match=r"y has dtype bool \(boolean\); expected a real"):
        check_dtype(np.bool_, what="y")


def _bad(name):
    """Bad inputs: name -> (build(tmp) -> (input, path or None), error class, message regex)."""

    def arr(a):
        return lambda tmp: (a, None)

    def npy(a):
        def build(tmp):
            path = tmp / "bad.npy"
            np.save(path, a, allow_pickle=True)
            return str(path), path

        return build

    def store(a):
        def build(tmp):
            path = tmp / "bad.zarr"
            z = zarr.create_array(str(path), shape=a.shape, dtype=a.dtype)
            z[...] = a
            return str(path), path

        return build

    def garbage(tmp):
        path = tmp / "garbage.npy"
        path.write_bytes(b"not a numpy file at all" * 10)
        return str(path), path

    def group(tmp):
        path = tmp / "group.zarr"
        zarr.open_group(str(path), mode="w").create_array("x", shape=(3, 3), dtype="f8")
        return str(path), path

    def unknown_chunks(tmp):
        x = da.from_array(np.arange(20.0).reshape(10, 2), chunks=(3, 2))
        return x[x[:, 0] > 4], None

    two_d = r"should be 2-D \(n_samples, n_features\)"
    cases = {
        "1-D": (arr(np.zeros(5)), ValueError, two_d + r"; got shape \(5,\)\. Reshape"),
        "3-D": (arr(np.zeros((2, 3, 4))), ValueError, two_d + r"; got shape \(2, 3, 4\)"),
        "no-rows": (arr(np.zeros((0, 3))), ValueError, r"0 sample\(s\) \(shape=\(0, 3\)\)"),
        "no-cols": (arr(np.zeros((3, 0))), ValueError, r"0 feature\(s\) \(shape=\(3, 0\)\)"),
        "complex": (arr(np.zeros((3, 2), complex)), TypeError, r"Complex.*complex128"),
        "bool": (arr(np.zeros((3, 2), bool)), TypeError, r"dtype bool \(boolean\)"),
        # Object arrays of numbers (mixed DataFrames) are converted; anything else is not.
        "object": (arr(np.array([["a", 1.0]], object)), TypeError, r"object with non-numeric"),
        "string": (arr(np.full((3, 2), "a")), TypeError, r"\(string\); expected a real numeric"),
        "bytes": (arr(np.full((3, 2), b"a")), TypeError, r"\(bytes\); expected a real numeric"),
        "list-ragged": (arr([[1.0, 2.0], [3.0]]), ValueError, "ragged"),
        "dict": (arr({"a": 1}), TypeError, "of type dict is not supported"),
        "int": (arr(3), TypeError, "of type int is not supported"),
        "unknown-chunks": (unknown_chunks, ValueError, "unknown chunk sizes.*compute_chunk_sizes"),
        "dask-bool": (lambda tmp: (da.zeros((4, 2), dtype=bool), None), TypeError, "boolean"),
        "npy-1-D": (npy(np.zeros(4)), ValueError, r"bad\.npy holds an array of shape \(4,\)"),
        "npy-3-D": (npy(np.zeros((2, 2, 2))), ValueError, r"shape \(2, 2, 2\); expected a 2-D"),
        "npy-object": (npy(np.zeros((2, 2), object)), TypeError, r"\(object\)"),
        "npy-complex": (npy(np.zeros((2, 2), np.complex64)), TypeError, r"complex64"),
        "npy-garbage": (garbage, ValueError, r"garbage\.npy is not a readable \.npy file"),
        "zarr-bool": (store(np.zeros((3, 2), bool)), TypeError, "boolean"),
        "zarr-1-D": (store(np.zeros(6)), ValueError, r"got shape \(6,\)"),
        "zarr-empty": (store(np.zeros((0, 4))), ValueError, r"0 sample\(s\)"),
        "zarr-group": (group, StoreNotFoundError, r"group\.zarr' is not a readable Zarr array"),
    }
    return cases[name]


BAD = [
    "1-D", "3-D", "no-rows", "no-cols", "complex", "bool", "object", "string", "bytes",
    "list-ragged", "dict", "int", "unknown-chunks", "dask-bool", "npy-1-D", "npy-3-D",
    "npy-object", "npy-complex", "npy-garbage", "zarr-bool", "zarr-1-D", "zarr-empty",
    "zarr-group",
]  # fmt: skip


@pytest.mark.parametrize("name", BAD)
def test_bad_input_raises_a_clear_error(name, tmp_path):
    build, error, message = _bad(name)
    source, path = build(tmp_path)
    before = tree_hash(path) if path is not None else None
    with pytest.raises(error, match=message):
        as_dask_array(source)
    if path is not None:
        assert tree_hash(path) == before


def test_what_names_the_argument():
    with pytest.raises(ValueError, match=r"^Y should be 2-D"):
        as_dask_array(np.zeros(3), what="Y")


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: str(tmp / "missing.npy"),
        lambda tmp: tmp / "missing.npy",
        lambda tmp: str(tmp / "missing.zarr"),
        lambda tmp: "file://" + str(tmp / "missing.zarr"),
        lambda tmp: f"memory://bigclust-missing-{uuid.uuid4().hex}.zarr",
        lambda tmp: str(tmp),  # a directory that is no Zarr array
    ],
    ids=["npy", "npy-pathlib", "zarr", "file-url", "memory-url", "plain-dir"],
)
def test_missing_store_names_its_path(make, tmp_path):
    target = make(tmp_path)
    with pytest.raises(StoreNotFoundError) as info:
        as_dask_array(target)
    assert str(target) in str(info.value)
    # Both what it is and the class every bad input raises.
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    assert not (tmp_path / "missing.zarr").exists(), "a missing store must not be created"


def test_zarr_path_is_opened_read_only(data, tmp_path):
    path = _zarr_store(data, tmp_path)  # compressed: read through zarr
    before = tree_hash(path)
    for source in (str(path), "file://" + str(path)):
        X = as_dask_array(source, rows_per_chunk=7)
        (reader,) = _graph_readers(X)
        assert isinstance(reader, ZarrReader)
        with pytest.raises(ValueError, match="read-only"):
            reader.array[0, 0] = 123.0
    assert tree_hash(path) == before
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[:], data)


def test_chunks_handed_to_kernels_do_not_write_through(data, tmp_path):
    # Kernels get copies read from the file, never a writable view of the user's memmap.
    for build in (_npy_path, _memmap, _npy_fortran, _zarr_uncompressed):
        source, path = build(data, tmp_path)
        before = tree_hash(path)
        X = as_dask_array(source, rows_per_chunk=7)
        block = X.blocks[1].compute(scheduler="synchronous")
        block[:] = 0.0
        assert tree_hash(path) == before
        np.testing.assert_array_equal(X.compute(scheduler="synchronous"), data)


def test_npyfile_describes_memmap_views(data, tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.asfortranarray(data))
    mm = np.load(path, mmap_mode="r")
    described = NpyFile.from_memmap(mm)
    assert described is not None and described.fortran_order and described.shape == data.shape
    columns = NpyFile.from_memmap(mm[:, 1:3])  # F-contiguous: still one block of the file
    assert columns is not None and columns.shape == (N_SAMPLES, 2)
    np.testing.assert_array_equal(columns[2:9, :], data[2:9, 1:3])
    assert NpyFile.from_memmap(mm[::2]) is None  # strided: falls back to in-memory reading
    np.testing.assert_array_equal(as_dask_array(mm[::2], rows_per_chunk=4).compute(), data[::2])


def _graph_readers(X):
    """The distinct readers (ZarrChunkFiles, ZarrReader, NpyFile) X's tasks read through."""
    found = {}
    for task in dict(X.__dask_graph__()).values():
        for arg in getattr(task, "args", ()):
            value = getattr(arg, "value", arg)
            if isinstance(value, (ZarrChunkFiles, ZarrReader, NpyFile)):
                found[id(value)] = value
    return list(found.values())


def _graph_sources(X):
    return [type(v).__name__ for v in _graph_readers(X)]


@pytest.mark.parametrize(
    "kwargs, reader",
    [
        (dict(compressors=None), "ZarrChunkFiles"),
        (dict(compressors=None, chunk_key_encoding={"name": "default", "separator": "."}),
         "ZarrChunkFiles"),
        (dict(compressors=None, dtype=">f8"), "ZarrChunkFiles"),
        (dict(compressors=None, dtype=np.int16), "ZarrChunkFiles"),
        (dict(), "ZarrReader"),  # Zstd by default
        (dict(compressors=None, chunks=(6, 3)), "ZarrReader"),  # columns split across chunks
        (dict(compressors=None, shards=(12, 5)), "ZarrReader"),
        (dict(compressors=None, zarr_format=2), "ZarrReader"),
        (dict(compressors=None, chunk_key_encoding={"name": "v2"}), "ZarrReader"),
    ],
    ids=["plain", "dot-separator", "big-endian", "int16", "zstd", "split-columns", "sharded",
         "zarr-v2", "v2-keys"],
)  # fmt: skip
def test_zarr_reader_choice_and_values(kwargs, reader, data, tmp_path):
    kwargs = {"chunks": (6, N_FEATURES), **kwargs}
    dtype = np.dtype(kwargs.pop("dtype", data.dtype))
    a = (data * 100).astype(dtype)
    path = _zarr_store(a, tmp_path, **kwargs)
    for rows in (None, 1, 4, 6, 13, 100):
        X = as_dask_array(str(path), rows_per_chunk=rows)
        assert _graph_sources(X) == [reader]
        np.testing.assert_array_equal(X.compute(scheduler="threads"), a.astype(X.dtype))


def test_missing_chunk_files_read_as_the_fill_value(tmp_path):
    a = np.arange(40 * 3, dtype=np.float32).reshape(40, 3) + 1
    a[10:20] = 0.0  # a whole chunk of the fill value: zarr does not write its file
    path = tmp_path / "x.zarr"
    z = zarr.create_array(str(path), shape=a.shape, chunks=(10, 3), dtype=a.dtype,
                          compressors=None, fill_value=0.0)  # fmt: skip
    z[:] = a
    assert not (path / "c" / "1" / "0").exists()
    b = zarr.create_array(str(tmp_path / "y.zarr"), shape=a.shape, chunks=(10, 3),
                          dtype=a.dtype, compressors=None, fill_value=7.5)  # fmt: skip
    b[:20] = a[:20]  # chunks 2 and 3 never written
    for source, expected in (
        (path, a),
        (tmp_path / "y.zarr", np.vstack([a[:20], np.full((20, 3), 7.5)])),
    ):
        X = as_dask_array(str(source), rows_per_chunk=7)
        assert _graph_sources(X) == ["ZarrChunkFiles"]
        np.testing.assert_array_equal(X.compute(), expected)


def test_truncated_chunk_file_is_an_error(data, tmp_path):
    path = _zarr_store(data, tmp_path, chunks=(10, N_FEATURES), compressors=None)
    chunk = path / "c" / "1" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-8])
    X = as_dask_array(str(path), rows_per_chunk=10)
    with pytest.raises(ValueError, match=r"c/1/0 holds .* bytes from row 10; expected"):
        X.compute(scheduler="synchronous")


def test_default_chunks_hold_whole_zarr_chunks(tmp_path):
    # A compressed Zarr chunk split between two tasks would be decompressed twice.
    a = np.zeros((100, 4))
    z_chunk_rows = 30
    for compressors, expected in ((None, 25), ("auto", 30)):
        path = tmp_path / f"{compressors}.zarr"
        _zarr_store(a, tmp_path / str(compressors), chunks=(z_chunk_rows, 4),
                    compressors=compressors)  # fmt: skip
        path = tmp_path / str(compressors) / "x.zarr"
        X = as_dask_array(str(path), chunk_bytes=25 * 4 * 8)
        assert X.chunks[0][0] == expected
        X = as_dask_array(str(path), chunk_bytes=80 * 4 * 8)  # 80 rows -> 3 Zarr chunks
        assert X.chunks[0] == (90, 10)
        assert as_dask_array(str(path), rows_per_chunk=7).chunks[0][0] == 7  # explicit wins


def test_copy_on_write_memmap_keeps_its_in_memory_changes(data, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, data)
    mm = np.load(path, mmap_mode="c")
    mm[3] = 123.0  # lives in this process only; the file still holds data[3]
    expected = data.copy()
    expected[3] = 123.0
    np.testing.assert_array_equal(as_dask_array(mm, rows_per_chunk=7).compute(), expected)
    shared = np.load(path, mmap_mode="r+")
    shared[4] = -1.0  # a shared mapping's writes are in the file: read by path
    expected[3], expected[4] = data[3], -1.0
    np.testing.assert_array_equal(as_dask_array(shared, rows_per_chunk=7).compute(), expected)
    assert len(cloudpickle.dumps(as_dask_array(shared))) < 5_000
