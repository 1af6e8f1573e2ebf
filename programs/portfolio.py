"""Portfolio reads for PMO tools: where initiatives are, what is late, how many make it.

Each figure is over the initiatives the caller may see (``initiatives_visible_to``), so a
business owner gets their own portfolio and PMO gets everyone's, from one code path. A fixed
number of queries whatever the portfolio's size.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Aggregate,
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    Window,
)
from django.db.models.functions import Coalesce, NullIf, RowNumber
from django.utils import timezone

from gatekeeper.types import User
from programs.models import (
    BusinessUnit,
    Initiative,
    Milestone,
    MilestoneStatus,
    StageTransition,
    SuccessMetric,
)
from programs.selectors import initiatives_visible_to
from programs.stages import ACTIVE_STAGES, GATE_INTO, NEXT_STAGE, TERMINAL_STAGES, Stage


def portfolio_summary(*, user: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    visible = initiatives_visible_to(user).order_by()
    ids = visible.values("pk")
    # Every initiative has a business unit: the per-stage totals are the unit cells summed.
    counts = stage_counts(visible, now=now)
    by_stage = {s.value: 0 for s in Stage}
    for cells in counts.matrix.values():
        for stage, n in cells.items():
            by_stage[stage] += n
    # Counted from the overdue milestones (a partial index holds the open ones by due time),
    # not by asking each initiative whether it has one.
    overdue = Milestone.objects.filter(
        initiative__in=ids, status=MilestoneStatus.OPEN, due_at__lt=now
    ).aggregate(n=Count("initiative", distinct=True))["n"]
    scoped = Initiative.objects.filter(pk__in=ids)
    median_days = _median_days_in_stage(scoped, now)

    reached = StageTransition.objects.filter(
        initiative__in=ids, to_stage__in=(Stage.PILOT, Stage.OPERATIONS)
    ).aggregate(
        pilot=Count("initiative", distinct=True, filter=Q(to_stage=Stage.PILOT)),
        operations=Count("initiative", distinct=True, filter=Q(to_stage=Stage.OPERATIONS)),
    )
    entered_pilot, reached_ops = reached["pilot"], reached["operations"]
    return {
        "generated_at": now,
        "total": sum(by_stage.values()),
        "by_stage": by_stage,
        "by_business_unit": [
            {"business_unit": code, "by_stage": stages} for code, stages in counts.matrix.items()
        ],
        "overdue": overdue,
        "stalled": counts.stalled,
        "median_days_in_stage": median_days,
        "pilot_to_operations": {
            "entered_pilot": entered_pilot,
            "reached_operations": reached_ops,
            "rate": round(reached_ops / entered_pilot, 3) if entered_pilot else None,
        },
    }


class _SecondsBetween(Func):
    """``later - earlier`` in seconds, as a float, on PostgreSQL and on SQLite (the embedded
    default), so that ratios and medians of durations are computed in the database."""

    output_field = FloatField()

    def __init__(self, later: Any, earlier: Any) -> None:
        super().__init__(later, earlier)

    # ``a - b`` of timestamps is an interval on PostgreSQL; SQLite keeps text, hence julianday.
    template = "EXTRACT(EPOCH FROM (%(expressions)s))::float8"
    arg_joiner = " - "

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra,
        )


def _at(now: dt.datetime) -> Value:
    return Value(now, output_field=DateTimeField())


class _Median(Aggregate):
    # PostgreSQL's ordered-set aggregate; SQLite has none (see ``_median_days_in_stage``).
    template = "percentile_cont(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def _median_days_in_stage(
    scoped: QuerySet[Initiative], now: dt.datetime
) -> dict[str, float | None]:
    active = scoped.filter(stage__in=ACTIVE_STAGES)
    if connection.vendor == "postgresql":
        # In the database: at 100k initiatives the stage entry times of ~65k active ones would
        # otherwise cross the wire for four medians.
        entered = {
            row["stage"]: row["median"]
            for row in active.values("stage").annotate(
                median=_Median(_SecondsBetween(_at(now), F("stage_entered_at")))
            )
        }
        days = {stage: entered.get(stage) for stage in ACTIVE_STAGES}
        return {s: round(v / _DAY, 1) if v is not None else None for s, v in days.items()}
    by_stage: dict[str, list[float]] = defaultdict(list)
    for stage, at in active.values_list("stage", "stage_entered_at"):
        by_stage[stage].append((now - at).total_seconds() / _DAY)
    return {
        stage: round(statistics.median(by_stage[stage]), 1) if by_stage[stage] else None
        for stage in ACTIVE_STAGES
    }


# --- the PMO dashboard's reads -------------------------------------------------------------------
# Counts are aggregated in the database and only the rows a page lists leave it (the first few
# of each list, ordered there), so the page costs the same handful of queries, and about the same
# time, for 500 initiatives as for 100k. The CSV streams every row with the same figures.

# The gated path in lifecycle order; a funnel shows how far work gets along it.
PATH_STAGES: tuple[str, ...] = (*ACTIVE_STAGES, Stage.OPERATIONS)
_DAY = 86400.0


@dataclass(frozen=True)
class PortfolioFilters:
    """What the PMO narrowed the portfolio to; empty means "all"."""

    business_unit: str = ""  # BusinessUnit.code
    risk_tier: str = ""
    stage: str = ""


def initiatives_filtered(*, user: User, filters: PortfolioFilters) -> QuerySet[Initiative]:
    qs = initiatives_visible_to(user)
    if filters.business_unit:
        qs = qs.filter(business_unit__code=filters.business_unit)
    if filters.risk_tier:
        qs = qs.filter(risk_tier=filters.risk_tier)
    if filters.stage:
        qs = qs.filter(stage=filters.stage)
    return qs


def _person(user: Any) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


def _person_named(first: str, last: str, username: str) -> str:
    """``_person`` from the columns alone (Django's ``get_full_name``, else the username)."""
    return f"{first} {last}".strip() or username


def _days(delta: dt.timedelta) -> float:
    return delta.total_seconds() / _DAY


@dataclass
class InitiativeRow:
    initiative: Initiative
    key: str
    name: str
    business_unit: str  # code
    business_unit_name: str
    stage: str
    stage_label: str
    risk_tier: str
    health: str
    business_owner: str
    sponsor: str
    delivery_lead: str
    days_in_stage: float | None
    # The stall budget as stored: the opening gate's expected time, moved out by any time spent
    # on hold (a hold pauses the clock). None where a stage has no end (operations, on hold).
    expected_max_days: float | None
    stall_at: dt.datetime | None
    stalled: bool
    days_past_expected: float | None
    next_gate: str
    has_judged_metric: bool
    open_milestones: int
    overdue_milestones: int
    oldest_overdue_due_at: dt.datetime | None
    last_transition_at: dt.datetime | None
    pilot_started_at: dt.datetime | None
    operations_reached_at: dt.datetime | None
    # Why it is stalled, from programs' own data (gates adds its causes on top).
    causes: list[str] = field(default_factory=list)

    @property
    def budget_used(self) -> float | None:
        if self.days_in_stage is None or not self.expected_max_days:
            return None
        return self.days_in_stage / self.expected_max_days


def _count_of(qs: QuerySet[Any]) -> Coalesce:
    counted = qs.order_by().values("initiative").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _first_transition_to(stage: str) -> Subquery:
    return Subquery(
        StageTransition.objects.filter(initiative=OuterRef("pk"), to_stage=stage)
        .order_by("created_at", "id")
        .values("created_at")[:1]
    )


def _rows_query(initiatives: QuerySet[Initiative], now: dt.datetime) -> QuerySet[Initiative]:
    open_ms = Milestone.objects.filter(initiative=OuterRef("pk"), status=MilestoneStatus.OPEN)
    overdue_ms = open_ms.filter(due_at__lt=now)
    return initiatives.select_related(
        "business_unit", "business_owner", "sponsor", "delivery_lead"
    ).annotate(
        n_open=_count_of(open_ms),
        n_overdue=_count_of(overdue_ms),
        oldest_overdue=Subquery(overdue_ms.order_by("due_at").values("due_at")[:1]),
        judged_metric=Exists(
            SuccessMetric.objects.filter(
                initiative=OuterRef("pk"), baseline__isnull=False, target__isnull=False
            )
        ),
        last_move=Subquery(
            StageTransition.objects.filter(initiative=OuterRef("pk"))
            .order_by("-created_at", "-id")
            .values("created_at")[:1]
        ),
        pilot_at=_first_transition_to(Stage.PILOT),
        operations_at=_first_transition_to(Stage.OPERATIONS),
    )


def _row(i: Initiative, now: dt.datetime) -> InitiativeRow:
    active = i.stage in ACTIVE_STAGES
    stalled = bool(active and i.stall_at is not None and i.stall_at <= now)
    expected = _days(i.stall_at - i.stage_entered_at) if i.stall_at and active else None
    row = InitiativeRow(
        initiative=i,
        key=i.key,
        name=i.name,
        business_unit=i.business_unit.code,
        business_unit_name=i.business_unit.name,
        stage=i.stage,
        stage_label=Stage(i.stage).label,
        risk_tier=i.risk_tier,
        health=i.health,
        business_owner=_person(i.business_owner),
        sponsor=_person(i.sponsor),
        delivery_lead=_person(i.delivery_lead),
        days_in_stage=_days(now - i.stage_entered_at) if i.stage not in TERMINAL_STAGES else None,
        expected_max_days=expected,
        stall_at=i.stall_at if active else None,
        stalled=stalled,
        days_past_expected=_days(now - i.stall_at) if stalled and i.stall_at else None,
        next_gate=GATE_INTO.get(NEXT_STAGE.get(i.stage, ""), ""),
        has_judged_metric=i.judged_metric,  # type: ignore[attr-defined]
        open_milestones=i.n_open,  # type: ignore[attr-defined]
        overdue_milestones=i.n_overdue,  # type: ignore[attr-defined]
        oldest_overdue_due_at=i.oldest_overdue,  # type: ignore[attr-defined]
        last_transition_at=i.last_move,  # type: ignore[attr-defined]
        pilot_started_at=i.pilot_at,  # type: ignore[attr-defined]
        operations_reached_at=i.operations_at,  # type: ignore[attr-defined]
    )
    if stalled:
        row.causes = _programs_stall_causes(row, now)
    return row


def portfolio_rows(
    *, user: User, filters: PortfolioFilters, now: dt.datetime | None = None
) -> Iterator[InitiativeRow]:
    """Every initiative in the filtered portfolio with its figures, by key: one query, streamed
    (the CSV of a 100k portfolio never holds every model instance at once)."""
    now = now or timezone.now()
    qs = _rows_query(initiatives_filtered(user=user, filters=filters), now).order_by("key")
    for i in qs.iterator(chunk_size=2000):
        yield _row(i, now)


def rows_of(initiatives: list[Initiative], now: dt.datetime) -> list[InitiativeRow]:
    """The rows of what ``stalled_rows_query`` or ``rows_by_budget_used_query`` read."""
    return [_row(i, now) for i in initiatives]


def stalled_rows_query(
    initiatives: QuerySet[Initiative], *, now: dt.datetime, limit: int
) -> QuerySet[Initiative]:
    qs = _rows_query(initiatives, now).filter(stage__in=ACTIVE_STAGES, stall_at__lte=now)
    return qs.order_by("stall_at", "key")[:limit]


def stalled_rows(
    initiatives: QuerySet[Initiative], *, now: dt.datetime, limit: int
) -> list[InitiativeRow]:
    """The first ``limit`` stalled initiatives, furthest past their time first: one query."""
    return rows_of(list(stalled_rows_query(initiatives, now=now, limit=limit)), now)


def rows_by_budget_used(
    initiatives: QuerySet[Initiative], *, now: dt.datetime, limit: int
) -> list[InitiativeRow]:
    """The first ``limit`` initiatives in an active stage, most of their stall budget used first
    (no budget last, then by key): one query."""
    return rows_of(list(rows_by_budget_used_query(initiatives, now=now, limit=limit)), now)


def rows_by_budget_used_query(
    initiatives: QuerySet[Initiative], *, now: dt.datetime, limit: int
) -> QuerySet[Initiative]:
    # InitiativeRow.budget_used, in the database so that only the rows shown leave it.
    budget = ExpressionWrapper(
        _SecondsBetween(_at(now), F("stage_entered_at"))
        / NullIf(_SecondsBetween(F("stall_at"), F("stage_entered_at")), Value(0.0)),
        output_field=FloatField(),
    )
    order = (F("budget").desc(nulls_last=True), "key")
    # The first few picked from narrow rows, then joined to their people and figures: sorting
    # the wide joined rows of every active initiative (65k at 100k) costs several times more.
    if initiatives.query.distinct:  # a joined scope: DISTINCT would pull the order into the ids
        initiatives = Initiative.objects.filter(pk__in=initiatives.order_by().values("pk"))
    first = (
        initiatives.filter(stage__in=ACTIVE_STAGES)
        .annotate(budget=budget)
        .order_by(*order)
        .values("pk")[:limit]
    )
    qs = _rows_query(Initiative.objects.filter(pk__in=first), now).annotate(budget=budget)
    return qs.order_by(*order)


def _programs_stall_causes(row: InitiativeRow, now: dt.datetime) -> list[str]:
    causes: list[str] = []
    if not row.business_owner:
        causes.append("no business owner")
    if not row.has_judged_metric:
        causes.append("no success metric with both a baseline and a target")
    if row.overdue_milestones and row.oldest_overdue_due_at is not None:
        late = _days(now - row.oldest_overdue_due_at)
        plural = "s" if row.overdue_milestones != 1 else ""
        causes.append(
            f"{row.overdue_milestones} overdue milestone{plural} (oldest {late:.0f} days late)"
        )
    return causes


@dataclass
class StageCounts:
    """How many initiatives each business unit has in each stage, and how many are in an active
    stage and stalled, for the filtered portfolio."""

    matrix: dict[str, dict[str, int]]  # unit code -> stage -> count; units sorted, stages all
    active: int
    stalled: int

    @property
    def total(self) -> int:
        return sum(sum(cells.values()) for cells in self.matrix.values())

    @property
    def funnel(self) -> dict[str, int]:
        """Initiatives per stage, every stage listed, gated path first in lifecycle order."""
        counts = {s: 0 for s in (*PATH_STAGES, Stage.ON_HOLD, Stage.RETIRED, Stage.CANCELLED)}
        for cells in self.matrix.values():
            for stage, n in cells.items():
                counts[stage] += n
        return counts


def stage_counts(initiatives: QuerySet[Initiative], *, now: dt.datetime) -> StageCounts:
    """Unit x stage counts plus the stalled ones: one aggregate query."""
    return stage_counts_from(list(stage_counts_query(initiatives, now=now)))


def stage_counts_query(initiatives: QuerySet[Initiative], *, now: dt.datetime) -> QuerySet[Any]:
    # A scope narrower than everyone's joins milestones and says distinct (one row per match):
    # count each initiative once there, and skip the sort that costs where nothing is joined.
    joined = bool(initiatives.query.distinct)
    return (
        initiatives.order_by()
        .values("business_unit__code", "stage")
        .annotate(
            n=Count("pk", distinct=joined),
            n_stalled=Count(
                "pk", distinct=joined, filter=Q(stage__in=ACTIVE_STAGES, stall_at__lte=now)
            ),
        )
    )


def stage_counts_from(grouped: list[dict[str, Any]]) -> StageCounts:
    """``StageCounts`` from the rows of ``stage_counts_query``."""
    matrix: dict[str, dict[str, int]] = {}
    active = stalled = 0
    for row in grouped:
        cells = matrix.setdefault(row["business_unit__code"], {s: 0 for s in Stage.values})
        cells[row["stage"]] = row["n"]
        stalled += row["n_stalled"]
        if row["stage"] in ACTIVE_STAGES:
            active += row["n"]
    return StageCounts(matrix=dict(sorted(matrix.items())), active=active, stalled=stalled)


@dataclass
class OwnerOverdue:
    owner: str
    milestones: list[tuple[Milestone, float]]  # (milestone, days late)
    total: int | None = None  # how many they own when ``milestones`` is the first few only

    @property
    def count(self) -> int:
        return len(self.milestones) if self.total is None else self.total


def overdue_milestones_by_owner(
    initiatives: QuerySet[Initiative], *, now: dt.datetime, limit: int
) -> tuple[list[OwnerOverdue], int]:
    """Open milestones past due grouped by who owns them, owners with the most late work first,
    each group's oldest first; the groups stop once ``limit`` milestones are listed (each group
    keeps its full count). Also returns how many are overdue in all. Two queries: the counts
    per owner, then only the milestones shown."""
    shown, total = overdue_owners_from(
        list(overdue_owners_query(initiatives, now=now)), limit=limit
    )
    if not shown:
        return [], total
    first = overdue_milestones_query(initiatives, now=now, owners=shown, limit=limit)
    return overdue_fill(shown, list(first), now=now, limit=limit), total


def _late(initiatives: QuerySet[Initiative], now: dt.datetime) -> QuerySet[Milestone]:
    scoped = initiatives.order_by().values("pk")
    return Milestone.objects.filter(
        initiative__in=scoped, status=MilestoneStatus.OPEN, due_at__lt=now
    )


def overdue_owners_query(initiatives: QuerySet[Initiative], *, now: dt.datetime) -> QuerySet[Any]:
    return (
        _late(initiatives, now)
        .order_by()
        .values("owner", "owner__first_name", "owner__last_name", "owner__username")
        .annotate(n=Count("pk"))
    )


def overdue_owners_from(
    rows: list[dict[str, Any]], *, limit: int
) -> tuple[dict[int, OwnerOverdue], int]:
    """From the rows of ``overdue_owners_query``: the owners whose milestones are listed (the
    most late work first, then by name, until ``limit`` milestones), and how many are overdue."""
    owners = [
        (
            row["owner"],
            _person_named(
                row["owner__first_name"], row["owner__last_name"], row["owner__username"]
            ),
            row["n"],
        )
        for row in rows
    ]
    owners.sort(key=lambda o: (-o[2], o[1]))
    total = sum(n for _, _, n in owners)
    shown: dict[int, OwnerOverdue] = {}
    left = limit
    for owner_id, name, n in owners:
        if left <= 0:
            break
        shown[owner_id] = OwnerOverdue(name, [], n)
        left -= min(n, left)
    return shown, total


def overdue_milestones_query(
    initiatives: QuerySet[Initiative],
    *,
    now: dt.datetime,
    owners: dict[int, OwnerOverdue],
    limit: int,
) -> QuerySet[Milestone]:
    """The first ``limit`` overdue milestones of each of ``owners``, oldest first."""
    return (
        _late(initiatives, now)
        .filter(owner__in=list(owners))
        .annotate(
            nth=Window(RowNumber(), partition_by=[F("owner")], order_by=[F("due_at"), F("id")])
        )
        .filter(nth__lte=limit)
        .select_related("initiative")
        .order_by("due_at", "id")
    )


def overdue_fill(
    shown: dict[int, OwnerOverdue], first: list[Milestone], *, now: dt.datetime, limit: int
) -> list[OwnerOverdue]:
    for milestone in first:
        shown[milestone.owner_id].milestones.append((milestone, _days(now - milestone.due_at)))
    # The last group listed is cut to what fits under ``limit``.
    left = limit
    for group in shown.values():
        group.milestones = group.milestones[: max(left, 0)]
        left -= len(group.milestones)
    return list(shown.values())


@dataclass
class UnitFlow:
    """How work moved through the gated path in one business unit (or all: ``unit == ""``)."""

    business_unit: str
    reached_pilot: int = 0
    reached_operations: int = 0
    median_days: dict[str, float | None] = field(default_factory=dict)
    stays: dict[str, int] = field(default_factory=dict)

    @property
    def conversion(self) -> float | None:
        if not self.reached_pilot:
            return None
        return self.reached_operations / self.reached_pilot


@dataclass
class Flow:
    overall: UnitFlow
    by_unit: list[UnitFlow]


def _completed_stays(
    created_at: dt.datetime, moves: list[tuple[str, str, dt.datetime]]
) -> list[tuple[str, float]]:
    """(stage, days) for each stay in an active stage that has ended, from one initiative's
    history in order. A stay begins with the record that enters the stage (a proposal's with
    its creation, which writes no record) and ends with the record that leaves it; time on hold
    is not counted, and a resume continues the stay it interrupted. Stays not yet ended are
    left out (the "time in current stage" panel covers them)."""
    stays: list[tuple[str, float]] = []
    current: str | None = Stage.PROPOSED
    since: dt.datetime | None = created_at  # start of the running segment; None while on hold
    spent = dt.timedelta()
    known = True  # False when the history does not say when this stay began (e.g. imported)
    held = False
    for from_stage, to_stage, at in moves:
        if from_stage != (Stage.ON_HOLD if held else current):
            held = from_stage == Stage.ON_HOLD
            current = None if held else from_stage
            since, spent, known = None, dt.timedelta(), False
        if to_stage == Stage.ON_HOLD:
            if since is not None:
                spent += at - since
            since, held = None, True
            continue
        if held and to_stage == current:
            since, held = at, False  # resumed: the stay it interrupted goes on
            continue
        if since is not None:
            spent += at - since
        if known and current in ACTIVE_STAGES:
            stays.append((current, _days(spent)))
        current, since, spent, known, held = to_stage, at, dt.timedelta(), True, False
    return stays


def stage_flow(initiatives: QuerySet[Initiative], *, configured: bool = False) -> Flow:
    """Pilot -> operations conversion and median completed time in each active stage, overall
    and by business unit, from the transition history: one query.

    An initiative "reached pilot" if any record moved it into pilot; conversion is how many of
    those also have a record into operations. Business units are those with at least one
    record. Stays follow ``_completed_stays``.
    """
    scoped = initiatives.order_by().values("pk")
    if connection.vendor == "postgresql":
        return _stage_flow_sql(scoped, configured=configured)
    # SQLite (``make run``) has no percentile_cont, and its portfolios are small.
    return _stage_flow_python(scoped)


def _stage_flow_python(scoped: QuerySet[Any]) -> Flow:
    history = (
        StageTransition.objects.filter(initiative__in=scoped)
        .order_by("initiative_id", "created_at", "id")
        .values_list(
            "initiative_id",
            "initiative__business_unit__code",
            "initiative__created_at",
            "from_stage",
            "to_stage",
            "created_at",
        )
    )
    units: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"pilot": set(), "ops": set(), "stays": defaultdict(list)}
    )
    by_initiative: dict[int, tuple[str, dt.datetime, list[tuple[str, str, dt.datetime]]]] = {}
    for pk, unit, created, from_stage, to_stage, at in history:
        by_initiative.setdefault(pk, (unit, created, []))[2].append((from_stage, to_stage, at))
        if to_stage == Stage.PILOT:
            units[unit]["pilot"].add(pk)
        elif to_stage == Stage.OPERATIONS:
            units[unit]["ops"].add(pk)
    for unit, created, moves in by_initiative.values():
        for stage, days in _completed_stays(created, moves):
            units[unit]["stays"][stage].append(days)

    def fold(name: str, parts: list[dict[str, Any]]) -> UnitFlow:
        pilot: set[int] = set().union(*(p["pilot"] for p in parts))
        ops: set[int] = set().union(*(p["ops"] for p in parts))
        flow = UnitFlow(name, reached_pilot=len(pilot), reached_operations=len(ops & pilot))
        for stage in ACTIVE_STAGES:
            days = [d for p in parts for d in p["stays"].get(stage, [])]
            flow.median_days[stage] = round(statistics.median(days), 1) if days else None
            flow.stays[stage] = len(days)
        return flow

    return Flow(
        overall=fold("", list(units.values())),
        by_unit=[fold(unit, [units[unit]]) for unit in sorted(units)],
    )


# ``_completed_stays`` as window functions, so the history never leaves the database. Within one
# initiative's records in order, with ``prev_to`` the previous record's to_stage ('proposed'
# before the first, as the initiative starts there):
# - a record whose from_stage is not ``prev_to`` is a gap in the history: the stay it ends (or
#   interrupts) has no known start and is left out;
# - a record into on_hold pauses the stay; a record out of on_hold back into the stage the hold
#   left (the previous record's from_stage) resumes it; every other record ends the stay;
# - the running time of a stay is the sum, over its records, of the time since the previous
#   record (the initiative's creation before the first), except after a record into on_hold.
# A stay is the records after one ending record up to and including the next.
_FLOW_SQL = """
WITH groups AS (
    SELECT initiative_id, business_unit_id,
           BOOL_OR(ends) AND NOT BOOL_OR(gap) AS is_stay,
           MAX(CASE WHEN from_stage = {on_hold} THEN prev_from ELSE from_stage END)
               FILTER (WHERE ends) AS stage,
           SUM(running) / 86400.0 AS days,
           BOOL_OR(to_stage = {pilot}) AS pilot,
           BOOL_OR(to_stage = {operations}) AS operations
    FROM (
        SELECT m.*,
               COUNT(*) FILTER (WHERE ends) OVER (
                   PARTITION BY initiative_id ORDER BY at, id ROWS UNBOUNDED PRECEDING
               ) - ends::int AS stay_no
        FROM (
            SELECT t.*,
                   t.to_stage <> {on_hold}
                     AND NOT (t.prev_to = {on_hold} AND t.from_stage = {on_hold}
                              AND t.to_stage = t.prev_from) AS ends,
                   t.from_stage <> t.prev_to AS gap,
                   CASE WHEN t.prev_to = {on_hold} THEN 0
                        ELSE EXTRACT(EPOCH FROM t.at - t.prev_at)::float8 END AS running
            FROM (
                SELECT st.id, st.initiative_id, i.business_unit_id, st.from_stage, st.to_stage,
                       st.created_at AS at,
                       COALESCE(LAG(st.to_stage) OVER w, {proposed}) AS prev_to,
                       COALESCE(LAG(st.from_stage) OVER w, '') AS prev_from,
                       COALESCE(LAG(st.created_at) OVER w, i.created_at) AS prev_at
                FROM {transition} st
                JOIN {initiative} i ON i.id = st.initiative_id
                WHERE st.initiative_id IN ({scoped})
                WINDOW w AS (PARTITION BY st.initiative_id ORDER BY st.created_at, st.id)
            ) t
        ) m
    ) numbered
    GROUP BY initiative_id, business_unit_id, stay_no
), reached AS (
    SELECT business_unit_id, BOOL_OR(pilot) AS pilot, BOOL_OR(operations) AS operations
    FROM groups
    GROUP BY initiative_id, business_unit_id
)
SELECT 'stays', bu.code, GROUPING(bu.code), g.stage,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY g.days), COUNT(*), 0
FROM groups g JOIN {unit} bu ON bu.id = g.business_unit_id
WHERE g.is_stay AND g.stage IN {active}
GROUP BY GROUPING SETS ((bu.code, g.stage), (g.stage))
UNION ALL
SELECT 'reached', bu.code, GROUPING(bu.code), '', NULL,
       COUNT(*) FILTER (WHERE r.pilot), COUNT(*) FILTER (WHERE r.pilot AND r.operations)
FROM reached r JOIN {unit} bu ON bu.id = r.business_unit_id
GROUP BY GROUPING SETS ((bu.code), ())
"""

# The flow reads every transition record in scope (5M at 100k initiatives): sorting them in
# memory instead of on disk, and skipping JIT compilation (a second or more of planning for one
# run of a query that is not CPU-bound), takes most of its time off. Local to the transaction.
FLOW_SETTINGS = ("set_config('work_mem', '256MB', true)", "set_config('jit', 'off', true)")


def _stage_flow_sql(scoped: QuerySet[Any], *, configured: bool = False) -> Flow:
    scoped_sql, scoped_params = scoped.query.sql_with_params()
    sql = _FLOW_SQL.format(
        transition=StageTransition._meta.db_table,
        initiative=Initiative._meta.db_table,
        unit=BusinessUnit._meta.db_table,
        scoped=scoped_sql,
        # Stage codes are the code's own constants, written in as literals so that the only
        # parameters are the scoped query's, in its order.
        proposed=_literal(Stage.PROPOSED),
        on_hold=_literal(Stage.ON_HOLD),
        pilot=_literal(Stage.PILOT),
        operations=_literal(Stage.OPERATIONS),
        active="(" + ", ".join(_literal(s) for s in ACTIVE_STAGES) + ")",
    )
    overall = _empty_flow("")
    units: dict[str, UnitFlow] = {}
    # A transaction bounds the settings (``is_local``); no savepoint is needed for a read.
    # ``configured``: the caller applied FLOW_SETTINGS earlier in the transaction it is in.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        if not configured:
            cursor.execute("SELECT " + ", ".join(FLOW_SETTINGS))
        cursor.execute(sql, scoped_params)
        rows = cursor.fetchall()
    for kind, unit, is_total, stage, median, n, converted in rows:
        flow = overall if is_total else units.setdefault(unit, _empty_flow(unit))
        if kind == "stays":
            flow.median_days[stage] = round(median, 1)
            flow.stays[stage] = n
        else:
            flow.reached_pilot, flow.reached_operations = n, converted
    # The all-units row of an empty portfolio comes back too; no unit means no records at all.
    return Flow(overall=overall, by_unit=[units[u] for u in sorted(units)])


def _literal(stage: str) -> str:
    assert stage.replace("_", "").isalnum(), stage
    return f"'{stage}'"


def _empty_flow(unit: str) -> UnitFlow:
    return UnitFlow(
        unit,
        median_days={stage: None for stage in ACTIVE_STAGES},
        stays={stage: 0 for stage in ACTIVE_STAGES},
    )
