"""The examples run and do what they say, on small data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_kmeans_out_of_core_example():
    agreement = load("kmeans_out_of_core").main(
        ["--n-samples", "40000", "--n-features", "4", "--n-clusters", "4", "--workers", "1"]
    )
    assert agreement > 0.99
