"""`python -m gatekeeper.probe`: readiness for processes without an HTTP server (compose's
worker and beat healthchecks)."""

from __future__ import annotations

import subprocess

from tests.ops.helpers import PYTHON, ROOT, clean_env


def test_probe_fails_before_migrate_and_passes_after(tmp_path):
    env = clean_env(DJANGO_DEBUG="1", GATEKEEPER_VAR_DIR=str(tmp_path))

    def probe() -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "-m", "gatekeeper.probe"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    before = probe()
    assert before.returncode == 1
    assert "unapplied migration" in before.stderr
    migrate = subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    after = probe()
    assert after.returncode == 0, after.stderr
