"""Gate-side portfolio reads for the PMO dashboard: what the next gate still lacks and which
approvals are late, for many initiatives at once (a fixed number of queries however many)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils import timezone

from gates.criteria import run_check_bulk
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
    stages = {i.stage for i in initiatives}
    latest: dict[str, GateTemplate] = {}
    for template in GateTemplate.objects.filter(gate__from_stage__in=stages).select_related("gate"):
        held = latest.get(template.gate.from_stage)
        if held is None or template.version > held.version:
            latest[template.gate.from_stage] = template
    criteria: dict[int, list[Criterion]] = defaultdict(list)
    for criterion in Criterion.objects.filter(
        template__in=list(latest.values()), kind=CriterionKind.AUTOMATIC, required=True
    ).order_by("template_id", "position"):
        criteria[criterion.template_id].append(criterion)

    # Which criteria apply to which initiative, then each check once over all who need it.
    applicable: dict[int, list[Criterion]] = {}
    needing: dict[str, list[Initiative]] = defaultdict(list)
    for initiative in initiatives:
        upcoming = latest.get(initiative.stage)
        own = [
            c
            for c in (criteria.get(upcoming.pk, []) if upcoming else [])
            if c.applies_to(initiative.risk_tier)
        ]
        applicable[initiative.pk] = own
        for check in {c.check_name for c in own}:
            needing[check].append(initiative)
    verdicts = {check: run_check_bulk(check, group) for check, group in needing.items()}

    gate_of = {t.pk: t.gate.code for t in latest.values()}
    return {
        initiative.pk: [
            UnmetCriterion(gate_of[c.template_id], c.check_name, c.text, reason)
            for c in applicable[initiative.pk]
            for reason in verdicts[c.check_name].get(initiative.pk, [])
        ]
        for initiative in initiatives
    }


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
    late: dict[int, list[OverdueApproval]] = defaultdict(list)
    for approval in (
        Approval.objects.filter(
            review__initiative_id__in=list(initiative_ids),
            review__state=ReviewState.SUBMITTED,
            status=ApprovalStatus.PENDING,
            due_at__lt=now,
        )
        .select_related("approver", "review__gate")
        .order_by("due_at", "id")
    ):
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
