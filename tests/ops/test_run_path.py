"""`make run`'s path end to end on the embedded default: SQLite + the filesystem broker.

scripts/run.sh migrates, seeds and starts web + worker + beat from the Procfile; the test then
sends a task through the filesystem broker and waits for the separate worker process to run it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.ops.helpers import PYTHON, ROOT, clean_env, free_port

pytestmark = pytest.mark.slow


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_make_run_path_serves_and_the_worker_consumes_tasks(tmp_path):
    port = free_port()
    env = clean_env(DJANGO_DEBUG="1", GATEKEEPER_VAR_DIR=str(tmp_path), PORT=str(port))
    proc = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")))
    reader.daemon = True
    reader.start()
    try:

        def web_up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        _wait_for(web_up, 90, "the web process\n" + "".join(output))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=5) as r:
            assert r.status == 200
        assert (tmp_path / "gatekeeper.sqlite3").exists()
        assert any("Demo portfolio loaded" in line for line in output)
        _wait_for(
            lambda: any("celery@" in ln and "ready" in ln for ln in output), 60, "worker ready"
        )

        send = subprocess.run(
            [PYTHON, "-c", "from gatekeeper.celery import ping; print(ping.delay().id)"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert send.returncode == 0, send.stderr
        task_id = send.stdout.strip().splitlines()[-1]
        _wait_for(
            lambda: any(task_id in line and "succeeded" in line for line in output),
            60,
            f"task {task_id} to run in the worker\n" + "".join(output[-40:]),
        )
        assert any("beat" in line and "Starting" in line for line in output)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
