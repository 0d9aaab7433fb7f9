"""Estimator options generated from each estimator's signature, parameter constraints and
numpydoc docstring.

Every parameter of the estimator's ``__init__`` becomes ``--name-with-dashes`` with the
estimator's own default; its declared constraints (``_parameter_constraints``) decide what a
value may be (named options, ints, numbers, ``none``, an array given as a ``.npy`` file, a
flag for booleans), and the first sentence of its docstring entry is the help. A new
estimator or parameter needs no CLI code.
"""

from __future__ import annotations

import argparse
import inspect
import numbers
import re
from typing import Any

import numpy as np

from bigclust._params import Interval, Options

#: Parameters that make no sense for a fit from the command line.
SKIPPED = frozenset({"warm_start"})
DEST = "param_"


def parameter_docs(cls) -> dict[str, tuple[str, str]]:
    """``{name: (type line, first sentence)}`` from the Parameters section of ``cls``."""
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^Parameters\n-+\n(.*?)(?:^\w[\w ]*\n-{3,}\n|\Z)", doc, re.S | re.M)
    docs: dict[str, tuple[str, str]] = {}
    name = None
    for line in (match.group(1) if match else "").splitlines():
        header = re.match(r"^(\w+) : (.*)$", line)
        if header:
            name = header.group(1)
            docs[name] = (" ".join(header.group(2).split()), "")
        elif name and line.strip():
            kind, text = docs[name]
            docs[name] = (kind, f"{text} {line.strip()}".strip())
    return {
        key: (kind, re.split(r"(?<=[.:;])\s", text, maxsplit=1)[0].rstrip(":;"))
        for key, (kind, text) in docs.items()
    }


def _value_parser(name: str, kinds: list):
    """The argparse ``type`` for one parameter, from its declared constraints (see
    :mod:`bigclust._params`): named options, ints, numbers, ``none``, a ``.npy`` array."""
    choices = [v for k in kinds if isinstance(k, Options) for v in k.values if isinstance(v, str)]
    intervals = [k for k in kinds if isinstance(k, Interval)]
    allows_int = "random_state" in kinds or any(k.type is numbers.Integral for k in intervals)
    allows_float = any(k.type is numbers.Real for k in intervals)
    allows_none = None in kinds or "random_state" in kinds
    allows_array = "array-like" in kinds
    allows_path = str in kinds  # a path or URL (e.g. checkpoint=), taken as given

    def parse(text: str):
        if text in choices:
            return text
        if allows_none and text.lower() == "none":
            return None
        if allows_int:
            try:
                return int(text)
            except ValueError:
                pass
        if allows_float:
            try:
                return float(text)
            except ValueError:
                pass
        if allows_path:
            return text
        if allows_array and text.endswith(".npy"):
            try:
                return np.load(text, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise argparse.ArgumentTypeError(f"cannot read {text}: {err}") from None
        accepted = [repr(c) for c in choices]
        accepted += ["an int"] * allows_int + ["a number"] * (allows_float and not allows_int)
        accepted += ["a .npy file"] * allows_array + ["none"] * allows_none
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}; expected {' or '.join(accepted) or 'a string'}"
        )

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def _metavar(name: str, kinds: list) -> str:
    if all(isinstance(k, Options) for k in kinds):
        return "{" + ",".join(str(v) for k in kinds for v in k.values) + "}"
    return name.upper()


def _help_text(kind: str, text: str) -> str:
    """The first sentence of the description, without reST markup; a description that is a
    list (one item per choice) becomes the list of accepted values."""
    type_part = kind.split(", default=")[0]
    if text.startswith("-") or not text:
        choices = re.findall(r'"([^"]+)"', type_part)
        text = "one of " + ", ".join(choices) if choices else type_part
    if "array" in type_part:
        text = text.rstrip(".") + "; an array as a .npy file"
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")


def add_estimator_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """One option per parameter of ``cls``, with the estimator's default."""
    docs = parameter_docs(cls)
    constraints = cls._parameter_constraints
    group = parser.add_argument_group(f"{cls.__name__} parameters")
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in SKIPPED or param.kind is param.VAR_KEYWORD:
            continue
        default = param.default
        kind, text = docs.get(name, ("", ""))
        text = _help_text(kind, text)
        flags = [f"--{name.replace('_', '-')}"]
        if name == "random_state":
            flags.append("--seed")
        options: dict[str, Any] = {"dest": DEST + name, "default": default, "help": text or name}
        kinds = constraints.get(name, [])
        if kinds == ["boolean"]:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = _value_parser(name, kinds)
            options["metavar"] = _metavar(name, kinds)
        group.add_argument(*flags, **options)


def estimator_from_args(cls, args: argparse.Namespace):
    """The estimator with every generated option's value."""
    params = {key[len(DEST) :]: value for key, value in vars(args).items() if key.startswith(DEST)}
    return cls(**params)


def supports(cls, name: str) -> bool:
    """Whether ``cls.__init__`` takes parameter ``name``."""
    return name in inspect.signature(cls.__init__).parameters
