"""The HTTP and delivery benchmarks run end to end with --quick, and their correctness holds.

Speed targets are printed, not asserted: on a shared two-core machine they measure the
neighbours too. What is asserted is what must hold at any speed: every request succeeded,
every 200 decided its review, no delivery was lost or applied twice.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.bench.scripts import run_script

pytestmark = pytest.mark.slow

# The scripts set up their own database, broker and settings; nothing of the test run's.
DROPPED = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")


def run(script: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    completed = run_script([sys.executable, script, "--quick"], timeout=540, env=env)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    return completed.stdout


def test_http_quick_reports_every_endpoint_and_target():
    out = run("bench/http/run.py")
    for line in (
        "deciding approval (API)",
        "bare: same writes, raw SQL",
        "bare: one-row UPDATE",
        "ratio ours / same writes:",
        "queries per deciding approval",
        "target ours >= 50% of same-writes req/s:",
        "target p99 < 100 ms at 16 clients:",
        "target <= 25 queries per deciding approval:",
    ):
        assert line in out, out


def test_delivery_quick_loses_nothing_and_applies_nothing_twice():
    out = run("bench/delivery/run.py")
    assert "plain run: delivered 500/500" in out, out
    assert "fault run: delivered 500/500" in out, out
    assert "target 0 lost: MET" in out, out
    assert "target 0 applied twice: MET" in out, out
    assert "ratio delivery / no-op:" in out, out
