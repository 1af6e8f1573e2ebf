"""Portfolio data generator: initiatives, milestones, transition records, at scale, in SQL.

Every row is made by the database server itself (``INSERT ... SELECT`` over
``generate_series``), so 5M transition records cost no Python round trips. Distributions:

- stages: 25% proposed, 20% pilot, 12% integration, 8% hardening, 15% operations, 5% on hold,
  5% retired, 10% cancelled; each initiative's transition records walk it along the gated path
  to its stage (with hold/resume pairs on the way, to reach the requested records per initiative);
- people: one owner per 20 initiatives, skewed (a few people own many); 5% have no business
  owner; 12 business units, skewed;
- milestones: 1 to 2x``milestones_per`` per initiative, ``open_share`` of them open, due within
  the next 180 days; exactly ``overdue`` open milestones (default 1%) of initiatives the sweep
  looks at are due in the last two days and not yet alerted;
- stalls: exactly ``stalled`` initiatives in an active stage are past their stall deadline.

The database guards (django-pgtrigger triggers: an initiative starts proposed, a stage change
needs its transition records in the same transaction, transition records are append-only) would
refuse rows loaded in their final state. The load runs with ``session_replication_role =
replica``, which switches off every trigger (and so the foreign-key checks) for this session
only; it needs a superuser and is meant for the bench's own throwaway database. The rows written
are consistent with what the guards check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

STAGE_MIX = (
    ("proposed", 0.25),
    ("pilot", 0.20),
    ("integration", 0.12),
    ("hardening", 0.08),
    ("operations", 0.15),
    ("on_hold", 0.05),
    ("retired", 0.05),
    ("cancelled", 0.10),
)
ACTIVE = ("proposed", "pilot", "integration", "hardening")
UNITS = 12


@dataclass(frozen=True)
class Size:
    initiatives: int = 100_000
    milestones_per: int = 10
    transitions_per: int = 50
    open_share: float = 0.7
    overdue: int | None = None  # default: 1% of milestones
    stalled: int | None = None  # default: 1% of initiatives
    seed: float = 0.42


FULL = Size()
QUICK = Size(initiatives=2_000)


def _stage_case(column: str) -> str:
    parts, edge = [], 0.0
    for stage, share in STAGE_MIX[:-1]:
        edge += share
        parts.append(f"WHEN {column} < {edge:.4f} THEN '{stage}'")
    return f"CASE {' '.join(parts)} ELSE '{STAGE_MIX[-1][0]}' END"


def _sql(cursor, statement: str, params: Any = None, label: str = "") -> float:
    start = time.perf_counter()
    cursor.execute(statement, params)
    took = time.perf_counter() - start
    if label:
        print(f"  {label:<38} {took:7.1f} s")
    return took


def reset() -> None:
    """Empty everything the generator writes (and what hangs off it), keeping the schema."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute("SET session_replication_role = replica")
        c.execute(
            "TRUNCATE programs_initiative, programs_businessunit, notifications_event "
            "RESTART IDENTITY CASCADE"
        )
        c.execute("SET session_replication_role = DEFAULT")


def generate(size: Size = FULL) -> dict[str, int]:
    """Load a portfolio of ``size`` into the current database; returns the row counts."""
    from django.db import connection, transaction

    n = size.initiatives
    owners = max(50, n // 20)
    started = time.perf_counter()
    print(
        f"generating {n:,} initiatives (~{n * size.milestones_per:,} milestones, "
        f"~{n * size.transitions_per:,} transition records)"
    )
    with transaction.atomic(), connection.cursor() as c:
        c.execute("SET LOCAL session_replication_role = replica")
        c.execute("SELECT setseed(%s)", [size.seed])
        _people(c, owners)
        _units(c)
        _initiatives(c, size, owners)
        _transitions(c)
        _milestones(c, size, owners)
        _metrics(c)
        c.execute("DROP TABLE gen_spec")
    with connection.cursor() as c:
        for table in (
            "programs_initiative",
            "programs_milestone",
            "programs_stagetransition",
            "programs_successmetric",
            "programs_businessunit_members",
            "auth_user",
        ):
            c.execute(f"VACUUM (ANALYZE) {table}")
        counts = {}
        for table in ("initiative", "milestone", "stagetransition", "successmetric"):
            c.execute(f"SELECT count(*) FROM programs_{table}")
            counts[table] = c.fetchone()[0]
        c.execute(
            "SELECT count(*) FROM programs_milestone m JOIN programs_initiative i "
            "ON i.id = m.initiative_id WHERE m.status = 'open' AND m.next_alert_at <= now() "
            "AND i.stage NOT IN ('on_hold', 'cancelled', 'retired')"
        )
        counts["milestones_due"] = c.fetchone()[0]
        c.execute("SELECT count(*) FROM programs_initiative WHERE stall_at <= now()")
        counts["initiatives_stalled"] = c.fetchone()[0]
    took = time.perf_counter() - started
    print(f"  generated in {took:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    counts["seconds"] = round(took)
    return counts


def _people(c, owners: int) -> None:
    from django.contrib.auth.hashers import make_password

    unusable = make_password(None)
    _sql(
        c,
        """
        INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                               is_staff, is_active, date_joined)
        SELECT %(pw)s, false, 'gen-owner-' || g, 'Owner', g::text,
               'gen-owner-' || g || '@example.com', true, true, now() - interval '3 years'
        FROM generate_series(1, %(owners)s) g
        ON CONFLICT (username) DO NOTHING
        """,
        {"pw": unusable, "owners": owners},
        f"{owners:,} people",
    )
    c.execute(
        "CREATE TEMP TABLE gen_people ON COMMIT DROP AS "
        "SELECT row_number() OVER (ORDER BY id) - 1 AS ix, id FROM auth_user "
        "WHERE username LIKE 'gen-owner-%'"
    )
    c.execute("CREATE UNIQUE INDEX ON gen_people (ix)")
    c.execute(
        "INSERT INTO auth_user_groups (user_id, group_id) "
        "SELECT p.id, g.id FROM gen_people p, auth_group g WHERE g.name = 'business-owners' "
        "ON CONFLICT DO NOTHING"
    )


def _units(c) -> None:
    c.execute(
        "INSERT INTO programs_businessunit (code, name) "
        "SELECT 'unit' || g, 'Business unit ' || g FROM generate_series(1, %s) g "
        "ON CONFLICT DO NOTHING",
        [UNITS],
    )
    c.execute(
        "CREATE TEMP TABLE gen_units ON COMMIT DROP AS SELECT row_number() OVER (ORDER BY id) - 1 "
        "AS ix, id FROM programs_businessunit WHERE code LIKE 'unit%'"
    )


def _initiatives(c, size: Size, owners: int) -> None:
    n = size.initiatives
    c.execute("SELECT coalesce(max(id), 0) FROM programs_initiative")
    base = c.fetchone()[0]
    # One row of decisions per initiative; every later insert is a join on it.
    _sql(
        c,
        f"""
        CREATE TEMP TABLE gen_spec AS
        WITH r AS (
            SELECT g, random() rs, random() rp, random() ra, random() rst, random() ru,
                   random() ro, random() rsp, random() rl, random() rk, random() rh, random() rb
            FROM generate_series(1, %(n)s) g
        ), s AS (
            SELECT *, {_stage_case("rs")} AS stage FROM r
        ), p AS (
            SELECT *,
                CASE stage WHEN 'proposed' THEN 0 WHEN 'pilot' THEN 1 WHEN 'integration' THEN 2
                    WHEN 'hardening' THEN 3 WHEN 'operations' THEN 4 WHEN 'retired' THEN 4
                    ELSE floor(rb * 4)::int END AS path_len,
                CASE stage WHEN 'on_hold' THEN 'hold' WHEN 'cancelled' THEN 'cancel'
                    WHEN 'retired' THEN 'retire' ELSE '' END AS tail,
                now() - interval '1 day' * (30 + ra * 700) AS created_at
            FROM s
        ), q AS (
            SELECT *, path_len + (tail <> '')::int AS moves FROM p
        )
        SELECT %(base)s + g AS id, g, stage, path_len, tail,
            greatest(0, (round(rp * 2 * %(tpi)s)::int - moves) / 2) AS pairs, moves,
            created_at,
            created_at + (now() - created_at) * (0.3 + 0.7 * rst) AS last_move_at,
            floor({UNITS} * power(ru, 1.5))::int AS unit_ix,
            CASE WHEN ro < 0.05 THEN NULL
                 ELSE floor(%(owners)s * power(ro, 2))::int END AS owner_ix,
            floor(%(owners)s * rsp)::int AS sponsor_ix,
            floor(%(owners)s * rl)::int AS lead_ix,
            CASE WHEN rk < 0.5 THEN 'medium' WHEN rk < 0.8 THEN 'low' ELSE 'high' END AS risk,
            CASE WHEN rh < 0.7 THEN 'green' WHEN rh < 0.9 THEN 'amber' ELSE 'red' END AS health,
            stage IN ('proposed', 'pilot', 'integration', 'hardening') AS active,
            false AS stalled, rb
        FROM q
        """,
        {"n": n, "base": base, "tpi": size.transitions_per, "owners": owners},
        "plan",
    )
    c.execute("ALTER TABLE gen_spec ADD PRIMARY KEY (id)")
    stalled = size.stalled if size.stalled is not None else n // 100
    c.execute(
        "UPDATE gen_spec SET stalled = true WHERE id IN "
        "(SELECT id FROM gen_spec WHERE active ORDER BY random() LIMIT %s)",
        [stalled],
    )
    _sql(
        c,
        """
        INSERT INTO programs_initiative (
            id, key, name, summary, business_unit_id, business_owner_id, sponsor_id,
            delivery_lead_id, risk_tier, target_workflow, stage, held_from,
            held_stage_entered_at, held_stall_at, stage_entered_at, stall_at, health,
            created_by_id, created_at, updated_at)
        SELECT s.id, 'GEN-' || s.id, 'Generated initiative ' || s.id, '', u.id, o.id, sp.id,
            l.id, s.risk, 'Generated workflow', s.stage,
            CASE WHEN s.stage = 'on_hold'
                THEN (ARRAY['proposed','pilot','integration','hardening'])[s.path_len + 1]
                ELSE '' END,
            CASE WHEN s.stage = 'on_hold' THEN s.last_move_at - interval '10 days' END,
            NULL,
            CASE WHEN s.moves + s.pairs = 0 THEN s.created_at ELSE s.last_move_at END,
            CASE WHEN s.stalled THEN now() - interval '1 hour' * (1 + s.rb * 500)
                 WHEN s.active THEN now() + interval '1 day' * (1 + s.rb * 120) END,
            s.health, o.id, s.created_at, s.last_move_at
        FROM gen_spec s
        JOIN gen_units u ON u.ix = s.unit_ix
        LEFT JOIN gen_people o ON o.ix = s.owner_ix
        JOIN gen_people sp ON sp.ix = s.sponsor_ix
        JOIN gen_people l ON l.ix = s.lead_ix
        """,
        None,
        f"{n:,} initiatives",
    )
    c.execute(
        "SELECT setval(pg_get_serial_sequence('programs_initiative', 'id'), "
        "(SELECT max(id) FROM programs_initiative))"
    )
    c.execute(
        "INSERT INTO programs_businessunit_members (businessunit_id, user_id) "
        "SELECT DISTINCT business_unit_id, business_owner_id FROM programs_initiative "
        "WHERE business_owner_id IS NOT NULL ON CONFLICT DO NOTHING"
    )


def _transitions(c) -> None:
    _sql(
        c,
        """
        INSERT INTO programs_stagetransition (
            initiative_id, transition, from_stage, to_stage, actor_id, reason, gate_review_id,
            created_at)
        SELECT s.id,
            CASE WHEN j <= 2 * s.pairs THEN CASE WHEN j % 2 = 1 THEN 'hold' ELSE 'resume' END
                 WHEN j <= 2 * s.pairs + s.path_len THEN (ARRAY['start_pilot',
                    'start_integration','start_hardening','start_operations'])[j - 2 * s.pairs]
                 ELSE s.tail END,
            CASE WHEN j <= 2 * s.pairs THEN CASE WHEN j % 2 = 1 THEN 'proposed' ELSE 'on_hold' END
                 WHEN j <= 2 * s.pairs + s.path_len THEN (ARRAY['proposed','pilot',
                    'integration','hardening'])[j - 2 * s.pairs]
                 ELSE (ARRAY['proposed','pilot','integration','hardening','operations'])
                    [s.path_len + 1] END,
            CASE WHEN j <= 2 * s.pairs THEN CASE WHEN j % 2 = 1 THEN 'on_hold' ELSE 'proposed' END
                 WHEN j <= 2 * s.pairs + s.path_len THEN (ARRAY['pilot','integration',
                    'hardening','operations'])[j - 2 * s.pairs]
                 WHEN s.tail = 'hold' THEN 'on_hold'
                 WHEN s.tail = 'cancel' THEN 'cancelled' ELSE 'retired' END,
            i.business_owner_id, '', NULL,
            s.created_at + (s.last_move_at - s.created_at) * j / (2 * s.pairs + s.moves)
        FROM gen_spec s
        JOIN programs_initiative i ON i.id = s.id
        CROSS JOIN LATERAL generate_series(1, 2 * s.pairs + s.moves) j
        """,
        None,
        "transition records",
    )


def _milestones(c, size: Size, owners: int) -> None:
    per = size.milestones_per
    _sql(
        c,
        """
        INSERT INTO programs_milestone (
            initiative_id, stage, title, owner_id, due_at, status, completed_at, completed_by_id,
            waive_reason, is_gate_condition, external_system, external_key,
            external_deleted_at, next_alert_at, alert_level, created_at)
        SELECT m.initiative_id, m.stage, 'Milestone ' || m.k, p.id,
            CASE WHEN m.open THEN now() + interval '1 hour' * (1 + m.rd * 4320)
                 ELSE m.created_at + (now() - m.created_at) * m.rd END,
            CASE WHEN m.open THEN 'open' ELSE 'done' END,
            CASE WHEN m.open THEN NULL ELSE m.created_at + (now() - m.created_at) * m.rd END,
            CASE WHEN m.open THEN NULL ELSE p.id END,
            '', false, '', '', NULL,
            CASE WHEN m.open AND NOT m.closed_initiative
                 THEN now() + interval '1 hour' * (1 + m.rd * 4320) END,
            0, m.created_at
        FROM (
            SELECT s.id AS initiative_id, s.stage, k, s.created_at,
                s.stage IN ('cancelled', 'retired') AS closed_initiative,
                random() < %(open)s AS open, random() AS rd,
                floor(%(owners)s * power(random(), 2))::int AS owner_ix
            FROM gen_spec s
            -- rb's far digits: a per-initiative count (random() here would be drawn once).
            CROSS JOIN LATERAL generate_series(
                1, 1 + floor((s.rb * 7919 - floor(s.rb * 7919)) * (2 * %(per)s - 1))::int) k
        ) m
        JOIN gen_people p ON p.ix = m.owner_ix
        """,
        {"open": size.open_share, "owners": owners, "per": per},
        "milestones",
    )
    c.execute("SELECT count(*) FROM programs_milestone")
    total = c.fetchone()[0]
    overdue = size.overdue if size.overdue is not None else total // 100
    _sql(
        c,
        """
        UPDATE programs_milestone m SET due_at = d.due_at, next_alert_at = d.due_at
        FROM (
            SELECT m.id, now() - interval '1 minute' * (1 + random() * 2800) AS due_at
            FROM programs_milestone m JOIN programs_initiative i ON i.id = m.initiative_id
            WHERE m.status = 'open' AND i.stage NOT IN ('on_hold', 'cancelled', 'retired')
            ORDER BY random() LIMIT %s
        ) d
        WHERE m.id = d.id
        """,
        [overdue],
        f"{overdue:,} overdue",
    )


def _metrics(c) -> None:
    c.execute(
        """
        INSERT INTO programs_successmetric (initiative_id, name, unit, baseline, target,
                                            direction, current_value, measured_at)
        SELECT id, 'Cycle time', '%',
            CASE WHEN random() < 0.9 THEN 40 END, CASE WHEN random() < 0.9 THEN 60 END,
            'higher', NULL, NULL
        FROM gen_spec
        """
    )


def main() -> None:
    from bench import common
    from bench.cli import positive

    args = common.arguments(
        "Generate a portfolio into a throwaway database and report the time it took.",
        initiatives={"type": positive, "default": None, "help": "default 100000 (quick: 2000)"},
    )
    common.setup()
    size = QUICK if args.quick else FULL
    if args.initiatives:
        size = Size(initiatives=args.initiatives)
    with common.throwaway_database():
        counts = generate(size)
    # A minute per 100k initiatives with their 1M milestones and 5M records is "minutes".
    limit = 10 * 60 * size.initiatives / 100_000
    common.target(f"generate {size.initiatives:,} initiatives", counts["seconds"], limit, " s")


if __name__ == "__main__":
    main()
