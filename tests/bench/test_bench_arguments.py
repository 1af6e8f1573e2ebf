"""Every bench count refuses 0, a negative number and a non-number with a usage error, before
any database is made: each script reads a missing count as its default, so 0 would silently
mean the default and a negative count would run nothing and fail on an empty sample. And a
script a test runs over its time is interrupted, not killed, so it can clean up."""

from __future__ import annotations

import argparse
import sys

import pytest

from bench.cli import positive
from tests.bench.scripts import run_script


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
    run = run_script(
        [sys.executable, *command, argument, "0"],
        timeout=120,
        env={"DJANGO_SETTINGS_MODULE": "bench.settings", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"argument {argument}: 0 must be at least 1" in run.stderr


def test_a_script_over_its_time_is_interrupted_so_it_can_clean_up(tmp_path):
    marker = tmp_path / "cleaned"
    script = (
        "import time\n"
        "try:\n"
        "    print('started', flush=True)\n"
        "    time.sleep(60)\n"
        "finally:\n"
        f"    open({str(marker)!r}, 'w').write('yes')\n"
    )
    with pytest.raises(pytest.fail.Exception, match="ran over 2 s"):
        run_script([sys.executable, "-c", script], timeout=2)
    assert marker.read_text() == "yes"
