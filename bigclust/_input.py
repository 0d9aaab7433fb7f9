"""The input judged once: what every estimator does with its ``X`` before any pass.

:func:`read_input` calls the data layer (:func:`bigclust.io.as_dask_array`) and carries the
one decision the estimators used to take each their own way, **outputs follow inputs**:
NumPy in (arrays, memmaps, lists, DataFrames) gives NumPy per-row outputs; stores and Dask
arrays give lazy Dask arrays. Feature names and ``n_features_in_`` are recorded at the end of
``fit`` (:func:`record_features`, so a failed fit leaves nothing half-set) and checked in
every later call (:func:`check_features`) with scikit-learn's own messages for in-memory
input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from sklearn.utils.validation import validate_data

from bigclust.io import as_dask_array, is_lazy_input

__all__ = ["Input", "check_features", "read_input", "record_features"]

#: Label dtypes as scikit-learn's: K-Means labels are int32, mixture ``predict`` int64.
KMEANS_LABELS = np.dtype(np.int32)
MIXTURE_LABELS = np.dtype(np.int64)


@dataclass(frozen=True)
class Input:
    """A validated input and what its per-row outputs must be.

    Attributes
    ----------
    data : dask.array.Array of shape (n_samples, n_features)
        Row-chunked, float32 or float64 (see :func:`bigclust.io.as_dask_array`).
    numpy_out : bool
        Per-row outputs (labels, distances, densities) are NumPy arrays; else lazy.
    source : object
        What the user passed (for feature names, and to keep in-memory data in memory).
    placed : bool
        ``data`` is already where the passes run (an in-memory array for the in-process path,
        or an array scattered to a cluster): fits that share an input place it once.
    """

    data: da.Array | np.ndarray
    numpy_out: bool
    source: Any
    placed: bool = False  # data already placed for the passes (see bigclust.driver.place)

    @property
    def in_memory(self) -> np.ndarray | None:
        """The user's in-memory array, when ``X`` was one (not a memmap, not lazy)."""
        source = self.source
        if isinstance(source, np.ndarray) and not isinstance(source, np.memmap):
            return source
        return None

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape


def read_input(X: Any, *, storage_options: dict | None = None, what: str = "X") -> Input:
    """Validate ``X`` from its metadata (no data is read) and decide the output kind."""
    if isinstance(X, Input):
        return X
    data = as_dask_array(X, storage_options=storage_options, what=what)
    return Input(data, numpy_out=not is_lazy_input(X), source=X)


def _named_source(inp: Input):
    """What scikit-learn's feature-name checks should look at: the user's object when it
    is in memory (a DataFrame keeps its columns), the Dask array otherwise (no names)."""
    return inp.data if is_lazy_input(inp.source) else inp.source


def record_features(estimator, inp: Input) -> None:
    """Set ``n_features_in_`` and ``feature_names_in_`` (when the input has string column
    names) as scikit-learn does; call at the end of ``fit``."""
    source = _named_source(inp)
    if source is inp.data or _unnamed(source):
        # What scikit-learn's validate_data does for input without column names, without
        # its 0.25 ms (a small fit's tenth, in a grid search's thousands of fits).
        estimator.n_features_in_ = inp.shape[1]
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        return
    validate_data(estimator, source, reset=True, skip_check_array=True)
    estimator.n_features_in_ = inp.shape[1]


def _unnamed(source) -> bool:
    """Input that cannot carry feature names (scikit-learn finds none in it)."""
    return isinstance(source, np.ndarray)


def check_features(estimator, inp: Input) -> None:
    """Raise if ``inp`` does not have the features the estimator was fitted on (and warn on
    feature names, as scikit-learn does)."""
    source = _named_source(inp)
    # Unnamed input against an estimator fitted without names: scikit-learn checks nothing.
    quiet = _unnamed(source) and not hasattr(estimator, "feature_names_in_")
    if source is not inp.data and not quiet:
        validate_data(estimator, source, reset=False, skip_check_array=True)
    check_n_features(estimator, inp.shape[1])


def check_n_features(estimator, n_features: int) -> None:
    """Raise unless ``n_features`` is what the estimator was fitted on."""
    if n_features != estimator.n_features_in_:
        raise ValueError(
            f"X has {n_features} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )


def check_min_samples(inp: Input, minimum: int, name: str | None = None, value=None) -> None:
    """Raise unless ``inp`` has at least ``minimum`` rows; ``name=value`` names the
    parameter that requires them (``n_samples=4 should be >= n_clusters=5.``)."""
    n_samples = inp.shape[0]
    if n_samples >= minimum:
        return
    if name is None:
        raise ValueError(
            f"Found array with n_samples={n_samples} while a minimum of {minimum} is required."
        )
    raise ValueError(f"n_samples={n_samples} should be >= {name}={value}.")


def read_sample_weight(sample_weight, inp: Input | np.ndarray, dtype=np.float64):
    """Validate ``sample_weight`` for ``inp``: shape from metadata, values in one small pass.

    ``inp`` is an :class:`Input` or an in-memory batch. Returns ``None``, a NumPy array (for
    NumPy, list or scalar weights) or a Dask array chunked like ``inp.data``'s rows.
    """
    if sample_weight is None:
        return None
    n = inp.shape[0]
    if isinstance(sample_weight, da.Array):
        weights = sample_weight
    else:
        try:
            weights = np.asarray(sample_weight, dtype=np.float64)
        except (ValueError, TypeError) as err:
            raise ValueError(f"sample_weight is not a 1-D array of numbers: {err}") from None
        if weights.ndim == 0:
            weights = np.full(n, float(weights))
    if weights.ndim != 1 or weights.shape[0] != n:
        raise ValueError(
            f"sample_weight has shape {weights.shape}; expected ({n},), one weight per sample."
        )
    if isinstance(weights, np.ndarray):
        _check_weight_values(weights.min(), weights.max(), np.isfinite(weights).all())
        return weights.astype(dtype, copy=False)
    from bigclust.driver import compute

    weights = weights.astype(dtype).rechunk((inp.data.chunks[0],))
    _check_weight_values(*compute(weights.min(), weights.max(), da.isfinite(weights).all()))
    return weights


def _check_weight_values(lowest, highest, finite):
    if not finite:
        raise ValueError("sample_weight contains NaN or infinity.")
    if lowest < 0:
        raise ValueError(f"sample_weight has negative values (minimum {lowest}).")
    if highest == 0:
        raise ValueError("sample_weight is all zero: at least one weight must be positive.")
