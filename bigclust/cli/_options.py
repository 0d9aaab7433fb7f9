"""Estimator options generated from each estimator's signature and numpydoc docstring.

Every parameter of the estimator's ``__init__`` becomes ``--name-with-dashes`` with the
estimator's own default; the docstring's type line decides what a value may be (its
``{"a", "b"}`` choices, ``int``, ``float``, ``None``, an ``array-like`` given as a ``.npy``
file) and its first sentence is the help. A new estimator or parameter needs no CLI code.
"""

from __future__ import annotations

import argparse
import inspect
import re
from typing import Any

import numpy as np

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


def _value_parser(name: str, kind: str, default: Any):
    """The argparse ``type`` for one parameter, from its numpydoc type line."""
    type_part = kind.split(", default=")[0]
    choices = re.findall(r'"([^"]+)"', type_part)
    allows_none = default is None or "None" in type_part
    allows_int = re.search(r"\bint\b", type_part) is not None
    allows_float = re.search(r"\bfloat\b", type_part) is not None
    allows_array = "array" in type_part

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


def _metavar(kind: str, default: Any) -> str | None:
    choices = re.findall(r'"([^"]+)"', kind.split(", default=")[0])
    if choices and not re.search(r"\b(int|float|array)", kind):
        return "{" + ",".join(choices) + "}"
    return None


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
        if isinstance(default, bool):
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = _value_parser(name, kind, default)
            options["metavar"] = _metavar(kind, default) or name.upper()
        group.add_argument(*flags, **options)


def estimator_from_args(cls, args: argparse.Namespace):
    """The estimator with every generated option's value."""
    params = {key[len(DEST) :]: value for key, value in vars(args).items() if key.startswith(DEST)}
    return cls(**params)


def supports(cls, name: str) -> bool:
    """Whether ``cls.__init__`` takes parameter ``name``."""
    return name in inspect.signature(cls.__init__).parameters
