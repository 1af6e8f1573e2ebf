"""Every bench count refuses 0, a negative number and a non-number with a usage error, before
any database is made: each script reads a missing count as its default, so 0 would silently
mean the default and a negative count would run nothing and fail on an empty sample."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import positive

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text", ["0", "-3", "x", "1.5", ""])
def test_a_count_below_one_or_not_a_whole_number_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        positive(text)


def test_a_count_of_one_or_more_is_taken():
    assert positive("1") == 1
    assert positive("750") == 750


@pytest.mark.parametrize(
    ("command", "argument"),
    [
        (["-m", "bench.engine"], "--rounds"),
        (["-m", "bench.reads"], "--rounds"),
        (["-m", "bench.reads"], "--initiatives"),
        (["-m", "bench.generate"], "--initiatives"),
        (["bench/http/run.py"], "--rounds"),
        (["bench/http/run.py"], "--decisions"),
        (["bench/delivery/run.py"], "--events"),
        (["bench/delivery/run.py"], "--per-transaction"),
        (["manage.py", "generate_portfolio"], "--transitions-per"),
    ],
)
def test_each_script_refuses_a_zero_count_with_a_usage_error(command, argument):
    run = subprocess.run(
        [sys.executable, *command, argument, "0"],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "bench.settings", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"argument {argument}: 0 must be at least 1" in run.stderr
