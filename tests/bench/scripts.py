"""Running a bench script from a test, so that one running over its time still cleans up."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_script(
    argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` of a bench script from the repository root, except on timeout: the
    script is interrupted (SIGINT), not killed, and given a minute to stop the servers and
    workers it started in sessions of their own and drop its database; a kill would leave them
    loading the machine for every later test."""
    with subprocess.Popen(
        list(argv),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            pytest.fail(f"{' '.join(argv)} ran over {timeout:.0f} s:\n{(out + err)[-4000:]}")
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
