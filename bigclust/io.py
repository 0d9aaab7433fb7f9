"""Data layer: any supported input becomes one validated, row-chunked Dask array.

Every estimator calls :func:`as_dask_array` first. It reads metadata only (shape, dtype,
chunking), never the data, and opens user files and stores read-only.

Supported inputs
----------------
- a NumPy array (wrapped in memory),
- an ``np.memmap`` or a path to a ``.npy`` file: reopened by path inside each task, so the task
  graph holds the file name and offsets, never the data,
- a ``zarr.Array``, or a local path / fsspec URL of a Zarr array (``storage_options`` passed on);
  an uncompressed Zarr v3 array on local disk is read straight from its chunk files
  (:class:`ZarrChunkFiles`, about 3x faster than through zarr), anything else through zarr,
  with whole Zarr chunks per task,
- a Dask array: rechunked so that all columns of a row sit in one chunk.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import uuid
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from zarr.storage import WrapperStore

from bigclust import _storage
from bigclust._storage import IncompleteStoreError

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "CorruptChunkError",
    "IncompleteStoreError",
    "InputDtypeError",
    "MissingChunkError",
    "NpyFile",
    "StoreAccessError",
    "StoreNotFoundError",
    "ZarrChunkFiles",
    "ZarrReader",
    "as_dask_array",
    "check_dtype",
    "is_lazy_input",
    "rows_per_chunk",
]

#: Default size of one row chunk. Megabytes amortise the per-task overhead of a
#: distributed scheduler while keeping (chunk bytes x threads) small on every worker. 16 MiB
#: rather than 64: glibc serves blocks over 32 MiB with a fresh mmap every time, so each
#: task of 64 MiB page-faults and zeroes its buffers anew; a pass over a 1.28 GB store ran
#: 1.3x faster with 16 MiB tasks (benchmarks/bench_io.py and the commit that set this).
DEFAULT_CHUNK_BYTES = 16 * 2**20

#: Data smaller than MIN_CHUNKS x DEFAULT_CHUNK_BYTES is still split into MIN_CHUNKS chunks
#: (of at least MIN_CHUNK_BYTES), so every core of a small cluster has work.
MIN_CHUNKS = 8
MIN_CHUNK_BYTES = 2**20


#: Chunks per pass at most, by default. A Dask scheduler runs a few thousand tasks a second
#: and a pass costs about two tasks per chunk (benchmarks/bench_scale.py, docs/scale.md):
#: past this, the scheduler rather than the workers would set the pace of a pass over a large
#: store, so chunks grow with the data instead (1 TB: 4,096 chunks of 244 MiB).
MAX_CHUNKS_PER_PASS = 4096

#: The largest chunk the policy chooses: a worker holds a few chunks per thread (the one in
#: work, its float64 temporaries and the next one read), so 4 x this per thread must fit in
#: its memory limit. Past MAX_CHUNKS_PER_PASS x MAX_CHUNK_BYTES (1 TiB) chunks stop growing.
MAX_CHUNK_BYTES = 256 * 2**20


class InputDtypeError(TypeError, ValueError):
    """The input's dtype is not real numeric (complex, boolean, strings, objects).

    A ``TypeError`` (what it is) and a ``ValueError`` (what scikit-learn raises for it).
    """


class StoreNotFoundError(FileNotFoundError, ValueError):
    """A path or URL given as input names no readable array.

    Subclasses both ``FileNotFoundError`` (what it is) and ``ValueError`` (the error
    class every bad input raises in bigclust).
    """


class StoreAccessError(PermissionError, ValueError):
    """A store exists (or may exist) but may not be read with the credentials given."""


class MissingChunkError(StoreNotFoundError):
    """A chunk that existed when its store was opened is gone when read.

    Zarr reads a missing chunk as the fill value (it does not write chunks that hold only
    the fill value); bigclust records which chunks exist when it opens a store, so a chunk
    deleted afterwards (or a whole store deleted during a fit) is an error, not zeros.
    """


class CorruptChunkError(ValueError):
    """A chunk could not be decoded: truncated, corrupt, or its checksum does not match."""


def rows_per_chunk(
    n_features: int, itemsize: int, chunk_bytes: int | None = None, n_samples: int | None = None
) -> int:
    """Rows per chunk so that one chunk holds about ``chunk_bytes`` bytes.

    Parameters
    ----------
    n_features : int
        Number of columns.
    itemsize : int
        Bytes per element of the array as the kernels see it.
    chunk_bytes : int, default=None
        Target size of one chunk. By default :data:`DEFAULT_CHUNK_BYTES`; data smaller than
        ``MIN_CHUNKS`` such chunks is split into ``MIN_CHUNKS`` chunks of at least
        ``MIN_CHUNK_BYTES`` so that every core gets work, and data larger than
        ``MAX_CHUNKS_PER_PASS`` such chunks get larger chunks (up to ``MAX_CHUNK_BYTES``) so
        that a pass has at most ``MAX_CHUNKS_PER_PASS`` of them.
    n_samples : int, optional
        When given, the result is capped at ``n_samples``.

    Returns
    -------
    int
        At least 1.
    """
    row_bytes = max(1, n_features * itemsize)
    if chunk_bytes is None:
        rows = DEFAULT_CHUNK_BYTES // row_bytes
        if n_samples is not None:  # small data: MIN_CHUNKS chunks, unless they get tiny
            rows = min(rows, max(-(-n_samples // MIN_CHUNKS), MIN_CHUNK_BYTES // row_bytes))
            # large data: a bounded number of tasks per pass, within worker memory
            bounded = -(-n_samples // MAX_CHUNKS_PER_PASS)
            rows = max(rows, min(bounded, MAX_CHUNK_BYTES // row_bytes))
    else:
        if int(chunk_bytes) <= 0:
            raise ValueError(f"chunk_bytes={chunk_bytes} should be > 0.")
        rows = int(chunk_bytes) // row_bytes
    if n_samples is not None:
        rows = min(rows, n_samples)
    return int(max(1, rows))


# ``as_dask_array`` takes an argument of the same name; keep a handle on the function.
_rows_per_chunk = rows_per_chunk


def check_dtype(dtype: np.dtype, what: str = "X") -> np.dtype:
    """Return the dtype the kernels compute in, or raise ``TypeError``.

    float32 and float64 are kept; integers and other real floats become float64, as in
    scikit-learn. Booleans, complex numbers, strings and objects are rejected.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return np.dtype(f"float{8 * dtype.itemsize}")  # native byte order
    if dtype.kind in "iuf":
        return np.dtype(np.float64)
    if dtype.kind == "c":
        raise InputDtypeError(
            f"Complex data not supported: {what} has dtype {dtype}; expected a real numeric "
            "dtype (float32, float64 or an integer type)."
        )
    names = {"b": "boolean", "O": "object", "U": "string", "S": "bytes"}
    kind = names.get(dtype.kind, f"non-numeric ({dtype})")
    raise InputDtypeError(
        f"{what} has dtype {dtype} ({kind}); expected a real numeric dtype "
        "(float32, float64 or an integer type)."
    )


@dataclass(frozen=True)
class NpyFile:
    """A read-only view of a raw array in a file, reopened by path in every task.

    Pickles as its path and layout (a few hundred bytes), so a Dask graph over a huge
    ``.npy`` file or ``np.memmap`` stays small and any worker that sees the same path can read
    it. Rows are read with one ``np.fromfile`` call per chunk (a plain sequential read),
    which is faster than faulting in a memory map page by page.
    """

    path: str
    dtype: np.dtype
    shape: tuple[int, int]
    offset: int = 0
    fortran_order: bool = False

    @property
    def ndim(self) -> int:
        return 2

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @classmethod
    def from_npy(cls, path: str | os.PathLike) -> NpyFile:
        """Read only the header of a ``.npy`` file."""
        # An absolute path keeps tasks valid on workers (or later calls) with another cwd.
        path = os.path.abspath(os.fspath(path))
        with open(path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
            except ValueError as err:
                raise ValueError(f"{path} is not a readable .npy file ({err}).") from None
            offset = f.tell()
        if len(shape) != 2:
            raise ValueError(f"{path} holds an array of shape {shape}; expected a 2-D array.")
        return cls(path, np.dtype(dtype), tuple(shape), offset, bool(fortran_order))

    @classmethod
    def from_memmap(cls, array: np.memmap) -> NpyFile | None:
        """Describe a memmap by file and byte offset; ``None`` if it is not a plain row block.

        Views of a memmap keep ``filename`` but not their own offset, so the offset is found
        from the data pointer relative to the start of the mapped buffer.
        """
        buffer = getattr(array, "_mmap", None)
        if buffer is None or not isinstance(buffer, mmap.mmap) or array.filename is None:
            return None
        if array.mode in ("c", "copyonwrite"):
            return None  # its writes stay in this process's memory, not in the file
        if array.ndim != 2:
            return None
        fortran = not array.flags.c_contiguous and array.flags.f_contiguous
        if not (array.flags.c_contiguous or fortran):
            return None
        map_start = np.frombuffer(buffer, dtype=np.uint8).ctypes.data
        map_offset = array.offset - array.offset % mmap.ALLOCATIONGRANULARITY
        offset = map_offset + (array.ctypes.data - map_start)
        path = os.path.abspath(os.fspath(array.filename))
        return cls(path, array.dtype, tuple(array.shape), offset, fortran)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        start, stop, step = rows.indices(self.shape[0])
        if self.fortran_order or step != 1:
            whole = np.memmap(
                self.path,
                self.dtype,
                "r",
                self.offset,
                self.shape,
                order="F" if self.fortran_order else "C",
            )
            return np.array(whole[rows, cols])
        n_rows = max(0, stop - start)
        row_bytes = self.shape[1] * self.dtype.itemsize
        block = np.fromfile(
            self.path,
            dtype=self.dtype,
            count=n_rows * self.shape[1],
            offset=self.offset + start * row_bytes,
        ).reshape(n_rows, self.shape[1])
        return block[:, cols]


#: Chunks hinted to the kernel ahead of the one being read (:meth:`ZarrChunkFiles._read_ahead`):
#: one per worker thread of a small cluster keeps the disk busy while the threads compute.
READ_AHEAD_CHUNKS = 2


@dataclass(frozen=True)
class ZarrChunkFiles:
    """An uncompressed Zarr v3 array in a local directory, read straight from its chunk files.

    Zarr's own read path copies each chunk twice and hops through its event loop; for an
    uncompressed array (the layout ``make-blobs`` writes by default) a chunk file is just
    the C-order bytes of the chunk, so ``readinto`` a preallocated block is the whole job:
    about 2-3x faster end to end (``benchmarks/bench_io.py``). Like :class:`NpyFile` it
    pickles as a path and a few numbers, and only ever opens files for reading.

    Only arrays whose every row chunk holds all columns and whose codecs are ``bytes``, or
    ``bytes`` then ``crc32c`` (what bigclust writes), are described (see :meth:`from_zarr`);
    anything else is read through zarr. With ``crc32c`` every chunk is read whole and its
    checksum verified (about 1.2 ms per 16 MiB chunk, 13 GB/s).

    ``absent`` holds the row chunks that had no file when the array was opened (Zarr does not
    write chunks that hold only the fill value): those read as the fill value, and any other
    missing file is a :class:`MissingChunkError`.
    """

    root: str
    dtype: np.dtype  # as stored, byte order included
    shape: tuple[int, int]
    chunk_rows: int
    separator: str = "/"
    fill_value: Any = 0
    checksum: bool = False
    absent: frozenset[int] = frozenset()

    @property
    def ndim(self) -> int:
        return 2

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @classmethod
    def from_zarr(cls, array: Any) -> ZarrChunkFiles | None:
        """Describe ``array`` if it is a plain uncompressed Zarr v3 array on local disk.

        Decided from the array's metadata as the Zarr v3 specification writes it (regular
        grid, default chunk keys, the ``bytes`` codec optionally followed by ``crc32c``, no
        storage transformer), so it does not depend on zarr-python's internal classes.
        """
        try:
            from zarr.storage import LocalStore
        except ImportError:  # pragma: no cover - zarr is a hard dependency
            return None
        if not isinstance(getattr(array, "store", None), LocalStore) or len(array.shape) != 2:
            return None
        try:
            meta = array.metadata.to_dict()
            if meta.get("zarr_format") != 3 or meta.get("storage_transformers"):
                return None
            grid, keys = meta["chunk_grid"], meta["chunk_key_encoding"]
            codec, *checksum = meta["codecs"]
            chunk_shape = tuple(grid["configuration"]["chunk_shape"])
            separator = keys.get("configuration", {}).get("separator", "/")
        except (AttributeError, KeyError, TypeError, ValueError):
            return None  # a layout this reader does not know: zarr reads it
        if (
            grid["name"] != "regular"
            or keys["name"] != "default"
            or codec["name"] != "bytes"
            or [c.get("name") for c in checksum] not in ([], ["crc32c"])
            or chunk_shape[1] != array.shape[1]
        ):
            return None
        dtype = np.dtype(array.dtype)
        if dtype.kind not in "iuf":
            return None
        endian = (codec.get("configuration") or {}).get("endian", "little")
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
        root = os.path.abspath(os.path.join(str(array.store.root), array.path))
        fill = array.fill_value
        chunk_rows = int(chunk_shape[0])
        n_chunks = -(-array.shape[0] // chunk_rows)
        absent = (
            frozenset() if _storage.all_chunks_written(array.attrs)
            else _absent_chunk_files(root, separator, n_chunks)
        )  # fmt: skip
        return cls(root, dtype, tuple(array.shape), chunk_rows, separator,
                   fill.item() if hasattr(fill, "item") else fill, bool(checksum),
                   absent)  # fmt: skip

    def _chunk_key(self, index: int) -> str:
        return f"c{self.separator}{index}{self.separator}0"

    def _where(self, index: int) -> str:
        lo = index * self.chunk_rows
        hi = min(self.shape[0], lo + self.chunk_rows)
        return (
            f"chunk {self._chunk_key(index)} (rows {lo}-{hi - 1}) of the Zarr array at "
            f"{self.root!r}"
        )

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            return self[start:stop, cols][::step]
        n_features = self.shape[1]
        row_bytes = n_features * self.dtype.itemsize
        out = np.empty((max(0, stop - start), n_features), dtype=self.dtype)
        lo = start
        while lo < stop:
            index = lo // self.chunk_rows
            hi = min(stop, (index + 1) * self.chunk_rows)
            part = out[lo - start : hi - start]
            path = os.path.join(self.root, self._chunk_key(index))
            try:
                f = open(path, "rb", buffering=0)  # closed below
            except FileNotFoundError:
                if index not in self.absent:
                    raise MissingChunkError(
                        f"{self._where(index)} is missing: its file {path!r} existed when the "
                        "array was opened (or the array was written by bigclust, which writes "
                        "every chunk). The store was deleted or changed while being read."
                    ) from None
                part[...] = self.fill_value  # never written: it holds only the fill value
            else:
                with f:
                    if hi == stop:
                        self._read_ahead(index + 1)
                    if self.checksum:
                        self._read_checked(f, index, lo - index * self.chunk_rows, part)
                    else:
                        f.seek((lo - index * self.chunk_rows) * row_bytes)
                        got = f.readinto(memoryview(part).cast("B"))
                        if got != part.nbytes:
                            raise CorruptChunkError(
                                f"{self._where(index)} is truncated: its file {path} holds "
                                f"{got} bytes from row {lo}; expected {part.nbytes}."
                            )
            lo = hi
        return out[:, cols]

    def _read_ahead(self, index: int) -> None:
        """Ask the kernel to start reading the files of the next :data:`READ_AHEAD_CHUNKS`
        chunks (``posix_fadvise(WILLNEED)``, which returns at once).

        A worker thread reads a chunk, then computes on it: without a hint the disk idles
        while it computes, and a pass over a store larger than the page cache takes the read
        time plus the compute time. Workers take chunks roughly in row order, so the next
        ones are about to be read, by this worker or another; a hint for a chunk already
        cached costs one ``open``.
        """
        if not hasattr(os, "posix_fadvise"):
            return
        for ahead in range(index, min(index + READ_AHEAD_CHUNKS, self._n_chunks)):
            if ahead in self.absent:
                continue
            try:
                fd = os.open(os.path.join(self.root, self._chunk_key(ahead)), os.O_RDONLY)
            except OSError:
                continue  # a missing chunk is reported when it is read, not when hinted
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)

    @property
    def _n_chunks(self) -> int:
        return -(-self.shape[0] // self.chunk_rows)

    def _read_checked(self, f, index: int, first_row: int, part: np.ndarray) -> None:
        """Read chunk ``index`` whole, verify its crc32c, put its rows from ``first_row`` on
        into ``part``. Zarr stores edge chunks padded to the full chunk shape."""
        import google_crc32c  # a dependency of zarr, which writes the crc32c codec with it

        n_bytes = self.chunk_rows * self.shape[1] * self.dtype.itemsize
        whole = first_row == 0 and part.nbytes == n_bytes
        buffer = part if whole else np.empty(n_bytes, dtype=np.uint8)
        got = f.readinto(memoryview(buffer).cast("B"))
        trailer = f.read(5)  # exactly the 4 checksum bytes remain
        if got != n_bytes or len(trailer) != 4:
            size = got + len(trailer)
            raise CorruptChunkError(
                f"{self._where(index)} is truncated or corrupt: its file holds {size} bytes "
                f"or more; expected {n_bytes} bytes and a 4-byte crc32c."
            )
        if google_crc32c.value(buffer) != int.from_bytes(trailer, "little"):
            raise CorruptChunkError(
                f"{self._where(index)} is corrupt: its crc32c checksum does not match its content."
            )
        if not whole:
            start = first_row * self.shape[1] * self.dtype.itemsize
            part.reshape(-1).view(np.uint8)[:] = buffer[start : start + part.nbytes]


def _absent_chunk_files(root: str, separator: str, n_chunks: int) -> frozenset[int]:
    """Row chunks of a local 2-D Zarr v3 array (one column chunk) without a chunk file.

    One directory listing, plus one ``stat`` per row directory with ``/`` keys: about
    2 s for a million chunks, once per opening, against a pass over terabytes.
    """
    present = set()
    if separator == "/":
        base = os.path.join(root, "c")
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in os.scandir(base):
                if entry.name.isdigit() and os.path.isfile(os.path.join(entry.path, "0")):
                    present.add(int(entry.name))
    else:
        prefix, suffix = f"c{separator}", f"{separator}0"
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in os.scandir(root):
                name = entry.name
                if name.startswith(prefix) and name.endswith(suffix):
                    middle = name[len(prefix) : -len(suffix)]
                    if middle.isdigit():
                        present.add(int(middle))
    return frozenset(i for i in range(n_chunks) if i not in present)


_METADATA_KEYS = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata")


class _CheckedStore(WrapperStore):
    """Reads through another store; a chunk key it returns nothing for is an error unless
    it was already absent when the store was opened (``absent``)."""

    def __init__(self, store, absent: frozenset[str] = frozenset(), label: str = ""):
        super().__init__(store)
        self.absent, self.label = absent, label

    def _with_store(self, store):
        return type(self)(store, self.absent, self.label)

    def _check(self, key: str, value):
        if value is None and not key.endswith(_METADATA_KEYS) and key not in self.absent:
            raise MissingChunkError(
                f"chunk {key} of the Zarr array at {self.label!r} is missing: it existed "
                "when the array was opened (or the array was written by bigclust, which "
                "writes every chunk). The store was deleted or changed while being read."
            )
        return value

    async def get(self, key, prototype, byte_range=None):
        return self._check(key, await self._store.get(key, prototype, byte_range))

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        values = await self._store.get_partial_values(prototype, key_ranges)
        return [self._check(k, v) for (k, _), v in zip(key_ranges, values, strict=True)]


def _absent_chunk_keys(array: Any) -> frozenset[str]:
    """Chunk keys (relative to the store root) of ``array``'s grid that hold no object.

    One listing of the array's prefix: on object storage about one request per 1,000
    chunks, paid once when the array is opened; only the absent keys (usually none) are kept.
    """
    from zarr.core.sync import sync

    meta = array.metadata
    grid = getattr(meta, "chunk_grid", None)
    chunk_shape = getattr(grid, "chunk_shape", None) or meta.chunks
    counts = [-(-s // c) for s, c in zip(array.shape, chunk_shape, strict=True)]
    prefix = f"{array.path}/" if array.path else ""

    async def listing():
        return {key async for key in array.store.list_prefix(prefix)}

    present = sync(listing())
    absent = set()
    for coords in itertools.product(*map(range, counts)):
        key = prefix + meta.encode_chunk_key(coords)
        if key not in present:
            absent.add(key)
    return frozenset(absent)


@dataclass(frozen=True)
class ZarrReader:
    """A Zarr array read through zarr, whose errors name the chunk and the store.

    The array is opened on a store wrapper that raises :class:`MissingChunkError` for chunks
    that existed at opening and are gone when read; a chunk that fails to decode (truncated,
    corrupt, checksum mismatch) raises :class:`CorruptChunkError` naming it. Both checks cost
    nothing on a clean read: the chunk is looked for only after a read has failed.
    """

    array: Any
    label: str

    @classmethod
    def from_zarr(cls, array: Any) -> ZarrReader:
        label = _describe_store(array)
        try:
            import zarr

            absent = (
                frozenset() if _storage.all_chunks_written(array.attrs)
                else _absent_chunk_keys(array)
            )  # fmt: skip
            store = _CheckedStore(array.store.with_read_only(True), absent, label)
            checked = zarr.open_array(store=store, path=array.path, mode="r")
        except (AttributeError, NotImplementedError, TypeError):
            checked = array  # a store that cannot be wrapped: zarr's own reading
        return cls(checked, label)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    @property
    def ndim(self) -> int:
        return len(self.array.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.array.shape))

    def __dask_tokenize__(self):
        store = self.array.store
        return ("ZarrReader", self.label, self.shape, str(self.dtype), self.array.chunks,
                sorted(getattr(store, "absent", ())))  # fmt: skip

    def __getitem__(self, key):
        try:
            return self.array[key]
        except MissingChunkError:
            raise
        except (ValueError, RuntimeError, OSError, EOFError) as err:
            culprit = self._failing_chunk(key)
            if culprit is None:
                raise
            where, chunk_err = culprit
            raise CorruptChunkError(
                f"{where} of the Zarr array at {self.label!r} could not be read: it is "
                f"truncated or corrupt ({type(chunk_err).__name__}: {chunk_err})."
            ) from err

    def _failing_chunk(self, key):
        """Read the chunks of ``key`` one by one; the first that fails and its error."""
        rows = key[0] if isinstance(key, tuple) else key
        start, stop, _ = rows.indices(self.shape[0])
        chunk_rows, chunk_cols = self.array.chunks[0], self.array.chunks[1]
        for i in range(start // chunk_rows, -(-stop // chunk_rows)):
            for j in range(-(-self.shape[1] // chunk_cols)):
                r = slice(i * chunk_rows, min(self.shape[0], (i + 1) * chunk_rows))
                c = slice(j * chunk_cols, min(self.shape[1], (j + 1) * chunk_cols))
                try:
                    self.array[r, c]
                except (ValueError, RuntimeError, OSError, EOFError) as err:
                    name = self.array.metadata.encode_chunk_key((i, j))
                    return f"chunk {name} (rows {r.start}-{r.stop - 1})", err
        return None


def as_dask_array(
    X: Any,
    *,
    chunk_bytes: int | None = None,
    rows_per_chunk: int | None = None,
    storage_options: dict | None = None,
    what: str = "X",
) -> da.Array:
    """Turn any supported input into a validated 2-D Dask array chunked along rows only.

    No data is read: validation uses the shape and dtype alone. Non-finite values are found
    by the first pass that reads the data (see :mod:`bigclust.driver`).

    Parameters
    ----------
    X : ndarray, np.memmap, str or PathLike, zarr.Array or dask.array.Array
        The data, of shape (n_samples, n_features). A string or path names a ``.npy`` file
        or a Zarr array (local path or fsspec URL such as ``s3://bucket/data.zarr``).
    chunk_bytes : int, optional
        Target bytes per chunk (default :data:`DEFAULT_CHUNK_BYTES`). Ignored for Dask
        input unless given, in which case its row chunks are changed too.
    rows_per_chunk : int, optional
        Explicit rows per chunk; overrides ``chunk_bytes``.
    storage_options : dict, optional
        Passed to fsspec when ``X`` is a URL.
    what : str, default="X"
        Name used in error messages.

    Returns
    -------
    dask.array.Array of shape (n_samples, n_features)
        float32 or float64, one chunk along columns.

    Raises
    ------
    TypeError
        Unsupported input type, or a dtype that is not real numeric.
    ValueError
        Not 2-D, or an empty dimension, or unknown chunk sizes.
    StoreNotFoundError
        A path or URL that names no array.
    """
    explicit_rows = rows_per_chunk is not None or chunk_bytes is not None
    source = _open(X, storage_options, what)
    shape = tuple(source.shape)
    if len(shape) != 2:
        hint = (
            " Reshape your data either using X.reshape(-1, 1) if it has a single feature or "
            "X.reshape(1, -1) if it contains a single sample."
            if len(shape) == 1
            else ""
        )
        raise ValueError(f"{what} should be 2-D (n_samples, n_features); got shape {shape}.{hint}")
    if any(isinstance(s, float) and np.isnan(s) for s in shape):
        raise ValueError(
            f"{what} has unknown chunk sizes (shape {shape}); call "
            "X.compute_chunk_sizes() before passing it."
        )
    n_samples, n_features = shape
    for count, name in ((n_samples, "sample"), (n_features, "feature")):
        if count == 0:
            raise ValueError(
                f"{what} has 0 {name}(s) (shape={shape}) while a minimum of 1 is required."
            )
    dtype = check_dtype(source.dtype, what)
    rows = _rows(rows_per_chunk, chunk_bytes, n_features, dtype.itemsize, n_samples)

    if isinstance(source, da.Array):
        array = source
        if explicit_rows:
            array = array.rechunk((rows, n_features))
        elif len(array.chunks[1]) > 1:
            array = array.rechunk({1: n_features})
    elif _is_zarr_array(source):
        _storage.check_complete(source.attrs, _describe_store(source))
        raw = ZarrChunkFiles.from_zarr(source)
        zarr_rows = source.chunks[0]
        whole = raw is None or raw.checksum
        if rows_per_chunk is None and rows < n_samples and (zarr_rows <= rows or whole):
            # Whole Zarr chunks per task: a compressed (or checksummed) chunk split between
            # two tasks is read, and decompressed or verified, twice. (Plain uncompressed
            # files read any row range cheaply.)
            rows = min(n_samples, max(1, round(rows / zarr_rows)) * zarr_rows)
        reader = raw if raw is not None else ZarrReader.from_zarr(source)
        # The reader inline in every task (a few hundred bytes, pickled once per graph):
        # with a separate key for it, dask fuses that key into a lone chunk's task and names
        # the result after the chunk, so the same key reached the scheduler once as a getter
        # and once as an alias ("Detected different `run_spec`") on repeated fits.
        array = da.from_array(
            reader, chunks=(rows, n_features), asarray=False, fancy=False, inline_array=True
        )
    elif isinstance(source, np.ndarray):
        array = _wrap_numpy(source, rows)
    else:  # NpyFile: tasks hold its path and offsets, and read their rows when they run
        array = da.from_array(source, chunks=(rows, n_features), asarray=False, fancy=False)
    if array.dtype != dtype:
        array = array.astype(dtype)
    return array


def _rows(rows_per_chunk, chunk_bytes, n_features, itemsize, n_samples) -> int:
    if rows_per_chunk is not None:
        if int(rows_per_chunk) < 1:
            raise ValueError(f"rows_per_chunk={rows_per_chunk} should be >= 1.")
        return min(int(rows_per_chunk), n_samples)
    return _rows_per_chunk(n_features, itemsize, chunk_bytes, n_samples)


def is_lazy_input(X: Any) -> bool:
    """True for inputs whose per-row outputs should stay lazy: Dask arrays, Zarr arrays and
    paths/URLs. In-memory inputs (NumPy arrays, memmaps, lists, DataFrames) give NumPy."""
    return isinstance(X, (str, os.PathLike, da.Array)) or _is_zarr_array(X)


def _wrap_numpy(X: np.ndarray, rows: int) -> da.Array:
    """A Dask array whose chunks are views of X (``da.from_array`` copies the data)."""
    name = "numpy-" + uuid.uuid4().hex
    starts = range(0, X.shape[0], rows)
    graph = {(name, i, 0): X[start : start + rows] for i, start in enumerate(starts)}
    chunks = (tuple(min(rows, X.shape[0] - start) for start in starts), (X.shape[1],))
    return da.Array(graph, name, chunks, dtype=X.dtype)


def _describe_store(array: Any) -> str:
    """Where a Zarr array lives, for messages: a local path or a URL."""
    store = getattr(array, "store", None)
    fs = getattr(store, "fs", None)
    try:
        if fs is not None:
            base = fs.unstrip_protocol(store.path)
        elif getattr(store, "root", None) is not None:
            base = str(store.root)
        else:
            base = str(getattr(array, "store_path", array))
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - exotic stores
        base = str(store)
    path = getattr(array, "path", "")
    return f"{base.rstrip('/')}/{path}" if path else base


def _is_zarr_array(obj: Any) -> bool:
    try:
        import zarr
    except ImportError:  # pragma: no cover - zarr is a hard dependency
        return False
    return isinstance(obj, zarr.Array)


def _open(X: Any, storage_options: dict | None, what: str):
    """Return an array-like with shape and dtype for X, reading no data."""
    if isinstance(X, da.Array):
        return X
    if isinstance(X, np.memmap):
        described = NpyFile.from_memmap(X)
        return described if described is not None else np.asarray(X)
    if isinstance(X, np.ndarray):
        return _numeric_objects(X, what) if X.dtype == object else X
    if _is_zarr_array(X):
        return X
    if isinstance(X, (str, os.PathLike)):
        return _open_path(os.fspath(X), storage_options, what)
    if _is_sparse(X):
        raise TypeError(
            f"A sparse matrix was passed as {what}, but dense data is required: sparse input "
            "is not supported. Use X.toarray() to convert it to a dense NumPy array."
        )
    if isinstance(X, (list, tuple)) or hasattr(X, "__array__"):
        try:
            array = np.asarray(X)
        except ValueError as err:
            raise ValueError(f"{what} is a ragged sequence: {err}") from None
        return _numeric_objects(array, what) if array.dtype == object else array
    raise TypeError(
        f"{what} of type {type(X).__name__} is not supported; pass a NumPy array, an "
        "np.memmap or .npy path, a zarr.Array or Zarr path/URL, or a Dask array."
    )


def _is_sparse(X: Any) -> bool:
    import scipy.sparse

    return scipy.sparse.issparse(X)


def _numeric_objects(X: np.ndarray, what: str) -> np.ndarray:
    """An object array of numbers (e.g. from a mixed DataFrame) becomes float64."""
    try:
        return X.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise InputDtypeError(
            f"{what} has dtype object with non-numeric values ({err}); expected real numbers."
        ) from None


def _open_path(path: str, storage_options: dict | None, what: str):
    is_url = "://" in path
    if not is_url and path.endswith(".npy"):
        if not os.path.isfile(path):
            raise StoreNotFoundError(f"{what}: no .npy file at {path!r}.")
        return NpyFile.from_npy(path)
    import zarr

    if not is_url and not os.path.exists(path):
        raise StoreNotFoundError(f"{what}: no Zarr array or .npy file at {path!r}.")
    if not is_url:
        # Absolute, so the graph stays valid on workers (or later calls) with another cwd.
        path = os.path.abspath(path)
    try:
        # mode="r" opens read-only: bigclust never writes to a user's store.
        return zarr.open_array(path, mode="r", storage_options=storage_options)
    except ImportError as err:  # the URL's fsspec backend (s3fs, ...) is not installed
        raise _storage.backend_import_error(path, err) from None
    except FileNotFoundError as err:
        raise StoreNotFoundError(f"{what}: no Zarr array at {path!r} ({err}).") from err
    except PermissionError as err:  # wrong credentials, or none
        raise StoreAccessError(
            f"{what}: may not read {path!r}: access denied ({err}). Check the credentials "
            "(storage_options, or the AWS_* environment variables of the client and workers)."
        ) from err
    except (KeyError, ValueError, TypeError) as err:
        raise StoreNotFoundError(f"{what}: {path!r} is not a readable Zarr array ({err}).") from err
