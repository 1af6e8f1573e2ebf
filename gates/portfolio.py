"""Gate-side portfolio reads for the PMO dashboard: what the next gate still lacks and which
approvals are late, for many initiatives at once (a fixed number of queries however many)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from gates.criteria import check_fact_queries, check_facts_from, judge_bulk, run_check_bulk
from gates.models import (
    Approval,
    ApprovalStatus,
    Criterion,
    CriterionKind,
    GateRole,
    GateTemplate,
    ReviewState,
)
from programs.models import Initiative


@dataclass(frozen=True)
class UnmetCriterion:
    gate: str  # code
    check_name: str
    text: str
    reason: str


def next_gate_unmet_automatic(
    initiatives: Sequence[Initiative],
) -> dict[int, list[UnmetCriterion]]:
    """For each initiative (by pk), the required automatic criteria of the gate out of its stage
    that fail today, judged against that gate's current template and the initiative's risk tier.

    A review in flight may hold an older template version; the current one is what the next
    review will be judged by, so it is what the PMO needs to chase.
    """
    criteria = list(next_gate_criteria_query(initiatives))
    return _unmet(initiatives, criteria, lambda check, group: run_check_bulk(check, group))


def next_gate_criteria_query(initiatives: Sequence[Initiative]) -> QuerySet[Criterion]:
    """The required automatic criteria of the current template of each gate out of one of
    ``initiatives``' stages, with their template and gate."""
    current = (
        GateTemplate.objects.filter(gate__from_stage=OuterRef("template__gate__from_stage"))
        .order_by("-version", "id")
        .values("pk")[:1]
    )
    return (
        Criterion.objects.filter(
            template__gate__from_stage__in={i.stage for i in initiatives},
            template=Subquery(current),
            kind=CriterionKind.AUTOMATIC,
            required=True,
        )
        .select_related("template__gate")
        .order_by("template_id", "position")
    )


def _unmet(
    initiatives: Sequence[Initiative],
    criteria: list[Criterion],
    verdicts_of: Callable[[str, list[Initiative]], dict[int, list[str]]],
) -> dict[int, list[UnmetCriterion]]:
    by_stage: dict[str, list[Criterion]] = defaultdict(list)
    for criterion in criteria:
        by_stage[criterion.template.gate.from_stage].append(criterion)
    # Which criteria apply to which initiative, then each check once over all who need it.
    applicable: dict[int, list[Criterion]] = {}
    needing: dict[str, list[Initiative]] = defaultdict(list)
    for initiative in initiatives:
        own = [c for c in by_stage.get(initiative.stage, []) if c.applies_to(initiative.risk_tier)]
        applicable[initiative.pk] = own
        for check in {c.check_name for c in own}:
            needing[check].append(initiative)
    verdicts = {check: verdicts_of(check, group) for check, group in needing.items()}
    return {
        initiative.pk: [
            UnmetCriterion(c.template.gate.code, c.check_name, c.text, reason)
            for c in applicable[initiative.pk]
            for reason in verdicts[c.check_name].get(initiative.pk, [])
        ]
        for initiative in initiatives
    }


def stall_cause_queries(
    initiatives: Sequence[Initiative], now: dt.datetime
) -> dict[str, QuerySet[Any]]:
    """Every read ``stall_causes_from`` needs about ``initiatives``, as querysets to run in one
    statement with others (dashboard.together); names start with ``gates_``."""
    return {
        "gates_criteria": next_gate_criteria_query(initiatives),
        "gates_approvals": _approvals_overdue_query([i.pk for i in initiatives], now),
        **{f"gates_{name}": qs for name, qs in check_fact_queries(initiatives).items()},
    }


def stall_causes_from(
    initiatives: Sequence[Initiative], rows: dict[str, list[Any]], now: dt.datetime
) -> tuple[dict[int, list[UnmetCriterion]], dict[int, list[OverdueApproval]]]:
    """``next_gate_unmet_automatic`` and ``approvals_overdue`` from what
    ``stall_cause_queries`` read: no query."""
    facts = check_facts_from(
        {name[len("gates_") :]: value for name, value in rows.items() if name.startswith("gates_")}
    )
    unmet = _unmet(
        initiatives,
        rows["gates_criteria"],
        lambda check, group: judge_bulk(check, group, facts),
    )
    return unmet, _approvals_by_initiative(rows["gates_approvals"], now)


@dataclass(frozen=True)
class OverdueApproval:
    gate: str  # code
    role: str  # label
    approver: str
    due_at: dt.datetime
    days_late: float


def approvals_overdue(
    initiative_ids: Sequence[int], now: dt.datetime | None = None
) -> dict[int, list[OverdueApproval]]:
    """Pending approvals of submitted reviews past their due time, by initiative pk: one query."""
    now = now or timezone.now()
    return _approvals_by_initiative(list(_approvals_overdue_query(initiative_ids, now)), now)


def _approvals_overdue_query(initiative_ids: Sequence[int], now: dt.datetime) -> QuerySet[Approval]:
    return (
        Approval.objects.filter(
            review__initiative_id__in=list(initiative_ids),
            review__state=ReviewState.SUBMITTED,
            status=ApprovalStatus.PENDING,
            due_at__lt=now,
        )
        .select_related("approver", "review__gate")
        .order_by("due_at", "id")
    )


def _approvals_by_initiative(
    approvals: list[Approval], now: dt.datetime
) -> dict[int, list[OverdueApproval]]:
    late: dict[int, list[OverdueApproval]] = defaultdict(list)
    for approval in approvals:
        late[approval.review.initiative_id].append(
            OverdueApproval(
                gate=approval.review.gate.code,
                role=GateRole(approval.role).label,
                approver=approval.approver.get_full_name() or approval.approver.get_username(),
                due_at=approval.due_at,
                days_late=(now - approval.due_at).total_seconds() / 86400,
            )
        )
    return dict(late)
