"""Outputs that are either complete or absent: Zarr stores and directories written atomically.

A reader must never mistake a half-written output (a labels store whose writer was killed,
a model directory cut short) for a complete one. Two mechanisms, chosen by where it goes:

- **Rename** (local paths, ``file://`` URLs): everything is written under a temporary name in
  the same parent directory (``.NAME.tmp-XXXXXXXX``) and renamed into place when complete.
  A rename within one file system is atomic: the path holds the old output or the new one,
  never part of one. A writer killed mid-way leaves only the hidden temporary directory.
- **Completion marker** (object storage: ``s3://``, ``gs://``, ... where "rename" is a copy
  and a delete per object): the store is written in place with ``"bigclust": {"complete":
  false}`` in its attributes and marked ``true`` by one last metadata write when every chunk is
  in. bigclust refuses to read a store marked incomplete (:class:`IncompleteStoreError`);
  other Zarr readers see the attribute but are not stopped by it.

Stores written here carry the ``crc32c`` checksum codec and have every chunk written (no
chunk is skipped for holding only the fill value), so a reader can tell a corrupted chunk and
a missing chunk from valid data without listing the store.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "MARKER",
    "IncompleteStoreError",
    "access_error",
    "all_chunks_written",
    "atomic_directory",
    "check_complete",
    "write_zarr_array",
]

#: Attribute under which a store bigclust writes records its state.
MARKER = "bigclust"


class IncompleteStoreError(ValueError):
    """A store that bigclust started writing was never marked complete: its writer stopped
    half-way (killed, or it failed), so some chunks may be missing."""


def _marker(attrs: Any) -> dict:
    try:
        value = attrs.get(MARKER)
    except (AttributeError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def all_chunks_written(attrs: Any) -> bool:
    """True for a store bigclust wrote to completion: every chunk of its grid exists."""
    return _marker(attrs).get("complete") is True


def check_complete(attrs: Any, where: str) -> None:
    """Raise :class:`IncompleteStoreError` for a store bigclust started but never finished."""
    if _marker(attrs).get("complete") is False:
        raise IncompleteStoreError(
            f"The Zarr store at {where!r} is incomplete: bigclust was still writing it when "
            "its writer stopped (it was never marked complete). Write it again."
        )


#: The extra that installs each object-storage protocol's fsspec backend.
_EXTRAS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3")}


def backend_import_error(url: str, err: ImportError) -> ImportError:
    """An ImportError for a URL whose fsspec backend is not installed, saying what to install."""
    protocol = url.split("://", 1)[0].lower()
    if protocol in _EXTRAS:
        package, extra = _EXTRAS[protocol]
        return ImportError(
            f"{url!r} needs the {package} package, which is not installed: "
            f'pip install "bigclust[{extra}]"'
        )
    return ImportError(f"{url!r}: {err}")


def access_error(url: str, err: BaseException, doing: str = "read") -> Exception:
    """The bigclust error for a store that is missing or may not be accessed, naming it."""
    from bigclust.io import StoreAccessError, StoreNotFoundError

    if isinstance(err, FileNotFoundError):
        return StoreNotFoundError(f"Cannot {doing} {url!r}: {err}")
    return StoreAccessError(
        f"Cannot {doing} {url!r}: access denied ({err}). Check the credentials "
        "(storage_options, or the AWS_* environment variables of the client and workers)."
    )


def _url_to_fs(path: str, storage_options: dict | None):
    import fsspec

    try:
        return fsspec.core.url_to_fs(path, **(storage_options or {}))
    except ImportError as err:
        raise backend_import_error(path, err) from None


def _local_path(path: str, storage_options: dict | None) -> str | None:
    """The local file-system path of ``path``, or ``None`` for other file systems."""
    if "://" not in path:
        return os.path.abspath(path)
    from fsspec.implementations.local import LocalFileSystem

    fs, fs_path = _url_to_fs(path, storage_options)
    return fs_path if isinstance(fs, LocalFileSystem) else None


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike, *, overwrite: bool = False, storage_options: dict | None = None
) -> Iterator[tuple[str, bool]]:
    """Write a directory (or Zarr store) that appears at ``path`` only once complete.

    Yields ``(target, renamed)``: the path or URL to write to and whether it will be renamed
    into place. On a local file system ``target`` is a fresh temporary directory beside
    ``path`` (created empty), renamed to ``path`` when the block ends without error (and
    deleted if it raises). Elsewhere ``target`` is ``path`` itself and ``renamed`` is
    ``False``: the caller marks the output complete as its last write (see
    :func:`write_zarr_array`).

    Parameters
    ----------
    path : str or PathLike
        Local path or fsspec URL of the output.
    overwrite : bool, default=False
        Replace an existing output (locally, at the moment of the rename); otherwise an
        existing ``path`` raises ``FileExistsError`` before anything is written.
    storage_options : dict, optional
        Passed to fsspec for URLs.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is false.
    """
    path = os.fspath(path)
    local = _local_path(path, storage_options)
    if local is None:
        fs, fs_path = _url_to_fs(path, storage_options)
        try:
            exists = fs.exists(fs_path)
        except (PermissionError, FileNotFoundError) as err:
            raise access_error(path, err, "write") from err
        if exists:
            if not overwrite:
                raise FileExistsError(f"{path!r} exists; pass overwrite=True to replace it.")
            fs.rm(fs_path, recursive=True)
        yield path, False
        return
    if os.path.lexists(local) and not overwrite:
        raise FileExistsError(f"{path!r} exists; pass overwrite=True to replace it.")
    parent, name = os.path.split(local.rstrip(os.sep))
    os.makedirs(parent or ".", exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    temporary = os.path.join(parent, f".{name}.tmp-{tag}")
    try:
        os.mkdir(temporary)
        yield temporary, True
        _rename_into_place(temporary, local, path, overwrite, tag)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _rename_into_place(temporary: str, local: str, path: str, overwrite: bool, tag: str):
    if not os.path.lexists(local):
        try:
            os.rename(temporary, local)
            return
        except OSError:
            if not os.path.lexists(local):
                raise
    if not overwrite:  # created by someone else while we wrote
        raise FileExistsError(f"{path!r} exists; pass overwrite=True to replace it.")
    parent, name = os.path.split(local)
    old = os.path.join(parent, f".{name}.old-{tag}")
    os.rename(local, old)  # the two renames leave `local` missing for a moment, never partial
    os.rename(temporary, local)
    if os.path.isdir(old) and not os.path.islink(old):
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.remove(old)


def write_zarr_array(
    X: Any,
    path: str | os.PathLike,
    *,
    chunks: tuple[int, ...],
    compressors: list | None = None,
    overwrite: bool = False,
    storage_options: dict | None = None,
    attributes: dict | None = None,
    compute: Callable[[Any], None] | None = None,
):
    """Write the Dask array ``X`` to a new Zarr v3 array at ``path``, atomically.

    Every chunk is written (also those holding only the fill value) and carries a ``crc32c``
    checksum after ``compressors``; the store appears complete or not at all (see the module
    docstring). ``X``'s chunks must already be aligned with ``chunks`` so that each Zarr chunk
    is written whole by one task.

    Parameters
    ----------
    X : dask.array.Array
        The data.
    path : str or PathLike
        Local path or fsspec URL.
    chunks : tuple of int
        Zarr chunk shape.
    compressors : list of zarr codecs, optional
        Bytes-to-bytes codecs applied before the checksum.
    overwrite : bool, default=False
        Replace an existing array.
    storage_options : dict, optional
        Passed to fsspec for URLs.
    attributes : dict, optional
        JSON attributes stored with the array.
    compute : callable, optional
        ``compute(delayed)`` runs the writing tasks; ``dask.compute`` by default.

    Returns
    -------
    zarr.Array
        The new array, opened read-only.
    """
    import dask
    import dask.array as da
    import zarr

    path = os.fspath(path)
    attributes = dict(attributes or {})
    with atomic_directory(path, overwrite=overwrite, storage_options=storage_options) as (
        target,
        renamed,
    ):
        try:
            z = _create(target, renamed, X, chunks, compressors, storage_options, attributes)
        except (PermissionError, FileNotFoundError) as err:  # e.g. no such bucket
            raise access_error(path, err, "write") from err
        task = da.store(X, z, lock=False, compute=False)
        (compute or dask.compute)(task)
        z.update_attributes({MARKER: {"complete": True}})
    return zarr.open_array(path, mode="r", storage_options=storage_options)


def _create(target, renamed, X, chunks, compressors, storage_options, attributes):
    import zarr
    from zarr.codecs import Crc32cCodec

    return zarr.create_array(
        target,
        shape=X.shape,
        dtype=X.dtype,
        chunks=chunks,
        compressors=[*(compressors or []), Crc32cCodec()],
        overwrite=True,  # a stale temporary name, or an object-store prefix just cleared
        storage_options=None if renamed else storage_options,
        attributes={**attributes, MARKER: {"complete": False}},
        config={"write_empty_chunks": True},
    )
