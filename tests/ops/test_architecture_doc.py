"""docs/architecture.md names real code: every `module:qualname` in it resolves."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
REFERENCE = re.compile(r"`([a-z_]+(?:\.[a-z_]+)*):([A-Za-z_][A-Za-z0-9_.]*)`")


def _references() -> list[tuple[str, str]]:
    return sorted(set(REFERENCE.findall(DOC.read_text())))


def test_the_doc_names_code_at_all():
    assert len(_references()) >= 30


@pytest.mark.parametrize(("module", "qualname"), _references())
def test_each_named_function_exists(module, qualname):
    target = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    assert callable(target) or isinstance(target, dict), f"{module}:{qualname} is not code"


def test_the_readme_points_at_the_architecture_not_at_team_notes():
    readme = (DOC.parents[1] / "README.md").read_text()
    assert "docs/architecture.md" in readme
    assert "DESIGN.md" not in readme
