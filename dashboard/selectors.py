"""The dashboard's reads: programs' portfolio figures plus what the gates say about each stalled
initiative. A fixed number of queries whatever the portfolio's size, and only the rows a page
lists leave the database."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from gatekeeper.types import User
from gates.portfolio import approvals_overdue, next_gate_unmet_automatic
from programs.models import BusinessUnit, Initiative
from programs.portfolio import (
    Flow,
    InitiativeRow,
    OwnerOverdue,
    PortfolioFilters,
    initiatives_filtered,
    overdue_milestones_by_owner,
    portfolio_rows,
    rows_by_budget_used,
    stage_counts,
    stage_flow,
    stalled_rows,
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
    for row in stalled:
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
    conf = settings.GATEKEEPER
    if total < conf["DASHBOARD_FLOW_CACHE_FROM"]:
        return FlowFigures(stage_flow(initiatives), timezone.now(), cached=False)
    key = _flow_key(initiatives)
    hit = cache.get(key)
    if isinstance(hit, FlowFigures):
        return FlowFigures(hit.flow, hit.as_of, cached=True)
    figures = FlowFigures(stage_flow(initiatives), timezone.now(), cached=False)
    cache.set(key, figures, conf["DASHBOARD_FLOW_MAX_AGE_SECONDS"])
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


def dashboard_build(
    *, user: User, filters: PortfolioFilters, now: dt.datetime | None = None
) -> Dashboard:
    now = now or timezone.now()
    # Scoped once: who may see what is asked of the database once per page, not per panel.
    initiatives = initiatives_filtered(user=user, filters=filters)
    counts = stage_counts(initiatives, now=now)
    flow = flow_figures(initiatives, total=counts.total)
    overdue, overdue_total = overdue_milestones_by_owner(initiatives, now=now, limit=SHOWN)
    return Dashboard(
        filters=filters,
        now=now,
        total=counts.total,
        funnel=counts.funnel,
        matrix=counts.matrix,
        stalled=add_gate_causes(stalled_rows(initiatives, now=now, limit=SHOWN), now),
        stalled_total=counts.stalled,
        in_stage=rows_by_budget_used(initiatives, now=now, limit=SHOWN),
        in_stage_total=counts.active,
        overdue_by_owner=overdue,
        overdue_total=overdue_total,
        flow=flow.flow,
        flow_as_of=flow.as_of,
        flow_cached=flow.cached,
    )
