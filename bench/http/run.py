"""P1: deciding approvals over HTTP vs. bare endpoints making the same writes, in one run.

Starts, on 127.0.0.1 only and stopped by pid: a throwaway database ``bench_http_<pid>`` on the
shared PostgreSQL server (migrated, dropped at the end), a private redis-server on a spare port
(broker and cache, as in production), and gunicorn serving ``bench.http.settings``. Locust (16
users, no think time) then drives, one window after another against the same gunicorn:

1. ``POST /api/v1/approvals/{id}/decision/`` with the approver's knox token, each call deciding
   its review (quorum reached, initiative advanced, review log, outbox events and deliveries);
2. ``POST /bench/same-writes/``: the same row writes in raw SQL, no checks;
3. ``POST /bench/one-row/{unit}/``: one UPDATE.

The three windows run in rounds, the order reversed every other round (1 2 3, 3 2 1, ...), so a
machine that slows down or speeds up during the run weighs on every endpoint alike. The ratio
is taken per round and judged on the median round.

Usage: ``.venv/bin/python bench/http/run.py [--quick]`` (``make bench-http``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.cli import positive  # noqa: E402
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
MODES = ("decision", "same_writes", "one_row")
TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0
TARGET_QUERIES = 25
MD5 = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, a few seconds each")
    parser.add_argument("--decisions", type=positive, help="deciding approvals to pre-create")
    parser.add_argument("--rounds", type=positive, help="rounds of the three windows")
    parser.add_argument("--seconds", type=positive, help="duration of each bare-endpoint window")
    parser.add_argument("--workers", type=positive, default=5, help="gunicorn sync workers")
    args = parser.parse_args()
    decisions = args.decisions or (24 if args.quick else 750)
    rounds = args.rounds or (1 if args.quick else 5)
    seconds = args.seconds or (3 if args.quick else 6)
    if decisions < 2 * rounds:
        parser.error("--decisions must be at least twice --rounds")

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
                work,
                env,
                decisions=decisions,
                rounds=rounds,
                seconds=seconds,
                workers=args.workers,
                warm=warm,
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
    work: Path,
    env: dict[str, str],
    *,
    decisions: int,
    rounds: int,
    seconds: int,
    workers: int,
    warm: int,
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
    # Each round's decision window uses its own share of the deciding approvals.
    share = len(pool["decisions"]) / rounds
    pools = []
    for r in range(rounds):
        path = work / f"pool-{r}.json"
        jobs = pool["decisions"][round(r * share) : round((r + 1) * share)]
        path.write_text(json.dumps({"decisions": jobs, "targets": pool["targets"]}))
        pools.append(path)
    reviews = [t["review"] for t in pool["targets"]]

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
        results: list[dict[str, dict[str, Any]]] = []
        for r in range(rounds):
            order = MODES if r % 2 == 0 else MODES[::-1]
            results.append({})
            for mode in order:
                results[r][mode] = _window(work, port, pools[r], mode, seconds, reviews, r)
    finally:
        gunicorn.stop()
    # The bare same-writes endpoint marks its own target reviews decided too.
    decided = _decided_reviews() - len(pool["targets"])
    return _report(results, counted, decided - warm, workers=workers)


def _window(
    work: Path,
    port: int,
    pool: Path,
    mode: str,
    seconds: int,
    reviews: list[int],
    index: int,
) -> dict[str, Any]:
    """One locust window, with the rate the server saw where its rows carry a time."""
    started_at = _database_now()
    # A decision window is capped generously: it ends when its deciding approvals are used.
    result = _locust(work, port, pool, mode, 300 if mode == "decision" else seconds, index)
    if mode == "decision":
        result.update(_decided_since(started_at, excluding=reviews))
    elif mode == "same_writes":
        result.update(_same_writes_since(started_at))
    return result


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


def _locust(
    work: Path, port: int, pool: Path, mode: str, seconds: int, index: int
) -> dict[str, Any]:
    report = work / f"{mode}-{index}.json"
    completed = subprocess.run(
        [
            str(VENV_BIN / "locust"),
            "-f",
            str(ROOT / "bench/http/locustfile.py"),
            "--headless",
            "--users",
            str(USERS),
            # Every client starts at once: a ramp would count inside short windows.
            "--spawn-rate",
            str(USERS * 100),
            "--run-time",
            f"{seconds}s",
            "--stop-timeout",
            "10",
            "--host",
            f"http://127.0.0.1:{port}",
            "--json-file",
            str(report.with_suffix("")),
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
    if not report.exists():
        raise SystemExit(f"locust ({mode}) wrote no stats:\n{completed.stdout}\n{completed.stderr}")
    entries = json.loads(report.read_text())
    # One entry per endpoint name; the window calls one endpoint.
    times: dict[int, int] = {}
    requests = failures = 0
    first, last = math.inf, 0.0
    for entry in entries:
        requests += entry["num_requests"]
        failures += entry["num_failures"]
        first = min(first, entry["start_time"])
        last = max(last, entry["last_request_timestamp"] or 0.0)
        for ms, n in entry["response_times"].items():
            times[int(float(ms))] = times.get(int(float(ms)), 0) + n
    span = last - first
    return {
        "requests": requests,
        "failures": failures,
        "rps": requests / span if requests and span > 0 else float("nan"),
        "times": times,
        "p50": _percentile(times, 0.50),
        "p99": _percentile(times, 0.99),
    }


def _percentile(times: dict[int, int], fraction: float) -> float:
    """Locust's percentile of its histogram (response times in rounded milliseconds). An empty
    window gives NaN, so every target it feeds reads NOT MET instead of the run crashing."""
    total = sum(times.values())
    if not total:
        return float("nan")
    # As locust.stats.calculate_response_time_percentile counts.
    below, seen = int(total * fraction), 0
    for ms in sorted(times, reverse=True):
        seen += times[ms]
        if total - seen <= below:
            return float(ms)
    return 0.0


def _rate(n: int, first: Any, last: Any) -> float:
    """Events per second between the first and the last of ``n`` events (n - 1 intervals)."""
    span = (last - first).total_seconds() if n > 1 else 0.0
    return (n - 1) / span if span > 0 else float("nan")


def _database_now() -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def _decided_since(started_at: Any, *, excluding: list[int]) -> dict[str, float]:
    """The decision window's throughput as the server saw it: reviews decided since it began
    (not the bare endpoints' own target reviews), from the first decision to the last."""
    from gates.models import GateReview

    decided = GateReview.objects.filter(state="approved", decided_at__gte=started_at)
    return _seen(decided.exclude(pk__in=excluding), "decided_at")


def _same_writes_since(started_at: Any) -> dict[str, float]:
    """The same-writes window's throughput as the server saw it, measured as the decisions'
    is: the stage changes it recorded, from the first to the last."""
    from programs.models import StageTransition

    moved = StageTransition.objects.filter(transition="bench", created_at__gte=started_at)
    return _seen(moved, "created_at")


def _seen(rows: Any, stamp: str) -> dict[str, float]:
    """How many ``rows`` there are, and their rate over their ``stamp`` column's span."""
    from django.db import connections
    from django.db.models import Count, Max, Min

    connections.close_all()
    seen = rows.aggregate(n=Count("id"), first=Min(stamp), last=Max(stamp))
    return {"server_count": seen["n"], "server_rps": _rate(seen["n"], seen["first"], seen["last"])}


def _decided_reviews() -> int:
    from django.db import connections

    from gates.models import GateReview

    connections.close_all()
    return GateReview.objects.filter(state="approved").count()


def _report(
    results: list[dict[str, dict[str, Any]]],
    counted: dict[str, int],
    decided: int,
    *,
    workers: int,
) -> int:
    labels = {
        "decision": "deciding approval (API)",
        "same_writes": "bare: same writes, raw SQL",
        "one_row": "bare: one-row UPDATE",
    }
    print(
        f"\nP1 gate decisions over HTTP: {USERS} locust users, gunicorn {workers} sync workers, "
        f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}), 127.0.0.1, "
        f"{len(results)} round(s) of the three windows, every other round in reverse order"
    )
    print(
        f"{'round':<5} {'endpoint':<28} {'requests':>8} {'failed':>6} {'req/s':>8} "
        f"{'server/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
    )
    ratios, one_ratios = [], []
    for r, windows in enumerate(results, 1):
        for mode in MODES:
            w = windows[mode]
            server = f"{w['server_rps']:>8.1f}" if "server_rps" in w else f"{'':>8}"
            print(
                f"{r:<5} {labels[mode]:<28} {w['requests']:>8} {w['failures']:>6} "
                f"{w['rps']:>8.1f} {server} {w['p50']:>7.0f} {w['p99']:>7.0f}"
            )
        ours, same = _judged(windows["decision"]), _judged(windows["same_writes"])
        ratios.append(ours / same if same else float("nan"))
        one = windows["one_row"]["rps"]
        one_ratios.append(ours / one if one else float("nan"))
    print("ratio ours / same writes per round: " + ", ".join(f"{x:.0%}" for x in ratios))
    ratio = statistics.median(ratios)
    print(f"ratio ours / same writes: {ratio:.0%} (median of {len(ratios)} round(s))")
    print(f"ratio ours / one row:     {statistics.median(one_ratios):.0%} (median)")
    ours_times: dict[int, int] = {}
    for windows in results:
        for ms, n in windows["decision"]["times"].items():
            ours_times[ms] = ours_times.get(ms, 0) + n
    p50, p99 = _percentile(ours_times, 0.50), _percentile(ours_times, 0.99)
    print(
        f"deciding approval latency over all rounds ({sum(ours_times.values())} requests): "
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms"
    )
    breakdown = ", ".join(f"{k} {v}" for k, v in counted.items() if k != "total")
    print(
        f"queries per deciding approval (one API call, in-process): {counted['total']} "
        f"({breakdown})"
    )
    targets = [
        (f"ours >= {TARGET_RATIO:.0%} of same-writes req/s", ratio >= TARGET_RATIO, f"{ratio:.0%}"),
        (f"p99 < {TARGET_P99_MS:.0f} ms at {USERS} clients", p99 < TARGET_P99_MS, f"{p99:.0f} ms"),
        (
            f"<= {TARGET_QUERIES} queries per deciding approval",
            counted["total"] <= TARGET_QUERIES,
            str(counted["total"]),
        ),
    ]
    for name, met, value in targets:
        print(f"target {name}: {'MET' if met else 'NOT MET'} ({value})")
    # Every 200 must have decided its review (plus the one counted in-process).
    answered = sum(w["decision"]["requests"] - w["decision"]["failures"] for w in results)
    expected = answered + 1
    print(f"reviews decided: {decided} (expected {expected})")
    failed = any(w[m]["failures"] for w in results for m in MODES) or decided < expected
    if failed:
        print("ERROR: failed requests or decisions that did not decide their review")
    return 1 if failed else 0


def _judged(window: dict[str, Any]) -> float:
    """A window's rate: the lower of locust's and the server's, so neither flatters."""
    server = window.get("server_rps", float("nan"))
    return window["rps"] if math.isnan(server) else min(window["rps"], server)


if __name__ == "__main__":
    sys.exit(main())
