"""Running a test module's fast tests again on SQLite, `make run`'s embedded database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def assert_passes_on_sqlite(test_file: str, tmp_path: Path) -> None:
    """Run ``test_file``'s tests not marked slow in a child pytest whose database is a new
    SQLite file, and fail with its output unless they all pass."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'tests.sqlite3'}"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            test_file,
            "-q",
            "-m",
            "not slow",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
