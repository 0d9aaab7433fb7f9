"""Declared parameter constraints, checked once at the start of ``fit``.

Each estimator declares ``_parameter_constraints``: a dict from parameter name to a list of
accepted kinds, as scikit-learn does (its own classes are private, so these are ours):

- :class:`Interval` for numbers (``Interval(Integral, 1, None)`` is an int >= 1),
- :class:`Options` for named choices (an unknown name lists the valid ones),
- ``None``, ``"array-like"``, ``callable``, ``"boolean"``, ``"random_state"``, or a type
  (``str``, ``os.PathLike``: an instance of it).

A value is valid when it matches any entry. One message style, carrying the offending
value: ``n_clusters=0 should be an int >= 1.``, ``unknown init 'kmeans'; valid: 'k-means||',
'k-means++', 'random', an array or a callable.``
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Interval", "Options", "validate_params"]


@dataclass(frozen=True)
class Interval:
    """Numbers of ``type`` (``numbers.Integral`` or ``numbers.Real``) between two bounds.

    ``None`` for a bound means unbounded; ``closed`` says which bounds are included.
    Booleans are never numbers here.
    """

    type: type
    left: float | None
    right: float | None
    closed: str = "both"  # "both", "left", "right" or "neither"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, self.type):
            return False
        if self.type is numbers.Real and not np.isfinite(value) and self.right is not None:
            return False
        if value != value:  # NaN
            return False
        left_ok = (
            self.left is None
            or value > self.left
            or (value == self.left and self.closed in ("both", "left"))
        )
        right_ok = (
            self.right is None
            or value < self.right
            or (value == self.right and self.closed in ("both", "right"))
        )
        return left_ok and right_ok

    def describe(self) -> str:
        kind = "an int" if self.type is numbers.Integral else "a number"
        low = ">=" if self.closed in ("both", "left") else ">"
        high = "<=" if self.closed in ("both", "right") else "<"
        if self.right is None:
            return f"{kind} {low} {self.left}" if self.left is not None else kind
        if self.left is None:
            return f"{kind} {high} {self.right}"
        return f"{kind} with {self.left} {'<=' if low == '>=' else '<'} value {high} {self.right}"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of strings (or other hashable values)."""

    values: tuple

    def __init__(self, *values):
        object.__setattr__(self, "values", tuple(values))

    def accepts(self, value: Any) -> bool:
        if isinstance(value, np.ndarray) or not isinstance(value, (str, numbers.Number)):
            return False  # arrays and other objects are never one of the names
        return any(type(value) is type(v) and value == v for v in self.values)

    def describe(self) -> str:
        return ", ".join(repr(v) for v in self.values)


def _accepts(kind: Any, value: Any) -> bool:
    if kind is None:
        return value is None
    if kind is callable:
        return callable(value)
    if kind == "boolean":
        return isinstance(value, (bool, np.bool_))
    if kind == "array-like":
        return not isinstance(value, (str, bytes)) and (
            hasattr(value, "__array__") or isinstance(value, (list, tuple))
        )
    if kind == "random_state":
        return (
            value is None
            or isinstance(value, (np.random.RandomState, np.random.Generator))
            or (
                isinstance(value, numbers.Integral)
                and not isinstance(value, (bool, np.bool_))
                and value >= 0
            )
        )
    if isinstance(kind, type):
        return isinstance(value, kind)
    return kind.accepts(value)


def _describe(kind: Any) -> str:
    return (
        {
            None: "None",
            callable: "a callable",
            "boolean": "a bool",
            "array-like": "an array",
            "random_state": "None, an int >= 0, a numpy RandomState or a numpy Generator",
        }.get(kind)
        if not isinstance(kind, (Interval, Options))
        else kind.describe()
    )


def check_param(name: str, value: Any, kinds: list) -> None:
    """Raise ``ValueError`` (or ``TypeError`` for a wrongly typed random state) unless
    ``value`` matches one of ``kinds``."""
    if any(_accepts(kind, value) for kind in kinds):
        return
    options = [k for k in kinds if isinstance(k, Options)]
    if options and isinstance(value, str):
        valid = ", ".join(o.describe() for o in options)
        others = [_describe(k) for k in kinds if not isinstance(k, Options)]
        if others:
            valid += ", " + _or(", ".join(others))
        raise ValueError(f"unknown {name} {value!r}; valid: {valid}.")
    wanted = _or(", ".join(_describe(k) for k in kinds))
    error = TypeError if kinds == ["random_state"] else ValueError
    raise error(f"{name}={value!r} should be {wanted}.")


def _or(listing: str) -> str:
    head, sep, last = listing.rpartition(", ")
    return f"{head} or {last}" if sep and " or " not in last else listing


def validate_params(estimator: Any) -> None:
    """Check every declared parameter of ``estimator`` against its constraints."""
    for name, kinds in type(estimator)._parameter_constraints.items():
        check_param(name, getattr(estimator, name), kinds)
