"""Fit checkpoints: the full state of a fit after every iteration, so a killed fit resumes.

``checkpoint=PATH`` (a local directory or an fsspec URL) on an estimator makes its ``fit``
write, after every iteration (KMeans, the mixtures) or every segment (MiniBatchKMeans), what
it needs to go on: the parameters, the iteration, the ``n_init`` run in progress and the best
run so far, and the integer seed every random stream derives from. The same fit started again
with the same checkpoint and the same data reads it and resumes from the last finished
iteration; because every step of a fit is a function of that state alone, the result is
identical to an uninterrupted fit.

A checkpoint is a state directory (:mod:`bigclust._state`: a JSON index written last and
checksummed ``.npy`` files, written under a temporary name and renamed into place), so a crash
mid-write leaves the previous checkpoint intact, and nothing in it is ever executed. It is
tied to its fit: the estimator, its parameters, and the data's fingerprint (shape, dtype,
chunk grid, store path; a digest of the values for in-memory data). A checkpoint from other
data or other parameters is refused with :class:`CheckpointMismatchError` naming what
differs; delete it (or pass another path) to start afresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any

import dask.array as da
import numpy as np

from bigclust._input import Input
from bigclust._state import StateFileNotFoundError, read_state, write_state

__all__ = ["Checkpoint", "CheckpointMismatchError"]

FORMAT = "bigclust-checkpoint"
VERSION = 1

#: Parameters that do not change a fit's result (so a checkpoint may be resumed with others).
_IGNORED = frozenset({"checkpoint", "verbose", "verbose_interval"})


class CheckpointMismatchError(ValueError):
    """A checkpoint that belongs to another fit (other data or other parameters)."""


def _digest(array: np.ndarray) -> str:
    data = np.ascontiguousarray(array)
    return hashlib.sha256(data.view(np.uint8).reshape(-1)).hexdigest()


def _param_identity(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (np.ndarray, list, tuple)):
        array = np.asarray(value)
        if array.dtype.kind in "biuf":
            return {"array": _digest(array), "shape": list(array.shape)}
    if callable(value):
        name = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
        return {"callable": name}
    return {"type": type(value).__name__}


def _data_identity(inp: Input, sample_weight) -> dict:
    source = inp.source
    store = None
    if isinstance(source, (str, os.PathLike)):
        store = os.fspath(source)
        if "://" not in store:
            store = os.path.abspath(store)
    data = inp.data
    chunks = [int(c) for c in data.chunks[0]] if isinstance(data, da.Array) else [data.shape[0]]
    identity = {
        "shape": [int(n) for n in data.shape],
        "dtype": np.dtype(data.dtype).name,
        "chunks": _runs(chunks),
        "store": store,
    }
    if inp.in_memory is not None:  # no store names it: its values do
        identity["values"] = _digest(np.asarray(inp.in_memory))
    if isinstance(sample_weight, np.ndarray):
        identity["sample_weight"] = _digest(sample_weight)
    elif sample_weight is not None:
        identity["sample_weight"] = sample_weight.name
    return identity


def _runs(sizes: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1][1] += 1
        else:
            runs.append([size, 1])
    return runs


# -- nested state <-> (JSON document, arrays) ---------------------------------------------------


def _flatten(value: Any, name: str, arrays: dict) -> Any:
    """A JSON-able description of ``value``; its arrays go into ``arrays`` by name."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return {"float": float(value).hex()}  # exact, NaN and infinities included
    if isinstance(value, np.ndarray):
        arrays[name] = value
        return {"array": name}
    if dataclasses.is_dataclass(value) or (isinstance(value, tuple) and hasattr(value, "_fields")):
        names = (
            [f.name for f in dataclasses.fields(value)]
            if dataclasses.is_dataclass(value)
            else list(value._fields)
        )
        fields = {k: _flatten(getattr(value, k), f"{name}.{k}", arrays) for k in names}
        return {"type": type(value).__name__, "fields": fields}
    if isinstance(value, (tuple, list)):
        return {"items": [_flatten(v, f"{name}.{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, dict):
        return {"dict": {str(k): _flatten(v, f"{name}.{k}", arrays) for k, v in value.items()}}
    raise TypeError(f"cannot checkpoint a {type(value).__name__} ({name})")


def _unflatten(doc: Any, arrays: dict, types: dict) -> Any:
    """The inverse of :func:`_flatten`. Records come back as the classes named in ``types``
    (only those: a checkpoint never names what to import)."""
    if not isinstance(doc, dict):
        return doc
    if "float" in doc:
        return float.fromhex(doc["float"])
    if "array" in doc:
        return arrays[doc["array"]]
    if "items" in doc:
        return tuple(_unflatten(v, arrays, types) for v in doc["items"])
    if "dict" in doc:
        return {k: _unflatten(v, arrays, types) for k, v in doc["dict"].items()}
    cls = types.get(doc.get("type"))
    if cls is None:
        raise CheckpointMismatchError(f"checkpoint holds an unknown record {doc.get('type')!r}")
    return cls(**{k: _unflatten(v, arrays, types) for k, v in doc["fields"].items()})


class Checkpoint:
    """The checkpoint of one fit: :meth:`load` what a previous attempt left, :meth:`save`
    after every iteration.

    Parameters
    ----------
    path : str or PathLike
        A local directory or fsspec URL.
    estimator : estimator
        Its class and result-changing parameters identify the fit.
    inp : Input
        The data (their fingerprint identifies the fit).
    sample_weight : array, optional
    storage_options : dict, optional
        For an fsspec URL.
    """

    def __init__(self, path, estimator, inp: Input, sample_weight=None, storage_options=None):
        self.path = os.fspath(path)
        self.storage_options = storage_options
        params = {k: _param_identity(v) for k, v in estimator.get_params(deep=False).items()
                  if k not in _IGNORED}  # fmt: skip
        self.identity = {
            "estimator": type(estimator).__name__,
            "params": params,
            "data": _data_identity(inp, sample_weight),
        }

    @classmethod
    def of(cls, estimator, inp: Input, sample_weight=None) -> Checkpoint | None:
        """The estimator's checkpoint (``checkpoint=`` parameter), or None."""
        path = getattr(estimator, "checkpoint", None)
        return None if path is None else cls(path, estimator, inp, sample_weight)

    def load(self, *types: type) -> Any:
        """The state saved by a previous attempt of this fit, or None if there is none.

        ``types`` are the dataclasses and NamedTuples the state may hold (tuples and lists
        come back as tuples).
        """
        try:
            document, arrays = read_state(
                self.path, format=FORMAT, versions=(VERSION,),
                storage_options=self.storage_options,
            )  # fmt: skip
        except StateFileNotFoundError:
            return None
        saved = document.get("identity")
        if saved != self.identity:
            raise CheckpointMismatchError(self._mismatch(saved))
        return _unflatten(document["state"], arrays, {t.__name__: t for t in types})

    def _mismatch(self, saved) -> str:
        saved = saved if isinstance(saved, dict) else {}
        differences = []
        for part in ("estimator", "params", "data"):
            ours, theirs = self.identity[part], saved.get(part)
            if ours == theirs:
                continue
            if isinstance(ours, dict) and isinstance(theirs, dict):
                keys = sorted(k for k in ours.keys() | theirs.keys()
                              if ours.get(k) != theirs.get(k))  # fmt: skip
                differences.append(f"{part} ({', '.join(keys)})")
            else:
                differences.append(part)
        return (
            f"checkpoint {self.path!r} belongs to another fit: its {' and '.join(differences)} "
            "differ from this one's. Delete it or pass another checkpoint path to start afresh."
        )

    def save(self, state: Any) -> None:
        """Write ``state`` (nested tuples, dataclasses, arrays, numbers) atomically."""
        arrays: dict = {}
        document = {"identity": self.identity, "state": _flatten(state, "s", arrays)}
        write_state(
            self.path, document, arrays, format=FORMAT, version=VERSION,
            storage_options=self.storage_options,
        )  # fmt: skip
