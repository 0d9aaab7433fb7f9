"""The documentation lives in the repository, and its links and examples resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "examples" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_inside_the_repository(page):
    text = page.read_text()
    assert "shared/" not in text, f"{page.name} points outside the repository"
    for target in LINK.findall(text):
        if "://" in target:
            continue
        path = (page.parent / target).resolve()
        assert path.exists(), f"{page.name} links to {target}, which does not exist"
        assert ROOT in path.parents or path == ROOT, f"{page.name}: {target} is outside"


def test_docs_exist_and_the_readme_links_them():
    readme = (ROOT / "README.md").read_text()
    for name in ("coming-from-scikit-learn.md", "architecture.md"):
        assert (ROOT / "docs" / name).is_file()
        assert f"docs/{name}" in readme


def test_every_example_script_is_listed_and_tested():
    listed = (ROOT / "examples" / "README.md").read_text()
    tests = (ROOT / "tests" / "test_examples.py").read_text()
    for script in (ROOT / "examples").glob("[!_]*.py"):
        assert f"`{script.name}`" in listed, f"{script.name} is missing from examples/README.md"
        assert f'"{script.stem}"' in tests, f"{script.name} is not run by tests/test_examples.py"
