"""Model files: save a fitted estimator to a directory, load it back, or hand it to scikit-learn.

A model directory holds ``model.json`` (the format's name and version, the estimator's class
and ``get_params()``, the fitted scalars, the versions of bigclust, NumPy and scikit-learn,
the fingerprint of the training data when known) and one ``.npy`` file per fitted array,
each with its SHA-256 in ``model.json`` (the file format of :mod:`bigclust._state`, shared
with fit checkpoints). Loading never unpickles or imports anything named by the file: the
estimator class must be a row of :data:`ESTIMATORS`, every array must have the shape and
dtype that the row declares for the saved parameters, and any mismatch is a
:class:`ModelFileError` naming the file.

Lazy fitted attributes (``labels_`` of a fit on a store or Dask array) are never saved as
graphs: ``save(model, path, labels="zarr")`` computes them into ``labels_.zarr`` inside the
model directory (each worker writes its chunks), which loads back as a lazy Dask array;
otherwise they are absent after :func:`load`. NumPy ``labels_`` are saved as ``.npy``.

:data:`bigclust._declarations.ESTIMATORS` declares, for each estimator, its fitted attributes
with their shapes, the private state that prediction and ``partial_fit`` continue from, and
the equivalent scikit-learn estimator: a new estimator joins model files, ``to_sklearn()``
and ``bigclust fit`` with one row.
"""

from __future__ import annotations

import os
import platform
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from bigclust._declarations import ESTIMATORS, FLOAT, declaration
from bigclust._state import (
    StateFileError,
    StateFileNotFoundError,
    read_arrays,
    read_index,
    read_state,
    staging_directory,
    write_arrays,
    write_index,
    write_state,
)

__all__ = [
    "ESTIMATORS",
    "FORMAT",
    "FORMAT_VERSION",
    "ModelFileError",
    "ModelFileMixin",
    "data_fingerprint",
    "describe",
    "load",
    "read_state",
    "save",
    "to_sklearn",
    "write_state",
]

FORMAT = "bigclust-model"
FORMAT_VERSION = 1
INDEX = "model.json"
LABELS_ZARR = "labels_.zarr"

#: ``ModelFileError`` is the state-file error: one class for model files and checkpoints.
ModelFileError = StateFileError
ModelFileNotFoundError = StateFileNotFoundError

# --------------------------------------------------------------------------------------------
# Parameters and scalars to JSON and back

_UNSAVED = "unsaved"


def _json_value(value):
    """A JSON-able scalar for ``value``, or raise TypeError."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    raise TypeError(type(value).__name__)


def _params_to_json(params: Mapping[str, Any]) -> tuple[dict, dict]:
    """Split ``get_params()`` into JSON values and arrays (stored as ``param.<name>.npy``).

    Values that have no safe representation (a callable ``init``, a ``RandomState``
    instance) are recorded by type name only; :func:`load` restores the default for them.
    """
    document, arrays = {}, {}
    for name, value in params.items():
        if isinstance(value, (np.ndarray, list, tuple)):
            array = np.asarray(value)
            if array.dtype.kind in "biuf":
                arrays[f"param.{name}"] = array
                document[name] = {"array": f"param.{name}"}
                continue
        try:
            document[name] = _json_value(value)
        except TypeError:
            warnings.warn(
                f"parameter {name}={type(value).__name__} cannot be saved safely; the loaded "
                "model gets the default instead.",
                UserWarning,
                stacklevel=4,
            )
            document[name] = {_UNSAVED: type(value).__name__}
    return document, arrays


def _params_from_json(document, arrays, cls, where) -> dict:
    defaults = cls().get_params()
    if not isinstance(document, dict):
        raise ModelFileError(where, "'params' must be an object.")
    params = {}
    for name, value in document.items():
        if name not in defaults:
            raise ModelFileError(
                where, f"parameter {name!r} is not a parameter of {cls.__name__} in this bigclust."
            )
        if isinstance(value, dict):
            if _UNSAVED in value:
                value = defaults[name]
            elif set(value) == {"array"} and value["array"] == f"param.{name}":
                if value["array"] not in arrays:
                    raise ModelFileError(where, f"array {value['array']!r} is not indexed.")
                value = arrays[value["array"]]
            else:
                raise ModelFileError(where, f"parameter {name!r} has a malformed value {value!r}.")
        elif isinstance(value, list):
            raise ModelFileError(where, f"parameter {name!r} has a malformed value.")
        params[name] = value
    return params


def _check_scalar(name, value, kind, where):
    ok = {
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        bool: lambda v: isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        list: lambda v: (
            isinstance(v, list)
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        ),
    }[kind](value)
    if not ok:
        raise ModelFileError(where, f"{name} = {value!r} should be of type {kind.__name__}.")
    return float(value) if kind is float else value


def _scalar_to_json(value):
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
    return _json_value(value)


# --------------------------------------------------------------------------------------------
# Data fingerprint


def _run_lengths(sizes) -> list[list[int]]:
    runs: list[list[int]] = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1][1] += 1
        else:
            runs.append([int(size), 1])
    return runs


def data_fingerprint(X, *, storage_options: Mapping | None = None) -> dict:
    """What identifies a training set without reading it: shape, dtype, row chunks, store.

    Parameters
    ----------
    X : str, PathLike, zarr.Array, dask.array.Array or array-like
        Anything :func:`bigclust.as_dask_array` takes; only metadata is read.
    storage_options : dict, optional
        Passed to fsspec for URLs.

    Returns
    -------
    dict
        ``shape``, ``dtype``, ``chunks`` (row-chunk sizes as ``[size, count]`` runs) and
        ``store`` (the absolute path or URL, or ``None`` for in-memory and Dask inputs).
    """
    from bigclust.io import as_dask_array

    data = as_dask_array(X, storage_options=storage_options)
    store = None
    if isinstance(X, (str, os.PathLike)):
        store = os.fspath(X)
        if "://" not in store:
            store = os.path.abspath(store)
    return {
        "shape": [int(n) for n in data.shape],
        "dtype": data.dtype.name,
        "chunks": _run_lengths(data.chunks[0]),
        "store": store,
    }


def _versions() -> dict:
    import sklearn

    import bigclust

    return {
        "bigclust": bigclust.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------------------------
# save / load


LABELS = ("auto", "zarr", "omit")


def save(
    model,
    path: str | os.PathLike,
    *,
    labels: str = "auto",
    overwrite: bool = False,
    fingerprint: Mapping | None = None,
    storage_options: Mapping | None = None,
) -> None:
    """Save a fitted estimator to a model directory (local path or fsspec URL).

    The directory is written under a temporary name beside ``path`` and renamed into place
    when complete. See :mod:`bigclust._persist` for its content.

    Parameters
    ----------
    model : KMeans, MiniBatchKMeans, GaussianMixture or BayesianGaussianMixture
        A fitted estimator.
    path : str or PathLike
        The new directory, e.g. ``"model"`` or ``"s3://bucket/models/run-1"``.
    labels : {"auto", "zarr", "omit"}, default="auto"
        What to do with ``labels_``. ``"auto"``: NumPy labels are saved as ``.npy``; lazy
        labels (from a fit on a store or Dask array) are left out, so the loaded model has
        no ``labels_``. ``"zarr"``: compute them into ``labels_.zarr`` in the directory,
        chunk by chunk on the active scheduler's workers; they load as a lazy Dask array.
        ``"omit"``: never save them.
    overwrite : bool, default=False
        Replace an existing model directory at ``path`` (never a directory of other files).
    fingerprint : dict, optional
        The training data's fingerprint (see :func:`data_fingerprint`), recorded in
        ``model.json``; by default none is recorded (the number of features and the dtype
        always are).
    storage_options : dict, optional
        Passed to fsspec (credentials, endpoint) for URLs.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        The model is not fitted.
    FileExistsError
        ``path`` exists and ``overwrite`` is false.
    """
    from sklearn.utils.validation import check_is_fitted

    row = declaration(model)
    check_is_fitted(model)
    if labels not in LABELS:
        raise ValueError(f"labels={labels!r}; valid: {', '.join(map(repr, LABELS))}.")
    params, arrays = _params_to_json(model.get_params())
    for name in row.arrays:
        arrays[name] = np.asarray(getattr(model, name))
    dtype = arrays[row.dtype_from].dtype
    state = row.get_state(model)
    state_doc = {k: _scalar_to_json(v) for k, v in state.items() if k in row.state_scalars}
    arrays.update({f"state.{k}": np.asarray(v) for k, v in state.items() if k in row.state_arrays})
    scalars = {"n_features_in_": int(model.n_features_in_)}
    for name in row.scalars:
        if hasattr(model, name):
            scalars[name] = _scalar_to_json(getattr(model, name))
    names = getattr(model, "feature_names_in_", None)
    document = {
        "estimator": type(model).__name__,
        "params": params,
        "scalars": scalars,
        "dtype": dtype.name,
        "feature_names_in_": None if names is None else [str(f) for f in names],
        "state": state_doc,
        "data": dict(fingerprint) if fingerprint else None,
        "labels": None,
        "versions": _versions(),
    }
    lazy_labels = None
    if row.has_labels and labels != "omit" and getattr(model, "labels_", None) is not None:
        if labels == "zarr":
            lazy_labels = model.labels_
        elif isinstance(model.labels_, np.ndarray):
            arrays["labels_"] = model.labels_
            document["labels"] = {"array": "labels_"}
    with staging_directory(
        path, overwrite=overwrite, marker=INDEX, storage_options=storage_options
    ) as (fs, tmp):
        entries = write_arrays(fs, tmp, arrays)
        if lazy_labels is not None:
            document["labels"] = _write_labels_zarr(lazy_labels, fs, f"{tmp}/{LABELS_ZARR}")
        write_index(fs, tmp, INDEX, document, entries, FORMAT, FORMAT_VERSION)


def _write_labels_zarr(labels, fs, where: str) -> dict:
    import dask
    import dask.array as da
    import zarr

    labels = labels if isinstance(labels, da.Array) else da.from_array(np.asarray(labels))
    if len(set(labels.chunks[0][:-1])) > 1:  # every Zarr chunk written whole by one task
        labels = labels.rechunk(labels.chunks[0][0])
    target = zarr.create_array(
        _zarr_store(fs, where, read_only=False),
        shape=labels.shape,
        dtype=labels.dtype,
        chunks=(labels.chunks[0][0],),
    )
    dask.compute(da.store(labels, target, lock=False, compute=False))
    return {"zarr": LABELS_ZARR, "shape": list(labels.shape), "dtype": labels.dtype.str}


def _zarr_store(fs, where: str, read_only: bool):
    """A Zarr store at ``where`` on ``fs``: the local store on disk, fsspec's elsewhere."""
    from zarr.storage import FsspecStore, LocalStore

    if "file" in np.atleast_1d(fs.protocol):
        return LocalStore(where, read_only=read_only)
    options = dict(getattr(fs, "storage_options", {}) or {})
    url = fs.unstrip_protocol(where)
    return FsspecStore.from_url(url, storage_options=options, read_only=read_only)


def _open_labels_zarr(fs, root, entry, where):
    import dask.array as da
    import zarr

    shown = f"{where}/{LABELS_ZARR}"
    try:
        z = zarr.open_array(_zarr_store(fs, f"{root}/{LABELS_ZARR}", read_only=True), mode="r")
    except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
        raise ModelFileNotFoundError(shown, f"missing or unreadable Zarr array ({err}).") from None
    if list(z.shape) != entry.get("shape") or z.dtype.str != entry.get("dtype"):
        raise ModelFileError(
            shown,
            f"holds {z.shape} {z.dtype}; model.json says {entry.get('shape')} "
            f"{entry.get('dtype')}.",
        )
    return da.from_array(z, chunks=z.chunks)


def _read_document(path, options):
    fs, root, content = read_index(
        path, format=FORMAT, versions=(FORMAT_VERSION,), index=INDEX, storage_options=options
    )
    where = f"{os.fspath(path).rstrip('/')}/{INDEX}"
    document = content["document"]
    name = document.get("estimator")
    if not isinstance(name, str) or name not in ESTIMATORS:
        valid = ", ".join(ESTIMATORS)
        raise ModelFileError(where, f"unknown estimator {name!r}; this bigclust reads {valid}.")
    return fs, root, content, where


def describe(path: str | os.PathLike, *, storage_options: Mapping | None = None) -> dict:
    """The validated ``model.json`` document of a model directory (what ``bigclust info``
    shows), with ``arrays``: each array's shape and dtype. Every file is checked."""
    _, content = _load(path, storage_options)
    document = dict(content["document"])
    document["arrays"] = {
        name: {"shape": e["shape"], "dtype": np.dtype(e["dtype"]).name}
        for name, e in content["arrays"].items()
    }
    document["format"], document["format_version"] = content["format"], content["format_version"]
    return document


def load(path: str | os.PathLike, *, storage_options: Mapping | None = None):
    """Load a model directory written by :func:`save`.

    Parameters
    ----------
    path : str or PathLike
        Local path or fsspec URL of the directory.
    storage_options : dict, optional
        Passed to fsspec for URLs.

    Returns
    -------
    model : KMeans, MiniBatchKMeans, GaussianMixture or BayesianGaussianMixture
        Fitted as saved: it predicts, transforms and scores exactly as the saved model, and a
        loaded MiniBatchKMeans continues ``partial_fit`` where the saved one stopped.
        ``labels_`` is NumPy if it was saved as ``.npy``, a lazy Dask array over
        ``labels_.zarr`` if saved with ``labels="zarr"``, else absent.

    Raises
    ------
    ModelFileError
        (a ``ValueError``) naming the file: missing, truncated or modified files, an unknown
        format version or estimator, arrays of the wrong shape or dtype.
    """
    return _load(path, storage_options)[0]


def _load(path, storage_options):
    """The loaded model and the index it came from."""
    fs, root, content, where = _read_document(path, storage_options)
    shown = os.fspath(path)
    document = content["document"]
    row = ESTIMATORS[document["estimator"]]
    cls = row.estimator()
    arrays = read_arrays(fs, root, content["arrays"], shown)

    params = _params_from_json(document.get("params"), arrays, cls, where)
    model = cls()
    try:
        model.set_params(**params)
    except (TypeError, ValueError) as err:
        raise ModelFileError(where, f"bad parameters: {err}") from None

    scalars = document.get("scalars")
    if not isinstance(scalars, dict) or "n_features_in_" not in scalars:
        raise ModelFileError(where, "'scalars' must be an object with n_features_in_.")
    d = _check_scalar("n_features_in_", scalars["n_features_in_"], int, where)
    k = params.get(row.k_param, cls().get_params()[row.k_param])
    if not isinstance(k, int) or isinstance(k, bool) or k < 1 or d < 1:
        raise ModelFileError(
            where, f"{row.k_param}={k!r} and n_features_in_={d!r} must be ints >= 1."
        )
    dtype = document.get("dtype")
    if dtype not in ("float32", "float64"):
        raise ModelFileError(where, f"dtype {dtype!r} should be 'float32' or 'float64'.")

    def check(name, value, rule, file_name):
        shape_of, dtype_rule = rule
        expected = shape_of(params, k, d)
        want = np.dtype(dtype if dtype_rule == FLOAT else dtype_rule)
        if value.shape != expected or value.dtype != want:
            raise ModelFileError(
                f"{shown.rstrip('/')}/{file_name}.npy",
                f"{name} has shape {value.shape} {value.dtype}; a {cls.__name__} with "
                f"{row.k_param}={k} and n_features_in_={d} needs {expected} {want}.",
            )
        return value

    for name, rule in row.arrays.items():
        if name not in arrays:
            raise ModelFileError(where, f"fitted array {name} is not indexed.")
        setattr(model, name, check(name, arrays[name], rule, name))
    model.n_features_in_ = d
    for name, kind in row.scalars.items():
        if name in scalars:
            setattr(model, name, _check_scalar(name, scalars[name], kind, where))
    names = document.get("feature_names_in_")
    if names is not None:
        if not (isinstance(names, list) and len(names) == d and all(map(_is_str, names))):
            raise ModelFileError(where, "feature_names_in_ must be n_features_in_ strings.")
        model.feature_names_in_ = np.asarray(names, dtype=object)

    state = {}
    for key, value in (document.get("state") or {}).items():
        if key not in row.state_scalars:
            raise ModelFileError(where, f"unknown state entry {key!r}.")
        state[key] = _check_scalar(key, value, row.state_scalars[key], where)
    for key, rule in row.state_arrays.items():
        if f"state.{key}" in arrays:
            state[key] = check(key, arrays[f"state.{key}"], rule, f"state.{key}")
    if "dtype" in state and state["dtype"] != dtype:
        raise ModelFileError(where, f"state dtype {state['dtype']!r} differs from dtype {dtype!r}.")
    row.set_state(model, state)

    labels = document.get("labels")
    if labels is not None and row.has_labels:
        if labels == {"array": "labels_"} and "labels_" in arrays:
            model.labels_ = _check_labels(arrays["labels_"], f"{shown}/labels_.npy")
        elif isinstance(labels, dict) and labels.get("zarr") == LABELS_ZARR:
            model.labels_ = _check_labels(_open_labels_zarr(fs, root, labels, shown), shown)
        else:
            raise ModelFileError(where, f"malformed labels entry {labels!r}.")
    return model, content


def _is_str(value) -> bool:
    return isinstance(value, str)


def _check_labels(labels, where):
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ModelFileError(
            where, f"labels_ has shape {labels.shape} {labels.dtype}; expected 1-D ints."
        )
    return labels


def to_sklearn(model):
    """The equivalent fitted scikit-learn estimator.

    Its ``predict``, ``transform``, ``predict_proba`` and ``score_samples`` on in-memory data
    agree with ``model``'s (same labels; the same values to rounding). Parameters that
    scikit-learn lacks are dropped, and ``init="k-means||"`` becomes ``"k-means++"``. A lazy
    ``labels_`` is not computed: the scikit-learn estimator then has no ``labels_``.
    """
    from sklearn.utils.validation import check_is_fitted

    row = declaration(model)
    check_is_fitted(model)
    return row.sklearn(model)


class ModelFileMixin:
    """``save()`` and ``to_sklearn()`` for every estimator of :data:`ESTIMATORS`."""

    def save(self, path, **kwargs):
        """Save the fitted model to a directory; see :func:`bigclust.save`."""
        save(self, path, **kwargs)

    def to_sklearn(self):
        """The equivalent fitted scikit-learn estimator; see :func:`bigclust.to_sklearn`."""
        return to_sklearn(self)
