"""Print pip constraints pinning every core dependency to its declared minimum version.

CI installs the package a second time under these constraints and runs the suite there, so a
minimum in pyproject.toml that the code has outgrown fails CI instead of a user's install.

    python3 .ci/min_constraints.py > /tmp/min.txt && pip install -c /tmp/min.txt -e ".[test]"
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

# name[extras] >= version, nothing else: a minimum that is not a plain `>=` cannot be pinned.
REQUIREMENT = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([^\s,;]+)\s*$"
)


def minimum_pins(pyproject: Path) -> list[str]:
    """``name==minimum`` for each core dependency declared in ``pyproject``."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = []
    for requirement in dependencies:
        match = REQUIREMENT.match(requirement)
        if match is None:
            raise SystemExit(f"{pyproject}: core dependency {requirement!r} is not 'name>=minimum'")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


def companion_pins(pins: list[str]) -> list[str]:
    """Upper bounds for test-only packages that need more than our minimums but do not say so.

    pyarrow (reached through dask-ml -> dask[dataframe]) does not declare its numpy requirement,
    and from 26.0 it refuses to import next to NumPy 1.x, so pip would pick one that cannot run.
    """
    numpy = next((pin.split("==")[1] for pin in pins if pin.startswith("numpy==")), None)
    if numpy is not None and int(numpy.split(".")[0]) < 2:
        return ["pyarrow<26"]
    return []


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
    pins = minimum_pins(root / "pyproject.toml")
    print("\n".join(pins + companion_pins(pins)))
