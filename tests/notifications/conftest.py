"""Fixtures for the notifications tests: a real HTTP receiver, throwaway Redis, real workers.

Nothing here stops or reconfigures the machine's shared PostgreSQL or Redis (DESIGN.md §3):
fault tests run their own ``redis-server`` on a spare loopback port and kill only that pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from standardwebhooks import Webhook

from gatekeeper.celery import app as celery_app
from notifications.destinations import close_shared_webhook_client
from notifications.models import WebhookEndpoint
from tests.factories import UserFactory
from tests.servers import PostHandler, ThrowawayRedis, wait_for

ROOT = Path(__file__).resolve().parents[2]


# --- a webhook receiver --------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook consumer done right: verifies the signature, applies each webhook-id once.

    ``script`` replies to the first requests in order, then ``default`` to the rest.
    """

    def __init__(self) -> None:
        self.secret: str | None = None
        self.script: list[Reply] = []
        self.default = Reply()
        self.requests: list[Received] = []
        self.applied: Counter[str] = Counter()
        # Per event: if a retry ever came with a new webhook-id, its event would count twice.
        self.applied_events: Counter[str] = Counter()
        self.verify_errors: list[str] = []
        # Bodies that ended before their Content-Length: the sending worker was killed
        # mid-request. Nothing can be answered to those; they are not signature failures.
        self.cut_off = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(PostHandler):
            def do_POST(self) -> None:
                body = self.read_body()
                if body is None:
                    with receiver._lock:
                        receiver.cut_off += 1
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(Received(self.path, headers, body))
                    reply = receiver.script.pop(0) if receiver.script else receiver.default
                if reply.delay:
                    time.sleep(reply.delay)
                if 200 <= reply.status < 300 and receiver.secret:
                    try:
                        Webhook(receiver.secret).verify(body, headers)
                    except Exception as exc:
                        receiver.verify_errors.append(repr(exc))
                        reply = Reply(status=401)
                    else:
                        with receiver._lock:
                            # Idempotent consumer: a redelivered id is acknowledged, not re-applied.
                            if headers["webhook-id"] not in receiver.applied:
                                receiver.applied[headers["webhook-id"]] += 1
                                event_key = json.loads(body)["event_key"]
                                receiver.applied_events[event_key] += 1
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def ids_received(self) -> list[str]:
        with self._lock:
            return [r.headers["webhook-id"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _no_kept_webhook_connections() -> Iterator[None]:
    """Each test starts and ends without kept webhook connections (its receivers are its own)."""
    close_shared_webhook_client()
    yield
    close_shared_webhook_client()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def owner():
    # Sees every initiative, so its endpoint is sent every event it subscribes to, as the PMO's
    # are; tests/notifications/test_endpoint_audience.py covers owners who see less.
    return UserFactory(username="hook-owner", email="hook-owner@example.com", is_superuser=True)


@pytest.fixture
def endpoint(receiver: Receiver, owner) -> WebhookEndpoint:
    ep = WebhookEndpoint.objects.create(name="ticketing", url=receiver.url, owner=owner)
    receiver.secret = ep.secret
    return ep


# --- Celery in-process -----------------------------------------------------------------------


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Run enqueued tasks inline, so on-commit dispatch is observable without a worker."""
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


def _reset_producer_pools() -> None:
    # The app caches its connection and producer pools for the URL it first used.
    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    celery_app._pool = None
    amqp = celery_app.amqp
    if amqp._producer_pool is not None:
        amqp._producer_pool.force_close_all()
    amqp._producer_pool = None


# --- throwaway Redis -------------------------------------------------------------------------


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    redis = ThrowawayRedis(tmp_path)
    redis.start()
    previous = celery_app.conf.broker_url
    celery_app.conf.broker_url = redis.url
    _reset_producer_pools()
    yield redis
    celery_app.conf.broker_url = previous
    _reset_producer_pools()
    redis.stop()


# --- real worker processes -------------------------------------------------------------------


class Worker:
    """``celery -A gatekeeper worker --pool prefork -c 2`` against the pytest database."""

    def __init__(self, broker_url: str, env: dict[str, str], log_dir: Path) -> None:
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "gatekeeper.settings_test",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CELERY_BROKER_URL": broker_url,
            "REDIS_URL": broker_url,
            **env,
        }
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.generation = 0

    def start(self) -> None:
        self.generation += 1
        self.log_path = self.log_dir / f"worker-{self.generation}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/celery"),
                    "-A",
                    "gatekeeper",
                    "worker",
                    "--pool",
                    "prefork",
                    "-c",
                    "2",
                    "--loglevel",
                    "INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-n",
                    f"notif-test-{os.getpid()}-{self.generation}@%h",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own process group: SIGKILL reaches the pool children too, and only them.
                start_new_session=True,
            )
        wait_for(
            lambda: "ready." in self.log() or self.proc.poll() is not None,  # type: ignore[union-attr]
            timeout=20,
            what="the celery worker to be ready",
        )
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited early:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def kill(self) -> None:
        """SIGKILL the worker and its pool children: no shutdown, no acks, no cleanup."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture
def worker_factory(transactional_db, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []
    log_dir = Path(tempfile.mkdtemp(prefix="workers-", dir=tmp_path))

    def make(broker_url: str, **env: str) -> Worker:
        w = Worker(broker_url, env, log_dir)
        workers.append(w)
        return w

    yield make
    for w in workers:
        w.stop()
    # Failing fault tests are hard to read without the worker's side of the story.
    for w in workers:
        if w.log_path and w.log_path.exists():
            sys.stderr.write(f"\n--- {w.log_path.name} (tail) ---\n{w.log()[-3000:]}\n")


def payload_with(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "initiative": {"id": 1, "key": "AI-001", "name": "Claims triage", "stage": "pilot"},
        "recipients": [],
    }
    base.update(extra)
    json.dumps(base)  # payloads must be JSON
    return base
