"""P3: the periodic sweeps at two table sizes with the same number of due rows, to show that
their cost follows the rows that are due, not the size of the tables.

For each size: a generated portfolio whose milestones are all open (``open_share=1``), a fixed
number of them due (past their alert time, not yet alerted) and a fixed number of initiatives
stalled. Timed: the first run of ``sweep_overdue_milestones`` and ``sweep_stalled_initiatives``
(one batch, ``SWEEP_BATCH_SIZE``), and, once the rows still due are moved on in SQL (as the
runs after it would), the next run, which finds nothing to send. ``EXPLAIN (ANALYZE)`` of each
sweep's due-row query (the exact SQL it sends, captured) shows the partial index it reads.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from bench import common

TARGET_FIRST_SWEEP_S = 2.0


class _Captured(Exception):
    pass


def due_query(sweep: Any) -> tuple[str, Any]:
    """The first statement ``sweep`` sends (its due-row read), captured and not executed."""
    from django.db import connection

    seen: list[tuple[str, Any]] = []

    def capture(execute, sql, params, many, context):
        seen.append((sql, params))
        raise _Captured

    with connection.execute_wrapper(capture), contextlib.suppress(_Captured):
        sweep()
    return seen[0]


def explain(sweep_fn: Any, batch: int) -> list[str]:
    from django.db import connection

    sql, params = due_query(lambda: sweep_fn(batch=1))
    sql = re.sub(r"LIMIT 1\s*$", f"LIMIT {batch}", sql)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS OFF) " + sql, params)
        return [row[0] for row in cursor.fetchall()]


SETTLE = {
    # The rows the first run left due, moved on as the sweep itself would have: so the next
    # run's cost is that of finding nothing, without paying for thousands more alerts here.
    "overdue milestones": """
        UPDATE programs_milestone SET alert_level = 1,
            next_alert_at = due_at + make_interval(days => %(days)s)
        WHERE status = 'open' AND next_alert_at <= now()""",
    "stalled initiatives": "UPDATE programs_initiative SET stall_at = NULL WHERE stall_at <= now()",
}


def settle(name: str) -> int:
    from django.conf import settings
    from django.db import connection

    days = int(settings.GATEKEEPER["MILESTONE_ESCALATION_DAYS"])
    with connection.cursor() as cursor:
        cursor.execute(SETTLE[name], {"days": days})
        return cursor.rowcount


def measure(label: str, milestones: int, due: int, stalled: int) -> dict[str, float]:
    from django.conf import settings

    from bench import generate
    from programs.sweeps import sweep_overdue_milestones, sweep_stalled_initiatives

    generate.reset()
    initiatives = max(1, milestones // 10)
    counts = generate.generate(
        generate.Size(
            initiatives=initiatives,
            milestones_per=10,
            transitions_per=4,
            open_share=1.0,
            overdue=due,
            stalled=stalled,
        )
    )
    batch = int(settings.GATEKEEPER["SWEEP_BATCH_SIZE"])
    print(
        f"{label}: {counts['milestone']:,} open milestones ({counts['milestones_due']:,} due), "
        f"{counts['initiative']:,} initiatives ({counts['initiatives_stalled']:,} stalled); "
        f"batch {batch}"
    )
    result: dict[str, float] = {}
    for name, fn in (
        ("overdue milestones", sweep_overdue_milestones),
        ("stalled initiatives", sweep_stalled_initiatives),
    ):
        plan = explain(fn, batch)
        first, sent = common.timed(fn)
        settled = settle(name)
        idle, idle_sent = common.timed(fn)
        print(
            f"  {name}: first run {first:.3f} s, {sent} sent "
            f"({1000 * first / max(sent, 1):.2f} ms per alert); {settled} still due settled in "
            f"SQL; the next run {1000 * idle:.1f} ms, {idle_sent} sent"
        )
        print("    EXPLAIN (ANALYZE) of the due-row query:")
        for line in plan:
            print(f"      {line}")
        used = re.findall(r"(?:Scan using|Index Scan on) (\w+)", " ".join(plan))
        print(f"    indexes used: {', '.join(sorted(set(used))) or 'none'}")
        result[f"{name} first"] = first
        result[f"{name} idle"] = idle
        result[f"{name} per alert"] = first / max(sent, 1)
    return result


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0])
    common.setup()
    if args.quick:
        sizes, due, stalled = (10_000, 100_000), 1_000, 100
    else:
        sizes, due, stalled = (100_000, 1_000_000), 10_000, 1_000
    with common.throwaway_database():
        small = measure(f"small: {sizes[0]:,} milestones", sizes[0], due, stalled)
        large = measure(f"large: {sizes[1]:,} milestones", sizes[1], due, stalled)
    print(f"P3 sweeps, {due:,} due milestones and {stalled:,} stalled initiatives at both sizes")
    for key in small:
        unit, scale = ("ms", 1000)
        print(
            f"  {key:<32} small {scale * small[key]:9.2f} {unit}   large "
            f"{scale * large[key]:9.2f} {unit}   large/small {large[key] / small[key]:.2f}x"
        )
    common.target(
        "first overdue-milestone sweep at the large size",
        large["overdue milestones first"],
        TARGET_FIRST_SWEEP_S,
        " s",
    )
    common.target(
        "first stalled-initiative sweep at the large size",
        large["stalled initiatives first"],
        TARGET_FIRST_SWEEP_S,
        " s",
    )
    # Proportional to due rows: 10x the table may not cost 2x per run.
    common.target(
        "idle overdue sweep, large/small table",
        large["overdue milestones idle"] / small["overdue milestones idle"],
        2.0,
        "x",
    )


if __name__ == "__main__":
    main()
