"""Safe state directories: one JSON index plus one ``.npy`` file per array, written atomically.

The one file format behind model files (:mod:`bigclust._persist`) and fit checkpoints. A
state directory holds ``<index>`` (JSON: the format's name and version, the caller's document,
and for every array its file, shape, dtype and SHA-256) and the arrays as ``.npy`` files,
read back with ``allow_pickle=False``. Nothing in it is ever executed or imported: a
tampered, truncated or missing file is a :class:`StateFileError` that names the file.

Writes go to a temporary sibling directory (``.<name>.tmp-<random>``) that is renamed into
place once every file is complete, so a crash never leaves a half-written directory under
the final name. On local disks the rename is atomic; on object stores (``s3://``) a "rename"
is a copy, so readers rely on the index instead: it is written last and lists every array
with its checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import fsspec
import numpy as np

__all__ = [
    "StateFileError",
    "StateFileNotFoundError",
    "read_state",
    "staging_directory",
    "write_state",
]

#: Array names become file names: keep them to a safe alphabet (no path separators).
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


class StateFileError(ValueError):
    """A state directory (model file, checkpoint) that cannot be read safely.

    ``path`` is the file (or directory) at fault.
    """

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}")


class StateFileNotFoundError(StateFileError, FileNotFoundError):
    """The state directory or one of its files does not exist."""


def _filesystem(path: str | os.PathLike, storage_options: Mapping | None):
    fs, root = fsspec.core.url_to_fs(os.fspath(path), **(storage_options or {}))
    return fs, root.rstrip("/") or root


def _join(root: str, name: str) -> str:
    return f"{root}/{name}"


def _check_name(name: str) -> None:
    if not name or not set(name) <= _SAFE or name.startswith("."):
        raise ValueError(f"array name {name!r} must be letters, digits, '_', '-' or '.'.")


def _npy_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise TypeError(f"cannot store an array of dtype {array.dtype} without pickle.")
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@contextlib.contextmanager
def staging_directory(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    marker: str | None = None,
    storage_options: Mapping | None = None,
) -> Iterator[tuple[Any, str]]:
    """Yield ``(fs, tmp)``: a fresh temporary directory beside ``path``; on a clean exit it
    replaces ``path``, on an exception it is removed.

    Parameters
    ----------
    path : str or PathLike
        Final directory: a local path or an fsspec URL.
    overwrite : bool, default=False
        Replace an existing ``path``. Without it an existing ``path`` is a
        :class:`FileExistsError`, raised before anything is written.
    marker : str, optional
        When replacing, the file that an existing ``path`` must hold (the index of the
        format): a directory of something else is never deleted.
    storage_options : dict, optional
        Passed to fsspec.
    """
    fs, root = _filesystem(path, storage_options)
    check_replaceable(fs, root, overwrite=overwrite, marker=marker, shown=os.fspath(path))
    parent, _, name = root.rpartition("/")
    if not name or not (parent or root.startswith("/")):
        raise ValueError(f"{os.fspath(path)!r} is not a directory path (a bucket alone?).")
    tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:12]}"
    fs.makedirs(tmp, exist_ok=False)
    try:
        yield fs, tmp
        _replace(fs, tmp, root)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp, recursive=True)
        raise


def check_replaceable(fs, root: str, *, overwrite: bool, marker: str | None, shown: str) -> None:
    """Raise unless a new directory may be written at ``root``."""
    if not fs.exists(root):
        return
    if not overwrite:
        raise FileExistsError(f"{shown} exists; pass overwrite=True (--overwrite) to replace it.")
    if fs.isfile(root):
        raise FileExistsError(f"{shown} is a file, not a directory; refusing to replace it.")
    if marker is not None and fs.ls(root) and not fs.exists(_join(root, marker)):
        raise FileExistsError(
            f"{shown} exists and holds no {marker}; refusing to replace a directory that "
            "bigclust did not write."
        )


def _replace(fs, tmp: str, root: str) -> None:
    old = None
    if fs.exists(root):
        old = f"{tmp}.old"
        fs.mv(root, old, recursive=True)
    try:
        fs.mv(tmp, root, recursive=True)
    except BaseException:
        if old is not None:  # put the previous version back
            fs.mv(old, root, recursive=True)
        raise
    if old is not None:
        fs.rm(old, recursive=True)


def write_arrays(fs, directory: str, arrays: Mapping[str, np.ndarray]) -> dict[str, dict]:
    """Write each array as ``<name>.npy`` in ``directory``; return their index entries."""
    entries = {}
    for name, array in arrays.items():
        _check_name(name)
        data = _npy_bytes(array)
        file = f"{name}.npy"
        fs.pipe_file(_join(directory, file), data)
        array = np.asarray(array)
        entries[name] = {
            "file": file,
            "shape": list(array.shape),
            "dtype": array.dtype.str,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    return entries


def write_state(
    path: str | os.PathLike,
    document: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    *,
    format: str,
    version: int,
    index: str = "state.json",
    overwrite: bool = True,
    storage_options: Mapping | None = None,
) -> None:
    """Write a state directory atomically: ``arrays`` as ``.npy`` files and ``document``
    (JSON-able) in the index file.

    Parameters
    ----------
    path : str or PathLike
        The directory: a local path or an fsspec URL.
    document : dict
        JSON-able content, stored under ``"document"`` in the index.
    arrays : dict of str to ndarray
        Numeric arrays (no object dtype), one ``.npy`` file each.
    format, version : str, int
        Name and version of the format, checked by :func:`read_state`.
    index : str, default="state.json"
        File name of the JSON index.
    overwrite : bool, default=True
        Replace an existing state directory (one that holds ``index``) at ``path``.
    storage_options : dict, optional
        Passed to fsspec.
    """
    with staging_directory(
        path, overwrite=overwrite, marker=index, storage_options=storage_options
    ) as (fs, tmp):
        write_index(fs, tmp, index, document, write_arrays(fs, tmp, arrays), format, version)


def write_index(fs, directory, index, document, entries, format, version) -> None:
    """Write the JSON index last: its presence says every array before it is complete."""
    content = {"format": format, "format_version": version, "arrays": entries, "document": document}
    text = json.dumps(content, indent=1, sort_keys=False, allow_nan=True)
    fs.pipe_file(_join(directory, index), text.encode())


def read_index(
    path: str | os.PathLike,
    *,
    format: str,
    versions: tuple[int, ...],
    index: str = "state.json",
    storage_options: Mapping | None = None,
) -> tuple[Any, str, dict]:
    """Read and check the index of a state directory; return ``(fs, root, content)``."""
    shown = os.fspath(path)
    fs, root = _filesystem(path, storage_options)
    if not fs.isdir(root):
        what = "is a file, not a" if fs.exists(root) else "no"
        raise StateFileNotFoundError(shown, f"{what} {format} directory here.")
    file = _join(root, index)
    shown_file = f"{shown.rstrip('/')}/{index}"
    try:
        raw = fs.cat_file(file)
    except FileNotFoundError:
        raise StateFileNotFoundError(shown_file, f"missing: not a {format} directory.") from None
    try:
        content = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StateFileError(shown_file, f"not valid JSON (truncated or damaged?): {err}") from None
    if not isinstance(content, dict) or content.get("format") != format:
        found = content.get("format") if isinstance(content, dict) else type(content).__name__
        raise StateFileError(shown_file, f"format is {found!r}, expected {format!r}.")
    version = content.get("format_version")
    if version not in versions or isinstance(version, bool):
        raise StateFileError(
            shown_file,
            f"format version {version!r} is not supported by this bigclust (reads "
            f"{', '.join(map(str, versions))}); upgrade bigclust to read it.",
        )
    if not isinstance(content.get("arrays"), dict) or not isinstance(content.get("document"), dict):
        raise StateFileError(shown_file, "malformed: 'arrays' and 'document' must be objects.")
    return fs, root, content


def read_arrays(fs, root: str, entries: Mapping[str, Any], shown: str) -> dict[str, np.ndarray]:
    """Read every indexed array, checking its checksum, shape and dtype."""
    arrays = {}
    for name, entry in entries.items():
        where = f"{shown.rstrip('/')}/{name}.npy"
        if (
            not isinstance(entry, dict)
            or entry.get("file") != f"{name}.npy"
            or not set(name) <= _SAFE
            or name.startswith(".")
        ):
            raise StateFileError(where, f"malformed index entry for array {name!r}.")
        try:
            data = fs.cat_file(_join(root, entry["file"]))
        except FileNotFoundError:
            raise StateFileNotFoundError(where, "missing.") from None
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise StateFileError(where, "checksum mismatch: the file is truncated or was modified.")
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise StateFileError(where, f"not a readable .npy file: {err}") from None
        if list(array.shape) != entry.get("shape") or array.dtype.str != entry.get("dtype"):
            raise StateFileError(
                where,
                f"holds shape {array.shape} {array.dtype}, the index says "
                f"{tuple(entry.get('shape') or ())} {entry.get('dtype')}.",
            )
        arrays[name] = array
    return arrays


def read_state(
    path: str | os.PathLike,
    *,
    format: str,
    versions: tuple[int, ...],
    index: str = "state.json",
    storage_options: Mapping | None = None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a state directory written by :func:`write_state`.

    Returns
    -------
    document : dict
        The JSON document.
    arrays : dict of str to ndarray
        Every array, checked against its recorded SHA-256, shape and dtype.

    Raises
    ------
    StateFileError
        A missing, truncated or modified file, or an unknown format or version; the message
        names the file. Also a :class:`FileNotFoundError` when something is missing.
    """
    fs, root, content = read_index(
        path, format=format, versions=versions, index=index, storage_options=storage_options
    )
    return content["document"], read_arrays(fs, root, content["arrays"], os.fspath(path))
