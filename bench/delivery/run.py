"""P4: outbox delivery throughput and faults, with real Celery workers and a webhook receiver.

Everything runs on 127.0.0.1 and is stopped by pid: a throwaway database
``bench_delivery_<pid>`` on the shared PostgreSQL server, a private redis-server on a spare port,
two ``celery -A gatekeeper worker --pool prefork -c 2`` processes, and a threaded HTTP receiver in
this process that verifies each Standard Webhooks signature and counts 2xx answers by
``webhook-id``.

Each rate is measured the same way: the two workers start idle (listening on a private queue),
the default queue is filled (N ``bench.noop`` messages, or N outbox events committed K per
transaction, ``--per-transaction``, 200 by default, each transaction queuing its webhook
deliveries on commit in the app's own dispatch groups), then both workers are told to consume it
at once, and the clock runs until the queue is drained (and, for deliveries, every delivery is
delivered).

Then the fault run: the same N events, one worker SIGKILLed (with its pool children) once a
third has arrived, the Redis server killed and restarted on the same port (its queue is gone:
no persistence), and the redispatch sweep sent as beat would (every 2 s instead of 30 s) until
every delivery is delivered.

``--threads T`` commits from T threads of this process at once (one database connection each),
as a busy web worker's requests would. The report says how many dispatch messages this process
published for the plain run's deliveries.

Usage: ``.venv/bin/python bench/delivery/run.py [--quick] [--events N] [--per-transaction K]
[--threads T]`` (``make bench-delivery``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.cli import positive  # noqa: E402
from bench.delivery import cpu  # noqa: E402
from bench.http.infra import (  # noqa: E402
    VENV_BIN,
    Group,
    ThrowawayRedis,
    throwaway_database,
    wait_for,
)
from tests.servers import PostHandler  # noqa: E402

TARGET_RATIO = 0.5
IDLE_QUEUE = f"bench-idle-{os.getpid()}"
# Fault run only: a short claim lease and no grace, so the sweep takes over lost work quickly.
FAST_SWEEP = {"GATEKEEPER_DELIVERY_LEASE_SECONDS": "2", "GATEKEEPER_REDISPATCH_GRACE_SECONDS": "0"}


class Receiver:
    """Counts 2xx answers per webhook-id; applies each id once, as a Standard Webhooks consumer."""

    def __init__(self) -> None:
        self.secret = ""
        self.ok: Counter[str] = Counter()
        self.applied_events: Counter[str] = Counter()
        self.bad_signatures = 0
        # Requests whose body ended before its Content-Length: the sending worker was killed
        # mid-request. No server can answer those; they are neither delivered nor badly signed.
        self.cut_off = 0
        # CPU seconds the receiver's threads spent on requests (parsing, verifying, answering):
        # it shares the two cores with the workers, so its share is reported, not hidden.
        self.cpu_seconds = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(PostHandler):
            protocol_version = "HTTP/1.1"

            def handle_one_request(self) -> None:
                started = time.thread_time()
                try:
                    super().handle_one_request()
                finally:
                    spent = time.thread_time() - started
                    with receiver._lock:
                        receiver.cpu_seconds += spent

            def do_POST(self) -> None:
                from standardwebhooks import Webhook

                body = self.read_body()
                if body is None:
                    with receiver._lock:
                        receiver.cut_off += 1
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = 200
                try:
                    Webhook(receiver.secret).verify(body, headers)
                except Exception:
                    status = 401
                with receiver._lock:
                    if status == 200:
                        webhook_id = headers["webhook-id"]
                        if webhook_id not in receiver.ok:  # dedupe: apply an id once
                            receiver.applied_events[json.loads(body)["event_key"]] += 1
                        receiver.ok[webhook_id] += 1
                    else:
                        receiver.bad_signatures += 1
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self._lock:
            return len(self.ok)

    def reset(self) -> None:
        with self._lock:
            self.ok.clear()
            self.applied_events.clear()
            self.bad_signatures = 0
            self.cut_off = 0
            self.cpu_seconds = 0.0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 events, a few seconds each")
    parser.add_argument("--events", type=positive, help="events per run (default 10000)")
    parser.add_argument(
        "--per-transaction",
        type=positive,
        default=200,
        metavar="K",
        help="events emitted per committed transaction (default 200, as a sweep's chunk; 1: "
        "each event its own commit, so each delivery its own dispatch message)",
    )
    parser.add_argument(
        "--threads",
        type=positive,
        default=1,
        metavar="T",
        help="threads committing at once in this process (default 1), as a busy web worker's",
    )
    args = parser.parse_args()
    n = args.events or (500 if args.quick else 10_000)

    with (
        tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp,
        throwaway_database("bench_delivery") as db_url,
    ):
        work = Path(tmp)
        redis = ThrowawayRedis(work)
        redis.start()
        receiver = Receiver()
        try:
            env = {
                "DJANGO_SETTINGS_MODULE": "bench.delivery.settings",
                "DJANGO_DEBUG": "0",
                "SECRET_KEY": "bench-only-not-a-secret-" + "x" * 40,
                "SECURE_SSL_REDIRECT": "0",
                "DATABASE_URL": db_url,
                "REDIS_URL": redis.url,
                "CELERY_BROKER_URL": redis.url,
                "GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1",
                "LOG_LEVEL": "WARNING",
            }
            os.environ.update(env)
            return Bench(work, env, redis, receiver, n, args.per_transaction, args.threads).run()
        finally:
            receiver.close()
            redis.stop()


class Bench:
    def __init__(
        self,
        work: Path,
        env: dict[str, str],
        redis: ThrowawayRedis,
        receiver: Receiver,
        n: int,
        per_transaction: int,
        threads: int = 1,
    ) -> None:
        self.work, self.env, self.redis, self.receiver, self.n = work, env, redis, receiver, n
        self.per_transaction = per_transaction
        self.threads = threads
        # Dispatch messages this process's publisher sent since the last emit_events.
        self.messages = 0
        self.generation = 0
        self.noop_cpu: dict[str, float] = {}

    def cpu_parts(self, group: list[Group], *, database: bool = True) -> dict[str, list[int]]:
        """The pids behind each part of the run, for ``cpu.Accounting``."""
        mains = [w.proc.pid for w in group if w.proc is not None and w.alive()]
        parts = {
            "worker main processes": mains,
            "worker pool children": [
                pid for main in mains for pid in cpu.group_pids(main) if pid != main
            ],
        }
        if database:
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pid, pid = pg_backend_pid() FROM pg_stat_activity"
                    " WHERE datname = current_database()"
                )
                backends = cursor.fetchall()
            parts["postgres, workers' sessions"] = [pid for pid, own in backends if not own]
            parts["postgres, bench's polling"] = [pid for pid, own in backends if own]
        if self.redis.proc is not None:
            parts["redis"] = [self.redis.proc.pid]
        # The script itself: the receiver's threads (told apart below) and the polling.
        parts["bench process"] = [os.getpid()]
        return parts

    def database_counters(self) -> tuple[int, float]:
        """This database's sessions opened and time spent in statements (ms) so far."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT sessions, active_time FROM pg_stat_database"
                " WHERE datname = current_database()"
            )
            sessions, active = cursor.fetchone()
        return int(sessions), float(active)

    def run(self) -> int:
        import django

        django.setup()
        from django.core.management import call_command

        from notifications.models import WebhookEndpoint
        from programs.roles import PMO
        from tests import factories as test_factories

        call_command("migrate", verbosity=0)
        user_factory: Any = test_factories.UserFactory
        # A PMO's endpoint: sent every event it subscribes to, whatever initiative it is about
        # (an owner who sees less is sent less: notifications.audience).
        owner = user_factory(username="hook-owner", groups=[PMO])
        endpoint = WebhookEndpoint.objects.create(name="bench", url=self.receiver.url, owner=owner)
        self.receiver.secret = endpoint.secret

        noop_rate = self.noop_rate()
        print(f"no-op: {noop_rate:.1f} tasks/s", flush=True)
        plain = self.deliveries(fault=False)
        print(f"plain: { {k: v for k, v in plain.items() if k != 'cpu'} }", flush=True)
        faulty = self.deliveries(fault=True)
        return report(
            self.n,
            noop_rate,
            plain,
            faulty,
            noop_cpu=self.noop_cpu,
            per_transaction=self.per_transaction,
            threads=self.threads,
        )

    # --- workers --------------------------------------------------------------------------------

    def workers(self, **extra: str) -> list[Group]:
        group: list[Group] = []
        try:
            for name in ("a", "b"):
                group.append(self._worker(name, extra))
                group[-1].start()
            wait_for(
                lambda: len(self._ping()) >= 2 or not all(w.alive() for w in group),
                timeout=60,
                what="two idle workers",
            )
            if not all(w.alive() for w in group):
                raise SystemExit("a worker exited:\n" + "\n".join(w.log()[-2000:] for w in group))
        except BaseException:
            # The caller only stops a group it was given: one that never got ready (a worker
            # exited, the wait ran out, Ctrl-C) is stopped here, or its workers, in sessions
            # of their own, outlive the bench and load the machine of every later run.
            for w in group:
                w.stop()
            raise
        return group

    def _worker(self, name: str, extra: dict[str, str]) -> Group:
        self.generation += 1
        return Group(
            [
                str(VENV_BIN / "celery"),
                "-A",
                "gatekeeper",
                "worker",
                "--pool",
                "prefork",
                "-c",
                "2",
                "-Q",
                IDLE_QUEUE,
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"bench-{name}-{os.getpid()}-{self.generation}@%h",
            ],
            env={**os.environ, **self.env, **extra},
            log=self.work / f"worker-{self.generation}.log",
        )

    def _ping(self) -> list[Any]:
        from gatekeeper.celery import app

        try:
            return list(app.control.ping(timeout=0.5) or [])
        except Exception:
            return []

    def consume_default_queue(self, group: list[Group], *, answered: bool = True) -> None:
        """Tell the live workers of ``group`` to consume the default queue.

        The clock is running: the broadcast returns as soon as every live worker answered
        (``limit``) instead of waiting out its 2 s timeout, which had capped a short run's
        no-op rate at N per 2 s; unanswered, it is sent again. After the Redis restart
        (``answered=False``) it is sent once without waiting: answers may not find their way
        back to us then, and the fault run sends it again with every sweep.
        """
        from gatekeeper.celery import app

        workers = sum(1 for w in group if w.alive())
        problem = "no answer"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                replies = app.control.add_consumer(
                    "celery", reply=answered, timeout=2, limit=workers
                )
                if not answered or len(replies or []) >= workers:
                    return
                problem = f"{len(replies or [])} of {workers} workers answered"
            except Exception as exc:  # a pooled connection to the Redis that was restarted
                problem = repr(exc)
                _reset_producer_pools()
            time.sleep(0.2)
        logs = "\n".join(f"--- {w.log_path.name}\n{w.log()[-3000:]}" for w in group if w.alive())
        raise SystemExit(f"could not tell the workers to consume the queue: {problem}\n{logs}")

    def queued(self) -> int:
        """Messages waiting or delivered to a worker but not acknowledged (acks are late)."""
        import redis

        client = redis.Redis.from_url(self.redis.url)
        try:
            waiting = sum(int(client.llen(k)) for k in client.scan_iter("celery*"))
            return waiting + int(client.hlen("unacked"))
        except redis.RedisError:
            return -1
        finally:
            client.close()

    # --- runs -----------------------------------------------------------------------------------

    def noop_rate(self) -> float:
        from bench.delivery.tasks import noop

        group = self.workers()
        try:
            for i in range(self.n):
                noop.apply_async(args=[[i]])
            accounting = cpu.Accounting()
            accounting.start(self.cpu_parts(group, database=False))
            started = time.monotonic()
            self.consume_default_queue(group)
            wait_for(lambda: self.queued() == 0, timeout=600, what="the no-op tasks")
            elapsed = time.monotonic() - started
            self.noop_cpu = accounting.stop(self.cpu_parts(group, database=False), seconds=elapsed)
            return self.n / elapsed
        finally:
            for w in group:
                w.stop()

    def emit_events(self, run: str) -> None:
        from django.db import connection, transaction

        from notifications.outbox import emit
        from notifications.publisher import publisher

        if not getattr(publisher, "_bench_counted", False):
            # Counted where the publisher thread hands them to the broker call.
            inner = publisher._publish

            def counting(groups: Any) -> object:
                self.messages += len(groups)
                return inner(groups)

            publisher._publish = counting
            publisher._bench_counted = True  # type: ignore[attr-defined]
        self.messages = 0
        step = self.per_transaction
        starts = range(0, self.n, step)

        def commit(mine: range) -> None:
            for start in mine:
                with transaction.atomic():
                    for i in range(start, min(start + step, self.n)):
                        emit(
                            "initiative.stalled",
                            {"initiative": {"id": i, "key": f"AI-{i:05d}"}, "recipients": []},
                            key=f"bench:{run}:{i}",
                        )

        if self.threads == 1:
            commit(starts)
            return

        def in_thread(k: int) -> None:
            try:
                commit(starts[k :: self.threads])
            finally:
                connection.close()

        committers = [threading.Thread(target=in_thread, args=(k,)) for k in range(self.threads)]
        for t in committers:
            t.start()
        for t in committers:
            t.join()

    def deliveries(self, *, fault: bool) -> dict[str, Any]:
        from notifications.models import Delivery, DeliveryStatus
        from notifications.tasks import redispatch

        run = "fault" if fault else "plain"
        cpu_usage: dict[str, float] = {}
        database: dict[str, float] = {}
        self.receiver.reset()
        group = self.workers(**(FAST_SWEEP if fault else {}))
        killed_at = restarted_at = -1
        revived = 0
        expected: set[str] = set()
        started = time.monotonic()
        try:
            self.emit_events(run)
            mine = Delivery.objects.filter(event__key__startswith=f"bench:{run}:")
            expected = {d.webhook_id for d in mine.only("uuid")}
            if not expected:
                raise RuntimeError(f"{run}: the events planned no webhook delivery")
            accounting = cpu.Accounting()
            accounting.start(self.cpu_parts(group))
            sessions_before, active_before = self.database_counters()
            started = time.monotonic()
            self.consume_default_queue(group)

            def done() -> bool:
                return not mine.exclude(status=DeliveryStatus.DELIVERED).exists()

            if fault:
                wait_for(lambda: self.receiver.count() >= self.n // 3, timeout=600, what="a third")
                group[0].kill()
                killed_at = self.receiver.count()
                self.redis.stop()
                self.redis.start()  # same port, empty: whatever was queued is gone
                _reset_producer_pools()
                restarted_at = self.receiver.count()
                self.consume_default_queue(group, answered=False)
                deadline = time.monotonic() + 600
                last_sweep = 0.0
                while not done() and time.monotonic() < deadline:
                    # The surviving worker can exit on the Redis restart (kombu's Redis transport:
                    # "Unrecoverable error: AttributeError(... 'hostname')" while it closes the
                    # lost connection, seen about once in ten runs, with or without this
                    # branch's changes). Compose restarts an exited worker (restart:
                    # unless-stopped); so does this run, and it says so.
                    for worker in group[1:]:
                        if not worker.alive():
                            said = [
                                line[:300]
                                for line in worker.log().splitlines()
                                if '"level": "critical"' in line or '"level": "error"' in line
                            ]
                            print(f"--- {worker.log_path.name} exited:", *said[-3:], sep="\n")
                            worker.start()
                            revived += 1
                    # What beat does every 30 s, here every 2 s, backlog or not: a sweep leaves
                    # what it queued alone for the re-queue interval (60 s), so sweeping a
                    # backlog faster than workers clear it does not flood the queue.
                    if time.monotonic() - last_sweep >= 2:
                        try:
                            redispatch.delay()
                            last_sweep = time.monotonic()
                            # A worker still reconnecting when it was first sent missed it.
                            self.consume_default_queue(group, answered=False)
                        except Exception:
                            _reset_producer_pools()
                    time.sleep(0.5)
            else:
                wait_for(lambda: self.queued() == 0 and done(), timeout=900, what="deliveries")
            elapsed = time.monotonic() - started
            if not fault:
                usage = accounting.stop(self.cpu_parts(group), seconds=elapsed)
                usage["bench process"] -= self.receiver.cpu_seconds
                usage["receiver threads (in it)"] = self.receiver.cpu_seconds
                cpu_usage = usage
                # Statistics reach pg_stat_database when a session reports (about once a second).
                time.sleep(1.5)
                sessions_after, active_after = self.database_counters()
                database = {
                    "sessions opened": sessions_after - sessions_before,
                    "ms in statements": active_after - active_before,
                }
            wait_for(lambda: self.receiver.count() >= len(expected), timeout=10, what="receiver")
        except TimeoutError:
            elapsed = time.monotonic() - started
        finally:
            for w in group:
                w.stop()
        received = set(self.receiver.ok)
        if expected - received:
            # What the workers said is the only account of a run that did not finish.
            for w in group:
                print(f"--- {w.log_path.name} (tail)\n{w.log()[-4000:]}", flush=True)
        result = {
            "expected": len(expected),
            "delivered_db": mine.filter(status=DeliveryStatus.DELIVERED).count(),
            "received": len(received & expected),
            "lost": len(expected - received),
            "raw_duplicates": sum(1 for i in expected if self.receiver.ok[i] > 1),
            "applied_twice": sum(1 for c in self.receiver.applied_events.values() if c > 1),
            "bad_signatures": self.receiver.bad_signatures,
            "cut_off": self.receiver.cut_off,
            "seconds": elapsed,
            "rate": len(expected) / elapsed if elapsed else 0.0,
            "cpu": cpu_usage,
            "database": database,
            "messages": self.messages,
        }
        if fault:
            result.update(killed_at=killed_at, redis_restarted_at=restarted_at, revived=revived)
        return result


def _reset_producer_pools() -> None:
    # The app and kombu cache connection and producer pools per broker URL; after a Redis
    # restart their connections are dead, so drop them all and let the next call make new ones.
    from kombu import pools

    from gatekeeper.celery import app

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def report(
    n: int,
    noop_rate: float,
    plain: dict[str, Any],
    faulty: dict[str, Any],
    *,
    noop_cpu: dict[str, float] | None = None,
    per_transaction: int = 200,
    threads: int = 1,
) -> int:
    committers = f", committed from {threads} threads" if threads > 1 else ""
    print(
        f"\nP4 delivery: {n} events ({per_transaction} per transaction{committers}),"
        " 2 workers (prefork -c 2),"
        f" throwaway Redis, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}),"
        " receiver on 127.0.0.1"
    )
    print(f"celery no-op task rate:        {noop_rate:8.1f} tasks/s")
    print(f"webhook delivery rate:         {plain['rate']:8.1f} deliveries/s")
    ratio = plain["rate"] / noop_rate if noop_rate else 0.0
    print(f"ratio delivery / no-op:        {ratio:8.0%}")
    for name, r in (("plain run", plain), ("fault run", faulty)):
        extra = ""
        if "killed_at" in r:
            extra = (
                f"; worker SIGKILLed after {r['killed_at']} received, Redis restarted after "
                f"{r['redis_restarted_at']}, workers restarted after exiting {r['revived']}"
            )
        print(
            f"{name}: delivered {r['received']}/{r['expected']} (db {r['delivered_db']}), "
            f"lost {r['lost']}, duplicated raw {r['raw_duplicates']}, applied twice after dedupe "
            f"{r['applied_twice']}, bad signatures {r['bad_signatures']}, requests cut off "
            f"mid-body {r['cut_off']}, {r['seconds']:.1f}s{extra}"
        )
    print(f"dispatch messages published for the plain run: {plain['messages']}")
    if noop_cpu:
        print(f"CPU per no-op task, by part ({n / noop_rate:.1f} s):")
        print(cpu.describe(noop_cpu, count=n, seconds=n / noop_rate))
    if plain.get("cpu"):
        print(f"CPU per delivery in the plain run, by part ({plain['seconds']:.1f} s):")
        print(cpu.describe(plain["cpu"], count=plain["expected"], seconds=plain["seconds"]))
    if plain.get("database"):
        sessions = plain["database"]["sessions opened"]
        active = plain["database"]["ms in statements"]
        count = plain["expected"] or 1
        print(
            f"database in the plain run: {sessions} sessions opened ({sessions / count:.2f} per"
            f" delivery), {active / count:.2f} ms in statements per delivery"
        )
    lost = plain["lost"] + faulty["lost"]
    twice = plain["applied_twice"] + faulty["applied_twice"]
    targets = [
        (
            f"delivery >= {TARGET_RATIO:.0%} of the no-op rate",
            ratio >= TARGET_RATIO,
            f"{ratio:.0%}",
        ),
        ("0 lost", lost == 0, str(lost)),
        ("0 applied twice", twice == 0, str(twice)),
    ]
    for name, met, value in targets:
        print(f"target {name}: {'MET' if met else 'NOT MET'} ({value})")
    broken = lost or twice or plain["bad_signatures"] or faulty["bad_signatures"]
    if broken:
        print("ERROR: deliveries lost, applied twice, or badly signed")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
