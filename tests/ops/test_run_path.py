"""`make run`'s path end to end on the embedded default: SQLite + the filesystem broker.

scripts/run.sh migrates, seeds and starts web + worker + beat from the Procfile; the test then
sends a task through the filesystem broker and waits for the separate worker process to run it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from typing import IO, cast

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


def _session_envs(session_id: int) -> list[dict[str, str]]:
    """The environments of every live process in a session (the ones run.sh started)."""
    envs = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != session_id:  # field 6 of stat: the session id
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                raw = f.read().split(b"\0")
        except OSError:
            continue
        envs.append(dict(item.decode().split("=", 1) for item in raw if b"=" in item))
    return envs


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start(env: dict[str, str], output: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    reader = threading.Thread(
        target=lambda: output.extend(iter(cast(IO[str], proc.stdout).readline, ""))
    )
    reader.daemon = True
    reader.start()
    return proc


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _web_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_make_run_serves_on_the_readme_port_without_any_port_set(tmp_path):
    """honcho hands the first process PORT=5000 unless told otherwise; the README says :8000."""
    if not _port_free(8000):
        pytest.skip("something already listens on 127.0.0.1:8000 (a running `make run`?)")
    env = clean_env(DJANGO_DEBUG="1", GATEKEEPER_VAR_DIR=str(tmp_path))
    env.pop("PORT", None)
    env.pop("SITE_URL", None)
    output: list[str] = []
    proc = _start(env, output)
    try:
        _wait_for(lambda: _web_up(8000), 90, "the web process on :8000\n" + "".join(output))
        site_urls = {e.get("SITE_URL") for e in _session_envs(proc.pid) if "PORT" in e}
        assert site_urls == {"http://127.0.0.1:8000"}
    finally:
        _stop(proc)


def test_make_run_path_serves_and_the_worker_consumes_tasks(tmp_path):
    port = free_port()
    env = clean_env(DJANGO_DEBUG="1", GATEKEEPER_VAR_DIR=str(tmp_path), PORT=str(port))
    output: list[str] = []
    proc = _start(env, output)
    try:
        _wait_for(lambda: _web_up(port), 90, "the web process\n" + "".join(output))
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
        # Links in emails (the worker sends them) point where the web really listens.
        worker_envs = [e for e in _session_envs(proc.pid) if "PORT" in e]
        assert worker_envs
        assert {e.get("SITE_URL") for e in worker_envs} == {f"http://127.0.0.1:{port}"}
    finally:
        _stop(proc)
