"""P2: the PMO's portfolio reads on a generated portfolio, each next to hand-written SQL that
computes the same numbers (``RAW_*`` below), timed in interleaved rounds in one process.

- ``programs.portfolio.portfolio_summary`` (what /api/v1/portfolio/summary returns);
- the initiative list API, ``GET /api/v1/initiatives/?limit=50`` as a PMO user (django.test.Client,
  session login: middleware, auth, serialization and JSON included);
- the PMO dashboard page, ``GET /dashboard/`` (every panel, rendered), with its flow panel
  computed and with it served from the warm cache (how a PMO gets it on a large portfolio).

The raw side runs its SQL through the same connection and fetches every row into Python, but
renders nothing; its SQL is the smart version a person would write (aggregates pushed into the
database, partial indexes used).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from bench import common
from bench.cli import positive

TARGET_QUERIES = 6
TARGET_RATIO = 1.5
SLOW_S = 60.0

ACTIVE = "('proposed', 'pilot', 'integration', 'hardening')"

RAW_SUMMARY = [
    """SELECT u.code, i.stage, count(*) FROM programs_initiative i
       JOIN programs_businessunit u ON u.id = i.business_unit_id GROUP BY 1, 2""",
    f"""SELECT
         (SELECT count(DISTINCT initiative_id) FROM programs_milestone
           WHERE status = 'open' AND due_at < now()),
         (SELECT count(*) FROM programs_initiative
           WHERE stage IN {ACTIVE} AND stall_at <= now())""",
    f"""SELECT stage, percentile_cont(0.5) WITHIN GROUP
           (ORDER BY extract(epoch FROM now() - stage_entered_at) / 86400)
       FROM programs_initiative WHERE stage IN {ACTIVE} GROUP BY stage""",
    """SELECT count(DISTINCT initiative_id) FILTER (WHERE to_stage = 'pilot'),
              count(DISTINCT initiative_id) FILTER (WHERE to_stage = 'operations')
       FROM programs_stagetransition WHERE to_stage IN ('pilot', 'operations')""",
]

RAW_LIST = [
    "SELECT count(*) FROM programs_initiative",
    """SELECT i.key, i.name, i.summary, u.code, o.username, s.username, l.username, i.risk_tier,
              i.target_workflow, i.stage, i.held_from, i.stage_entered_at, i.stall_at, i.health,
              i.created_at, i.updated_at,
              (SELECT coalesce(json_agg(json_build_object('system', r.system, 'key', r.key,
                                                          'url', r.url) ORDER BY r.system, r.key),
                               '[]')
                 FROM programs_externalreference r WHERE r.initiative_id = i.id),
              (SELECT coalesce(json_agg(json_build_object(
                          'id', m.id, 'name', m.name, 'unit', m.unit, 'baseline', m.baseline,
                          'target', m.target, 'direction', m.direction,
                          'current_value', m.current_value, 'measured_at', m.measured_at)
                        ORDER BY m.name, m.id), '[]')
                 FROM programs_successmetric m WHERE m.initiative_id = i.id),
              (SELECT json_build_object('id', n.id, 'title', n.title, 'stage', n.stage,
                                        'due_at', n.due_at,
                                        'owner', (SELECT p.username FROM auth_user p
                                                   WHERE p.id = n.owner_id))
                 FROM programs_milestone n
                WHERE n.initiative_id = i.id AND n.status = 'open'
                ORDER BY n.due_at, n.id LIMIT 1)
       FROM programs_initiative i
       JOIN programs_businessunit u ON u.id = i.business_unit_id
       LEFT JOIN auth_user o ON o.id = i.business_owner_id
       LEFT JOIN auth_user s ON s.id = i.sponsor_id
       LEFT JOIN auth_user l ON l.id = i.delivery_lead_id
       ORDER BY i.key LIMIT 50""",
]

# One stalled/in-stage row with every figure the page shows, for the rows a query picks.
_ROW = """SELECT i.id, i.key, i.name, u.code, u.name, i.stage, i.risk_tier, i.health,
              o.username, o.first_name, o.last_name, s.username, l.username,
              i.stage_entered_at, i.stall_at,
              (SELECT count(*) FROM programs_milestone m
                WHERE m.initiative_id = i.id AND m.status = 'open'),
              (SELECT count(*) FROM programs_milestone m
                WHERE m.initiative_id = i.id AND m.status = 'open' AND m.due_at < now()),
              (SELECT min(due_at) FROM programs_milestone m
                WHERE m.initiative_id = i.id AND m.status = 'open' AND m.due_at < now()),
              EXISTS (SELECT 1 FROM programs_successmetric m WHERE m.initiative_id = i.id
                      AND m.baseline IS NOT NULL AND m.target IS NOT NULL),
              (SELECT max(created_at) FROM programs_stagetransition t WHERE t.initiative_id = i.id),
              (SELECT min(created_at) FROM programs_stagetransition t
                WHERE t.initiative_id = i.id AND t.to_stage = 'pilot'),
              (SELECT min(created_at) FROM programs_stagetransition t
                WHERE t.initiative_id = i.id AND t.to_stage = 'operations')
       FROM programs_initiative i
       JOIN programs_businessunit u ON u.id = i.business_unit_id
       LEFT JOIN auth_user o ON o.id = i.business_owner_id
       LEFT JOIN auth_user s ON s.id = i.sponsor_id
       LEFT JOIN auth_user l ON l.id = i.delivery_lead_id"""

# What the page shows without the flow: counts, the first 50 of each list.
RAW_DASHBOARD_PANELS = [
    # Funnel, unit x stage, and how many are stalled.
    f"""SELECT u.code, i.stage, count(*),
              count(*) FILTER (WHERE i.stage IN {ACTIVE} AND i.stall_at <= now())
       FROM programs_initiative i
       JOIN programs_businessunit u ON u.id = i.business_unit_id GROUP BY 1, 2""",
    # The 50 stalled furthest past their time.
    f"""{_ROW} WHERE i.stage IN {ACTIVE} AND i.stall_at <= now()
       ORDER BY i.stall_at, i.key LIMIT 50""",
    # The 50 in an active stage with most of their budget used.
    f"""{_ROW} WHERE i.stage IN {ACTIVE}
       ORDER BY extract(epoch FROM now() - i.stage_entered_at)
                / nullif(extract(epoch FROM i.stall_at - i.stage_entered_at), 0) DESC NULLS LAST,
                i.key LIMIT 50""",
    # Overdue milestones: the count per owner, then the first 50 of the owners with the most.
    """SELECT m.owner_id, p.username, p.first_name, p.last_name, count(*)
       FROM programs_milestone m JOIN auth_user p ON p.id = m.owner_id
       WHERE m.status = 'open' AND m.due_at < now() GROUP BY 1, 2, 3, 4
       ORDER BY 5 DESC""",
    """WITH top AS (
           SELECT owner_id, count(*) AS n FROM programs_milestone
           WHERE status = 'open' AND due_at < now()
           GROUP BY owner_id ORDER BY n DESC, owner_id LIMIT 50
       )
       SELECT * FROM (
           SELECT m.id, m.title, m.due_at, i.key, m.owner_id,
                  row_number() OVER (PARTITION BY m.owner_id ORDER BY m.due_at, m.id) AS nth
           FROM programs_milestone m JOIN top ON top.owner_id = m.owner_id
           JOIN programs_initiative i ON i.id = m.initiative_id
           WHERE m.status = 'open' AND m.due_at < now()
       ) x WHERE nth <= 50 ORDER BY due_at, id""",
]

# The flow panel: conversion and median completed stay per active stage, per unit.
RAW_FLOW = [
    # A stay ends with a
    # record leaving an active stage for anything but on hold; its length is the time spent in
    # active stages since the previous stay ended (hold time excluded).
    f"""WITH t AS (
           SELECT st.id, st.initiative_id, u.code, st.from_stage, st.created_at,
                  st.created_at - coalesce(lag(st.created_at) OVER w, i.created_at) AS spent,
                  st.from_stage IN {ACTIVE} AND st.to_stage <> 'on_hold' AS ends
           FROM programs_stagetransition st
           JOIN programs_initiative i ON i.id = st.initiative_id
           JOIN programs_businessunit u ON u.id = i.business_unit_id
           WINDOW w AS (PARTITION BY st.initiative_id ORDER BY st.created_at, st.id)
       ), s AS (
           SELECT *, coalesce(sum(ends::int) OVER (PARTITION BY initiative_id
                     ORDER BY created_at, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                     0) AS stay
           FROM t
       ), stays AS (
           SELECT code, max(from_stage) FILTER (WHERE ends) AS stage,
                  extract(epoch FROM sum(spent) FILTER (WHERE from_stage IN {ACTIVE})) / 86400
                     AS days
           FROM s GROUP BY code, initiative_id, stay HAVING bool_or(ends)
       )
       SELECT code, stage, percentile_cont(0.5) WITHIN GROUP (ORDER BY days), count(*)
       FROM stays GROUP BY ROLLUP (code), stage""",
    """SELECT u.code, count(DISTINCT st.initiative_id) FILTER (WHERE st.to_stage = 'pilot'),
              count(DISTINCT st.initiative_id) FILTER (WHERE st.to_stage = 'operations')
       FROM programs_stagetransition st JOIN programs_initiative i ON i.id = st.initiative_id
       JOIN programs_businessunit u ON u.id = i.business_unit_id
       WHERE st.to_stage IN ('pilot', 'operations') GROUP BY ROLLUP (u.code)""",
]


def flow_cache(fetch: Callable[[], int], *, cached: bool) -> Callable[[], int]:
    """``fetch`` with the dashboard's flow cache off, or on and warmed first (as beat does)."""
    from django.conf import settings
    from django.test import override_settings

    from dashboard.selectors import flow_warm

    threshold = 0 if cached else 10**9
    conf = override_settings(
        GATEKEEPER={**settings.GATEKEEPER, "DASHBOARD_FLOW_CACHE_FROM": threshold}
    )
    if cached:
        with conf:
            flow_warm()

    def run() -> int:
        with conf:
            return fetch()

    return run


def raw(statements: list[str]) -> int:
    from django.db import connection

    rows = 0
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
            rows += len(cursor.fetchall())
    return rows


def main() -> None:
    from bench import generate

    args = common.arguments(
        __doc__.splitlines()[0],
        initiatives={"type": positive, "default": None, "help": "default 100000 (quick: 2000)"},
        rounds={"type": positive, "default": None},
        only={
            "default": None,
            "help": "only the reads whose name contains this, e.g. initiatives (more rounds of "
            "one read without the dashboard's minutes)",
        },
    )
    common.setup()
    size = generate.QUICK if args.quick else generate.FULL
    if args.initiatives:
        size = generate.Size(initiatives=args.initiatives)
    rounds = args.rounds or (5 if args.quick else 3)
    with common.throwaway_database():
        generate.generate(size)
        run(size.initiatives, rounds, args.only)


def run(initiatives: int, rounds: int, only: str | None = None) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from programs.portfolio import portfolio_summary
    from programs.roles import PMO

    pmo = get_user_model().objects.create_user(username="bench.pmo", email="pmo@example.com")
    pmo.groups.add(Group.objects.get(name=PMO))
    pmo = get_user_model().objects.get(pk=pmo.pk)
    client = Client()
    client.force_login(pmo)

    def get(path: str):
        def fetch() -> int:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            return len(response.content)

        return fetch

    # Each read is set up when its turn comes: warming the flow cache takes seconds, and
    # --only skips what it does not time. The fourth item, where there is one, is the path of a
    # bare DRF view serving the raw SQL (bench.views): the framework's own floor, same login.
    cases: list[tuple[str, Callable[[], Callable[[], Any]], list[str], str | None]] = [
        ("portfolio_summary", lambda: partial(portfolio_summary, user=pmo), RAW_SUMMARY, None),
        (
            "GET /api/v1/initiatives/?limit=50",
            lambda: get("/api/v1/initiatives/?limit=50"),
            RAW_LIST,
            "/bench/initiatives-raw/",
        ),
        # The flow panel reads the whole transition history. From DASHBOARD_FLOW_CACHE_FROM
        # initiatives a PMO gets it from the cache beat keeps warm (the page says as of when):
        # timed both ways, each against raw SQL computing what that page computes.
        (
            "GET /dashboard/, flow computed",
            lambda: flow_cache(get("/dashboard/"), cached=False),
            [*RAW_DASHBOARD_PANELS, *RAW_FLOW],
            None,
        ),
        (
            "GET /dashboard/, flow from the warm cache",
            lambda: flow_cache(get("/dashboard/"), cached=True),
            RAW_DASHBOARD_PANELS,
            None,
        ),
    ]
    print(f"P2 portfolio reads at {initiatives:,} initiatives, {rounds} interleaved rounds")
    verdicts = []
    for name, make, statements, floor_path in cases:
        if only and only not in name:
            continue
        ours_fn = make()
        ours = common.Samples(f"{name}")
        theirs = common.Samples("  hand-written SQL, same numbers")
        # The counted runs also warm caches; a read that takes minutes is timed once, by them.
        raw_fn = partial(raw, statements)
        first, (ours.queries, _) = common.timed(partial(common.count_queries, ours_fn))
        raw_first, (theirs.queries, _) = common.timed(partial(common.count_queries, raw_fn))
        if first > SLOW_S:
            ours.add(first)
            theirs.add(raw_first)
            print(f"  ({name} took {first:.0f} s: timed once, not in {rounds} rounds)")
        sides: list[tuple[common.Samples, Callable[[], Any]]] = [(ours, ours_fn), (theirs, raw_fn)]
        floor = None
        if floor_path is not None:
            floor = common.Samples("  bare DRF view, same SQL, same login")
            floor_fn = get(floor_path)
            floor.queries, _ = common.count_queries(floor_fn)
            sides.append((floor, floor_fn))
        for n in range(rounds if first <= SLOW_S else 0):
            for samples, fn in sides if n % 2 else reversed(sides):
                took, _ = common.timed(fn)
                samples.add(took)
        for samples, _ in sides:
            print(samples.line())
        ratio = ours.median / theirs.median
        print(f"  ratio ours/raw (median): {ratio:.2f}x")
        if floor is not None:
            print(
                f"  ratio bare DRF view/raw: {floor.median / theirs.median:.2f}x, "
                f"ours/bare DRF view: {ours.median / floor.median:.2f}x (median)"
            )
        verdicts.append(common.target(f"{name} queries", ours.queries, TARGET_QUERIES))
        verdicts.append(common.target(f"{name} vs raw SQL, median ratio", ratio, TARGET_RATIO, "x"))


if __name__ == "__main__":
    main()
