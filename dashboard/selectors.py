"""The dashboard's reads: programs' portfolio figures plus what the gates say about each stalled
initiative. A fixed number of queries whatever the portfolio's size (the page's panels read
together, dashboard.together), and only the rows a page lists leave the database."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Exists, Q, QuerySet
from django.utils import timezone

from dashboard.together import read_together
from gatekeeper.types import User
from gates.portfolio import (
    OverdueApproval,
    UnmetCriterion,
    approvals_overdue,
    next_gate_unmet_automatic,
    stall_cause_queries,
    stall_causes_from,
)
from programs.models import BusinessUnit, Initiative
from programs.portfolio import (
    FLOW_SETTINGS,
    Flow,
    InitiativeRow,
    OwnerOverdue,
    PortfolioFilters,
    initiatives_filtered,
    overdue_fill,
    overdue_milestones_query,
    overdue_owners_from,
    overdue_owners_query,
    portfolio_rows,
    rows_by_budget_used_query,
    rows_of,
    stage_counts_from,
    stage_counts_query,
    stage_flow,
    stalled_rows_query,
)

# Checks whose failure programs already names as a cause ("no business owner", "no success
# metric ..."): listed once, in programs' words.
_SAID_BY_PROGRAMS = {
    "metric_with_baseline_and_target",
    "pilot_results_measured",
}


def business_units() -> list[BusinessUnit]:
    return list(BusinessUnit.objects.order_by("name"))


def add_gate_causes(rows: list[InitiativeRow], now: dt.datetime) -> list[InitiativeRow]:
    """Add to each stalled row what gates says holds it: the next gate's failing automatic
    criteria and its overdue approvals (after programs' own causes: no business owner, no
    judgeable metric, overdue milestones). A fixed number of queries for the whole list."""
    stalled = [row for row in rows if row.stalled]
    if not stalled:
        return rows
    unmet = next_gate_unmet_automatic([row.initiative for row in stalled])
    late = approvals_overdue([row.initiative.pk for row in stalled], now)
    return _with_gate_causes(rows, unmet, late)


def _with_gate_causes(
    rows: list[InitiativeRow],
    unmet: dict[int, list[UnmetCriterion]],
    late: dict[int, list[OverdueApproval]],
) -> list[InitiativeRow]:
    for row in rows:
        if not row.stalled:
            continue
        for item in unmet.get(row.initiative.pk, []):
            if item.check_name in _SAID_BY_PROGRAMS and not row.has_judged_metric:
                continue
            if item.check_name == "business_owner_from_business_line" and not row.business_owner:
                continue
            row.causes.append(f"{item.gate} criterion unmet: {item.text} ({item.reason})")
        for approval in late.get(row.initiative.pk, []):
            row.causes.append(
                f"{approval.gate} approval overdue: {approval.role} ({approval.approver}), "
                f"{approval.days_late:.0f} days late"
            )
    return rows


def portfolio_with_causes(
    *, user: User, filters: PortfolioFilters, now: dt.datetime, chunk: int = 2000
) -> Iterator[InitiativeRow]:
    """Every row of the filtered portfolio, each stalled one with every cause computed today,
    streamed in chunks (a fixed number of gates queries per chunk) for the CSV."""
    rows = portfolio_rows(user=user, filters=filters, now=now)
    while block := list(islice(rows, chunk)):
        yield from add_gate_causes(block, now)


@dataclass
class Dashboard:
    filters: PortfolioFilters
    now: dt.datetime
    total: int
    funnel: dict[str, int]
    matrix: dict[str, dict[str, int]]
    stalled: list[InitiativeRow]  # the first ``SHOWN``, furthest past its time first
    stalled_total: int
    in_stage: list[InitiativeRow]  # the first ``SHOWN``, most of its budget used first
    in_stage_total: int
    overdue_by_owner: list[OwnerOverdue]  # the first ``SHOWN`` milestones, in the owners' order
    overdue_total: int
    flow: Flow
    flow_as_of: dt.datetime
    flow_cached: bool  # computed earlier (at ``flow_as_of``) and served from the cache
    units: list[BusinessUnit]  # every business unit, by name (the filter's choices)


@dataclass(frozen=True)
class FlowFigures:
    flow: Flow
    as_of: dt.datetime
    cached: bool  # computed earlier (at ``as_of``), not for this load


def _flow_key(initiatives: QuerySet[Initiative]) -> str:
    # The scoped query's SQL names exactly which initiatives the figures cover: the filters and
    # the caller's scope (a PMO's is every initiative, so all PMOs share one entry).
    sql, params = initiatives.order_by().values("pk").query.sql_with_params()
    digest = hashlib.sha256(repr((sql, params)).encode()).hexdigest()[:32]
    return f"dashboard:flow:v1:{digest}"


def flow_figures(initiatives: QuerySet[Initiative], *, total: int) -> FlowFigures:
    """The pilot -> operations flow of ``total`` initiatives: computed now for a portfolio
    under ``DASHBOARD_FLOW_CACHE_FROM``; from the cache (at most the max age old) above it."""
    return _flow_cached(initiatives, total=total) or _flow_computed(initiatives, total=total)


def _flow_cached(initiatives: QuerySet[Initiative], *, total: int) -> FlowFigures | None:
    if total < settings.GATEKEEPER["DASHBOARD_FLOW_CACHE_FROM"]:
        return None
    hit = cache.get(_flow_key(initiatives))
    if isinstance(hit, FlowFigures):
        return FlowFigures(hit.flow, hit.as_of, cached=True)
    return None


def _flow_computed(
    initiatives: QuerySet[Initiative], *, total: int, configured: bool = False
) -> FlowFigures:
    conf = settings.GATEKEEPER
    figures = FlowFigures(stage_flow(initiatives, configured=configured), timezone.now(), False)
    if total >= conf["DASHBOARD_FLOW_CACHE_FROM"]:
        cache.set(_flow_key(initiatives), figures, conf["DASHBOARD_FLOW_MAX_AGE_SECONDS"])
    return figures


def flow_warm() -> bool:
    """Recompute the unfiltered, everyone-visible flow into the cache (beat runs this more often
    than entries expire), so a PMO opening the dashboard never waits for it. False when the
    portfolio is small enough to compute on every load."""
    initiatives = Initiative.objects.all()
    if initiatives.count() < settings.GATEKEEPER["DASHBOARD_FLOW_CACHE_FROM"]:
        return False
    figures = FlowFigures(stage_flow(initiatives), timezone.now(), cached=False)
    cache.set(
        _flow_key(initiatives), figures, settings.GATEKEEPER["DASHBOARD_FLOW_MAX_AGE_SECONDS"]
    )
    return True


# Per-initiative lists on the page stop here: a portfolio of 100k has ~65k initiatives in an
# active stage, which no one reads on a page; the CSV has every row.
SHOWN = 50


def dashboard_scope(*, user: User, filters: PortfolioFilters) -> QuerySet[Initiative]:
    """The initiatives the page covers. The business unit filter applies only if a unit has
    that code: an unknown code is reported by the form and not applied, as the form's own
    check would (which would cost a query before this one to know the units)."""
    initiatives = initiatives_filtered(user=user, filters=replace(filters, business_unit=""))
    if code := filters.business_unit:
        initiatives = initiatives.filter(
            Q(business_unit__code=code) | ~Exists(BusinessUnit.objects.filter(code=code))
        )
    return initiatives


def dashboard_build(
    *, user: User, filters: PortfolioFilters, now: dt.datetime | None = None
) -> Dashboard:
    """Every panel of the page in two statements (on PostgreSQL; one query per panel
    elsewhere), plus the flow's own when it is computed rather than cached: first the counts,
    the units, overdue work per owner and the rows listed; then, for what the first found, the
    overdue milestones listed and what holds each stalled row at its gate."""
    now = now or timezone.now()
    # Scoped once: who may see what is asked of the database once per page, not per panel.
    initiatives = dashboard_scope(user=user, filters=filters)
    first = read_together(
        {
            "units": BusinessUnit.objects.order_by("name"),
            "counts": stage_counts_query(initiatives, now=now),
            "owners": overdue_owners_query(initiatives, now=now),
            "stalled": stalled_rows_query(initiatives, now=now, limit=SHOWN),
            "in_stage": rows_by_budget_used_query(initiatives, now=now, limit=SHOWN),
        }
    )
    counts = stage_counts_from(first["counts"])
    owners, overdue_total = overdue_owners_from(first["owners"], limit=SHOWN)
    stalled = rows_of(first["stalled"], now)
    then: dict[str, QuerySet[Any]] = {}
    if owners:
        then["overdue"] = overdue_milestones_query(initiatives, now=now, owners=owners, limit=SHOWN)
    if stalled:
        then.update(stall_cause_queries([row.initiative for row in stalled], now))
    flow = _flow_cached(initiatives, total=counts.total)
    # The flow's settings are local to the transaction: set in the second statement, they hold
    # for the flow's query after it.
    configure = flow is None and bool(then) and connection.vendor == "postgresql"
    with transaction.atomic(savepoint=False):
        read = read_together(then, also=FLOW_SETTINGS if configure else ()) if then else {}
        if flow is None:
            flow = _flow_computed(initiatives, total=counts.total, configured=configure)
    if stalled:
        _with_gate_causes(
            stalled, *stall_causes_from([row.initiative for row in stalled], read, now)
        )
    overdue = overdue_fill(owners, read.get("overdue", []), now=now, limit=SHOWN)
    return Dashboard(
        filters=filters,
        now=now,
        total=counts.total,
        funnel=counts.funnel,
        matrix=counts.matrix,
        stalled=stalled,
        stalled_total=counts.stalled,
        in_stage=rows_of(first["in_stage"], now),
        in_stage_total=counts.active,
        overdue_by_owner=overdue,
        overdue_total=overdue_total,
        flow=flow.flow,
        flow_as_of=flow.as_of,
        flow_cached=flow.cached,
        units=first["units"],
    )
