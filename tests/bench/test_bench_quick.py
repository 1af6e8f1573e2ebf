"""Every bench script runs at CI size and prints its target lines (no timing is asserted:
the figures are for people to read, bench/README.md)."""

from __future__ import annotations

import sys

import pytest

from tests.bench.scripts import run_script

SCRIPTS = ["generate", "engine", "reads", "sweeps"]


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_runs_quick(script: str) -> None:
    done = run_script([sys.executable, "-m", f"bench.{script}", "--quick"], timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    targets = [line for line in done.stdout.splitlines() if line.startswith("TARGET ")]
    assert targets, done.stdout[-3000:]
    assert all(line.endswith(("... met", "... NOT MET")) for line in targets), targets
    if script == "reads":
        # The list's third side, the bare DRF view (bench.urls), answered and was timed.
        assert "ratio bare DRF view/raw:" in done.stdout, done.stdout[-3000:]
