"""Throwaway infrastructure the benchmarks start and stop by pid, all on 127.0.0.1.

Nothing here touches the machine's shared PostgreSQL server beyond creating and dropping one
database of our own, nor its shared Redis: a private ``redis-server`` runs on a spare port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.servers import ThrowawayRedis, free_port, wait_for

# The throwaway servers are the fault tests' own (tests/servers.py); the benches use them too.
__all__ = [
    "PG_SERVER",
    "ROOT",
    "VENV_BIN",
    "Group",
    "ThrowawayRedis",
    "free_port",
    "port_answers",
    "throwaway_database",
    "wait_for",
]

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PG_SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """Create ``<prefix>_<pid>`` on the shared server, yield its URL, drop it afterwards."""
    import psycopg

    name = f"{prefix}_{os.getpid()}"
    admin = f"{PG_SERVER}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Group:
    """A child in its own process group, so a signal reaches it and its children, and only them."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log: Path) -> None:
        self.argv = argv
        self.env = env
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
