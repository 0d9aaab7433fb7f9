"""The README's Quick start is what CI runs, and its main job works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import bigclust
from bigclust.cli import main

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert commands[0].endswith("bigclust demo")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci, "the README's test command must be what .ci/run executes"


SMALL_DEMO = "demo --n-samples 20000 --n-features 4 --centers 4 --n-clusters 4".split()
RECOVERED = "adjusted Rand index against the true blobs: 1.0000"


def test_demo_runs_and_recovers_the_blobs(capsys, tmp_path):
    assert main([*SMALL_DEMO, "--scheduler", "threads", "--model", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert RECOVERED in out
    # both models checked against scikit-learn on a sample, and saved
    assert out.count("labels 100.00% equal") == 2
    assert isinstance(bigclust.load(tmp_path / "gmm"), bigclust.GaussianMixture)
    assert isinstance(bigclust.load(tmp_path / "kmeans"), bigclust.KMeans)


@pytest.mark.slow
def test_demo_on_its_default_local_cluster(capsys, tmp_path):
    # The Quick start's main job runs on an in-process LocalCluster of worker processes, with
    # the generated data persisted on the workers: the path a plain threaded test misses.
    assert main([*SMALL_DEMO, "--workers", "2", "--model", str(tmp_path)]) == 0
    assert RECOVERED in capsys.readouterr().out
