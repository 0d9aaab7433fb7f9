"""Outputs of the CLI: checked before any work, written under a temporary name, then
renamed into place (a crash never leaves a complete-looking output)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping

import dask
import dask.array as da
import fsspec
import numpy as np

from bigclust._state import staging_directory


class UsageError(ValueError):
    """The command as given cannot work (exit code 2)."""


def parse_storage_options(pairs: list[str] | None) -> dict:
    """``KEY=VALUE`` pairs to a dict; values are JSON where they parse (``true``, ``3``,
    ``{"a": 1}``), else strings."""
    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option {pair!r} should be KEY=VALUE.")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def check_output(path: str, *, overwrite: bool, storage_options: Mapping, what: str) -> None:
    """Raise :class:`UsageError` unless ``path`` can be written: it must not exist (without
    ``--overwrite``), and on a local disk its parent must exist and be writable (object
    stores have no directories to check; their errors come at the first write)."""
    fs, root = fsspec.core.url_to_fs(path, **storage_options)
    root = root.rstrip("/") or root
    if fs.exists(root):
        if not overwrite:
            raise UsageError(f"{what} {path} exists; pass --overwrite to replace it.")
        if fs.isfile(root) and what != "--centers-out":
            raise UsageError(f"{what} {path} is a file; refusing to replace it with a directory.")
    parent = root.rpartition("/")[0] or "/"
    if "file" in np.atleast_1d(fs.protocol):
        if not os.path.isdir(parent):
            raise UsageError(f"{what} {path}: the directory {parent} does not exist.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"{what} {path}: cannot write in {parent} (permission denied).")


def check_distinct(paths: Mapping[str, str | None]) -> None:
    seen: dict[str, str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        key = os.path.abspath(path) if "://" not in path else path.rstrip("/")
        if key in seen:
            raise UsageError(f"{seen[key]} and {option} are the same path {path}.")
        seen[key] = option


def _regular(array: da.Array) -> da.Array:
    """Row chunks of one size (but the last), columns whole: every Zarr chunk is then
    written whole by exactly one task."""
    chunks = array.chunks[0]
    if len(set(chunks[:-1])) > 1 or (len(chunks) > 1 and chunks[-1] > chunks[0]):
        array = array.rechunk({0: chunks[0]})
    if array.ndim == 2 and len(array.chunks[1]) > 1:
        array = array.rechunk({1: array.shape[1]})
    return array


def write_zarr_outputs(
    arrays: Mapping[str, da.Array], *, overwrite: bool, storage_options: Mapping
) -> None:
    """Compute lazy arrays into new Zarr arrays, all in one pass over their inputs: the
    workers write their chunks; nothing is gathered on the client."""
    import zarr

    from bigclust._persist import _zarr_store

    with contextlib.ExitStack() as stack:
        stores = []
        for path, array in arrays.items():
            fs, tmp = stack.enter_context(
                staging_directory(
                    path, overwrite=overwrite, marker="zarr.json", storage_options=storage_options
                )
            )
            array = _regular(array)
            target = zarr.create_array(
                _zarr_store(fs, tmp, read_only=False),
                shape=array.shape,
                dtype=array.dtype,
                chunks=(array.chunks[0][0], *array.shape[1:]),
                overwrite=True,
            )
            stores.append(da.store(array, target, lock=False, compute=False))
        dask.compute(*stores)


def write_npy(path: str, array: np.ndarray, *, storage_options: Mapping) -> None:
    """Write a small array as a ``.npy`` file, under a temporary name then renamed."""
    import io
    import uuid

    fs, root = fsspec.core.url_to_fs(path, **storage_options)
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    parent, _, name = root.rpartition("/")
    tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:12]}"
    fs.pipe_file(tmp, buffer.getvalue())
    try:
        fs.mv(tmp, root)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp)
        raise
