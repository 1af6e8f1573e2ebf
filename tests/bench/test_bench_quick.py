"""Every bench script runs at CI size and prints its target lines (no timing is asserted:
the figures are for people to read, bench/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ["generate", "engine", "reads", "sweeps"]


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_runs_quick(script: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{script}", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    targets = [line for line in done.stdout.splitlines() if line.startswith("TARGET ")]
    assert targets, done.stdout[-3000:]
    assert all(line.endswith(("... met", "... NOT MET")) for line in targets), targets
