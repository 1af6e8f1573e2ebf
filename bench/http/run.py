"""P1: deciding approvals over HTTP vs. bare endpoints making the same writes, in one run.

Starts, on 127.0.0.1 only and stopped by pid: a throwaway database ``bench_http_<pid>`` on the
shared PostgreSQL server (migrated, dropped at the end), a private redis-server on a spare port
(broker and cache, as in production), and gunicorn serving ``bench.http.settings``. Locust (16
users, no think time) then drives, one after another against the same gunicorn:

1. ``POST /api/v1/approvals/{id}/decision/`` with the approver's knox token, each call deciding
   its review (quorum reached, initiative advanced, review log, outbox events and deliveries);
2. ``POST /bench/same-writes/``: the same row writes in raw SQL, no checks;
3. ``POST /bench/one-row/{unit}/``: one UPDATE.

Usage: ``.venv/bin/python bench/http/run.py [--quick]`` (``make bench-http``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.http.infra import (  # noqa: E402
    VENV_BIN,
    Group,
    ThrowawayRedis,
    free_port,
    port_answers,
    throwaway_database,
    wait_for,
)

USERS = 16
# Deciding approvals spent warming the workers before the clock starts: several per worker
# (--quick: a few, it only must run).
WARM_DECISIONS = 48
WARM_DECISIONS_QUICK = 8
TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0
TARGET_QUERIES = 25
MD5 = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, a few seconds each")
    parser.add_argument("--decisions", type=int, help="deciding approvals to pre-create")
    parser.add_argument("--seconds", type=int, help="duration of each bare-endpoint run")
    parser.add_argument("--workers", type=int, default=5, help="gunicorn sync workers")
    args = parser.parse_args()
    decisions = args.decisions or (24 if args.quick else 400)
    seconds = args.seconds or (3 if args.quick else 15)

    with (
        tempfile.TemporaryDirectory(prefix="bench-http-") as tmp,
        throwaway_database("bench_http") as db_url,
    ):
        work = Path(tmp)
        redis = ThrowawayRedis(work)
        redis.start()
        try:
            env = _environment(db_url, redis.url)
            os.environ.update(env)
            warm = WARM_DECISIONS_QUICK if args.quick else WARM_DECISIONS
            return _run(
                work, env, decisions=decisions, seconds=seconds, workers=args.workers, warm=warm
            )
        finally:
            redis.stop()


def _environment(db_url: str, redis_url: str) -> dict[str, str]:
    # Production mode (no DEBUG query log), throttles on but far above the load, so their cost
    # is measured and their refusals are not.
    return {
        "DJANGO_SETTINGS_MODULE": "bench.http.settings",
        "DJANGO_DEBUG": "0",
        "SECRET_KEY": "bench-only-not-a-secret-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "API_RATE_CALLER": "1000000/min",
        "API_RATE_WRITE": "1000000/min",
        "LOG_LEVEL": "WARNING",
    }


def _run(
    work: Path, env: dict[str, str], *, decisions: int, seconds: int, workers: int, warm: int
) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    started = time.monotonic()
    call_command("migrate", verbosity=0)
    seeded = decisions + 1 + warm
    pool = _seed(seeded)
    print(f"seeded {seeded} deciding approvals in {time.monotonic() - started:.0f}s")
    counted = _count_queries(pool["decisions"].pop())
    warm_jobs = [pool["decisions"].pop() for _ in range(warm)]
    connections.close_all()
    pool_path = work / "pool.json"
    pool_path.write_text(json.dumps(pool))

    port = free_port()
    gunicorn = Group(
        [
            str(VENV_BIN / "gunicorn"),
            "gatekeeper.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env={**os.environ, **env},
        log=work / "gunicorn.log",
    )
    gunicorn.start()
    try:
        wait_for(lambda: port_answers(port), timeout=30, what="gunicorn")
        _warm_up(port, pool, warm_jobs)
        started_at = _database_now()
        # Capped generously: the run ends when every deciding approval is used.
        decision = _locust(work, port, pool_path, "decision", 30 if decisions <= 50 else 300)
        decision.update(_decided_since(started_at))
        results = {
            "decision": decision,
            "same_writes": _locust(work, port, pool_path, "same_writes", seconds),
            "one_row": _locust(work, port, pool_path, "one_row", seconds),
        }
    finally:
        gunicorn.stop()
    # The bare same-writes endpoint marks its own target reviews decided too.
    decided = _decided_reviews() - len(pool["targets"])
    return _report(results, counted, decided - warm, workers=workers)


def _seed(n: int) -> dict[str, Any]:
    """``n`` submitted G1 reviews whose last approval is pending, and the bare endpoints' rows."""
    from django.test import override_settings
    from knox.models import AuthToken

    from gates import services
    from gates.models import GateReview
    from programs.models import BusinessUnit
    from programs.roles import APPROVERS, PMO
    from tests import factories as test_factories
    from tests.gates.helpers import pending, submitted_review

    # factory_boy's classes return model instances; typed as Any so the checker agrees.
    f: Any = test_factories
    UserFactory, InitiativeFactory = f.UserFactory, f.InitiativeFactory
    SuccessMetricFactory = f.SuccessMetricFactory

    # Seeding only: the measured requests authenticate with tokens, never passwords.
    with override_settings(PASSWORD_HASHERS=MD5):
        pmo = UserFactory(username="pmo.lead", groups=[PMO])
        for role in ("business", "risk", "platform", "security"):
            approver = UserFactory(username=f"{role}.approver", groups=[APPROVERS])
            services.gate_approver_assign(actor=None, user=approver, role=role)
        services.gate_approver_assign(actor=None, user=pmo, role="pmo")
        owners = [UserFactory(groups=["business-owners"]) for _ in range(8)]
        lead, sponsor = UserFactory(username="delivery.lead"), UserFactory()
        tokens = {u.pk: AuthToken.objects.create(user=u)[1] for u in [pmo, *owners]}
        reviews: list[GateReview] = []
        jobs = []
        for i in range(n + USERS):
            initiative = InitiativeFactory(
                business_owner=owners[i % len(owners)], sponsor=sponsor, delivery_lead=lead
            )
            SuccessMetricFactory(initiative=initiative)
            review = submitted_review(initiative, lead)
            waiting = pending(review)
            # Alternate which approver decides last, so the calls come from several people.
            last = waiting[i % len(waiting)]
            for approval in waiting:
                if approval.pk != last.pk:
                    approver = approval.approver
                    services.approval_decide(
                        approval=approval, actor=approver, decision="approve", comment="ok"
                    )
            if i < n:
                jobs.append({"approval": last.pk, "token": tokens[last.approver_id]})
            else:
                reviews.append(review)
        # One set of rows per client for the bare endpoints, so they never wait on each other.
        targets = []
        for slot, review in enumerate(reviews):
            initiative = review.initiative
            approval = pending(review)[0]
            unit = BusinessUnit.objects.create(code=f"bench-{slot}", name=f"Bench {slot}")
            people = [lead.pk, sponsor.pk, initiative.business_owner_id, pmo.pk]
            targets.append(
                {
                    "approval": approval.pk,
                    "review": review.pk,
                    "initiative": initiative.pk,
                    "actor": approval.approver_id,
                    "users": people,
                    "unit": unit.pk,
                }
            )
    return {"decisions": jobs, "targets": targets}


def _count_queries(job: dict[str, Any]) -> dict[str, int]:
    """Queries of one deciding API call, in-process, from authentication to the response."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {job['token']}")
    with CaptureQueriesContext(connection) as ctx:
        response = api.post(
            f"/api/v1/approvals/{job['approval']}/decision/",
            {"decision": "approve", "comment": "bench"},
            format="json",
        )
    if response.status_code != 200:
        raise SystemExit(
            f"the counted decision failed: {response.status_code} {response.content!r}"
        )
    kinds = {"total": len(ctx.captured_queries)}
    for query in ctx.captured_queries:
        verb = query["sql"].split(None, 1)[0].upper()
        kinds[verb] = kinds.get(verb, 0) + 1
    return kinds


def _warm_up(port: int, pool: dict[str, Any], warm: list[dict[str, Any]]) -> None:
    """Every worker boots, imports what each endpoint needs, connects and compiles its
    statements before the clock starts, as a server that has been up for a while has.

    Gunicorn's workers boot after the port answers, and each imports the API's modules on its
    first request to it: seconds of CPU per worker on this machine. Sent one at a time, the
    warm-up's requests could all land on the first worker ready, leaving that cost inside the
    decisions' measured run (the first run of three) and out of the bare endpoints'. So the
    warm-up sends from as many threads as the run has clients, each endpoint in turn: the
    deciding calls (on reviews of their own, not counted), then both bare endpoints."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    base = f"http://127.0.0.1:{port}"

    def decide(job: dict[str, Any]) -> int:
        return requests.post(
            f"{base}/api/v1/approvals/{job['approval']}/decision/",
            json={"decision": "approve", "comment": "warm-up"},
            headers={"Authorization": f"Token {job['token']}"},
            timeout=60,
        ).status_code

    def bare(slot: int) -> int:
        target = pool["targets"][slot % len(pool["targets"])]
        same = requests.post(f"{base}/bench/same-writes/", json=target, timeout=60)
        one = requests.post(f"{base}/bench/one-row/{target['unit']}/", timeout=60)
        return max(same.status_code, one.status_code)

    with ThreadPoolExecutor(USERS) as threads:
        answers = [*threads.map(decide, warm), *threads.map(bare, range(2 * USERS))]
    if any(code != 200 for code in answers):
        raise SystemExit(f"the warm-up failed: answers {sorted(set(answers))}")


def _locust(work: Path, port: int, pool: Path, mode: str, seconds: int) -> dict[str, float]:
    prefix = work / mode
    completed = subprocess.run(
        [
            str(VENV_BIN / "locust"),
            "-f",
            str(ROOT / "bench/http/locustfile.py"),
            "--headless",
            "--users",
            str(USERS),
            "--spawn-rate",
            str(USERS),
            "--run-time",
            f"{seconds}s",
            "--stop-timeout",
            "10",
            "--host",
            f"http://127.0.0.1:{port}",
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "ERROR",
        ],
        cwd=ROOT,
        env={**os.environ, "BENCH_MODE": mode, "BENCH_POOL": str(pool)},
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise SystemExit(f"locust ({mode}) wrote no stats:\n{completed.stdout}\n{completed.stderr}")
    with stats.open() as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "rps": _number(row["Requests/s"]),
        "p50": _number(row["50%"]),
        "p99": _number(row["99%"]),
    }


def _number(cell: str) -> float:
    # Locust writes "N/A" for a percentile of a window that recorded no request (a --quick
    # decision run can finish its few decisions before locust starts counting): not a number,
    # so every target it feeds reads NOT MET instead of the run crashing.
    try:
        return float(cell)
    except ValueError:
        return float("nan")


def _database_now() -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def _decided_since(started_at: Any) -> dict[str, float]:
    """The decision run's throughput as the server saw it: reviews decided since it began, over
    the time from the first decision to the last. Locust's figure comes from its own window,
    which can miss the last requests of a run that ends when the pool of decisions runs out."""
    from django.db import connections
    from django.db.models import Count, Max, Min

    from gates.models import GateReview

    connections.close_all()
    seen = GateReview.objects.filter(state="approved", decided_at__gte=started_at).aggregate(
        n=Count("id"), first=Min("decided_at"), last=Max("decided_at")
    )
    span = (seen["last"] - seen["first"]).total_seconds() if seen["n"] > 1 else 0.0
    return {"server_decided": seen["n"], "server_rps": seen["n"] / span if span else float("nan")}


def _decided_reviews() -> int:
    from django.db import connections

    from gates.models import GateReview

    connections.close_all()
    return GateReview.objects.filter(state="approved").count()


def _report(
    results: dict[str, dict[str, float]], counted: dict[str, int], decided: int, *, workers: int
) -> int:
    labels = {
        "decision": "deciding approval (API)",
        "same_writes": "bare: same writes, raw SQL",
        "one_row": "bare: one-row UPDATE",
    }
    print(
        f"\nP1 gate decisions over HTTP: {USERS} locust users, gunicorn {workers} sync workers, "
        f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}), 127.0.0.1"
    )
    print(
        f"{'endpoint':<28} {'requests':>8} {'failed':>6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for mode, r in results.items():
        print(
            f"{labels[mode]:<28} {r['requests']:>8.0f} {r['failures']:>6.0f} {r['rps']:>8.1f} "
            f"{r['p50']:>7.0f} {r['p99']:>7.0f}"
        )
    ours, same, one = results["decision"], results["same_writes"], results["one_row"]
    print(
        f"deciding approvals as the server saw them: {ours['server_decided']:.0f} decided, "
        f"{ours['server_rps']:.1f}/s from the first decision to the last"
    )
    # Judged on the lower of locust's figure and the server's, so neither flatters.
    server = ours["server_rps"]
    rps = ours["rps"] if math.isnan(server) else min(ours["rps"], server)
    ratio = rps / same["rps"] if same["rps"] else 0.0
    print(
        f"ratio ours / same writes: {ratio:.0%} (locust {ours['rps'] / same['rps']:.0%}, "
        f"server {ours['server_rps'] / same['rps']:.0%})"
        if same["rps"]
        else "ratio ours / same writes: n/a"
    )
    print(f"ratio ours / one row:     {rps / one['rps'] if one['rps'] else 0:.0%}")
    breakdown = ", ".join(f"{k} {v}" for k, v in counted.items() if k != "total")
    print(
        f"queries per deciding approval (one API call, in-process): {counted['total']} "
        f"({breakdown})"
    )
    targets = [
        (f"ours >= {TARGET_RATIO:.0%} of same-writes req/s", ratio >= TARGET_RATIO, f"{ratio:.0%}"),
        (
            f"p99 < {TARGET_P99_MS:.0f} ms at {USERS} clients",
            ours["p99"] < TARGET_P99_MS,
            f"{ours['p99']:.0f} ms",
        ),
        (
            f"<= {TARGET_QUERIES} queries per deciding approval",
            counted["total"] <= TARGET_QUERIES,
            str(counted["total"]),
        ),
    ]
    for name, met, value in targets:
        print(f"target {name}: {'MET' if met else 'NOT MET'} ({value})")
    # Every 200 must have decided its review (plus the one counted in-process).
    expected = ours["requests"] - ours["failures"] + 1
    print(f"reviews decided: {decided} (expected {expected:.0f})")
    failed = any(r["failures"] for r in results.values()) or decided < expected
    if failed:
        print("ERROR: failed requests or decisions that did not decide their review")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
