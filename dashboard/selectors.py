"""The dashboard's reads: programs' portfolio figures plus what the gates say about each stalled
initiative. A fixed number of queries whatever the portfolio's size."""

from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass

from django.utils import timezone

from gatekeeper.types import User
from gates.portfolio import approvals_overdue, next_gate_unmet_automatic
from programs.models import BusinessUnit
from programs.portfolio import (
    Flow,
    InitiativeRow,
    OwnerOverdue,
    PortfolioFilters,
    overdue_milestones_by_owner,
    portfolio_rows,
    stage_flow,
    stage_funnel,
    unit_stage_matrix,
)
from programs.stages import ACTIVE_STAGES

# Checks whose failure programs already names as a cause ("no business owner", "no success
# metric ..."): listed once, in programs' words.
_SAID_BY_PROGRAMS = {
    "metric_with_baseline_and_target",
    "pilot_results_measured",
}


def business_units() -> list[BusinessUnit]:
    return list(BusinessUnit.objects.order_by("name"))


def portfolio_with_causes(
    *, user: User, filters: PortfolioFilters, now: dt.datetime
) -> list[InitiativeRow]:
    """The filtered portfolio's rows, each stalled one with every cause computed today: no
    business owner, no judgeable metric, overdue milestones (programs), then the next gate's
    failing automatic criteria and its overdue approvals (gates)."""
    rows = portfolio_rows(user=user, filters=filters, now=now)
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


@dataclass
class Dashboard:
    filters: PortfolioFilters
    now: dt.datetime
    rows: list[InitiativeRow]
    funnel: dict[str, int]
    matrix: dict[str, dict[str, int]]
    stalled: list[InitiativeRow]  # the first ``SHOWN``, furthest past its time first
    stalled_total: int
    in_stage: list[InitiativeRow]  # the first ``SHOWN``, most of its budget used first
    in_stage_total: int
    overdue_by_owner: list[OwnerOverdue]  # the first ``SHOWN`` milestones, in the owners' order
    overdue_total: int
    flow: Flow


# Per-initiative lists on the page stop here: a portfolio of 100k has ~65k initiatives in an
# active stage, which no one reads on a page; the CSV has every row.
SHOWN = 50


def _first_milestones(groups: list[OwnerOverdue], limit: int) -> list[OwnerOverdue]:
    shown: list[OwnerOverdue] = []
    for group in groups:
        if limit <= 0:
            break
        shown.append(OwnerOverdue(group.owner, group.milestones[:limit], len(group.milestones)))
        limit -= len(shown[-1].milestones)
    return shown


def dashboard_build(
    *, user: User, filters: PortfolioFilters, now: dt.datetime | None = None
) -> Dashboard:
    now = now or timezone.now()
    rows = portfolio_with_causes(user=user, filters=filters, now=now)
    active = [row for row in rows if row.stage in ACTIVE_STAGES]
    stalled = [row for row in rows if row.stalled]
    overdue = overdue_milestones_by_owner(user=user, filters=filters, now=now)
    return Dashboard(
        filters=filters,
        now=now,
        rows=rows,
        funnel=stage_funnel(rows),
        matrix=unit_stage_matrix(rows),
        stalled=sorted(stalled, key=lambda row: -(row.days_past_expected or 0))[:SHOWN],
        stalled_total=len(stalled),
        # Closest to (or furthest past) its budget first; no budget last.
        in_stage=heapq.nsmallest(
            SHOWN,
            active,
            key=lambda row: (row.budget_used is None, -(row.budget_used or 0), row.key),
        ),
        in_stage_total=len(active),
        overdue_by_owner=_first_milestones(overdue, SHOWN),
        overdue_total=sum(len(group.milestones) for group in overdue),
        flow=stage_flow(user=user, filters=filters),
    )
