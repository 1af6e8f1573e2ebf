"""Reads for gates: checklists, approver resolution, the approvals inbox, the evidence pack.

Query-conscious: a checklist costs one query for evidence plus one per automatic check, and the
inbox is a single query with its relations joined.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from gates.checks import run_check
from gates.models import (
    Approval,
    ApprovalStatus,
    ApproverRule,
    Criterion,
    CriterionKind,
    Delegation,
    EventKind,
    Evidence,
    Gate,
    GateApprover,
    GateReview,
    GateRole,
    GateTemplate,
    ReviewEvent,
)
from gates.policy import QuorumResult, quorum
from programs.models import Initiative
from programs.roles import APPROVERS, INTEGRATIONS, PMO

# --- gates and templates -----------------------------------------------------------------


def gate_out_of(stage: str) -> Gate | None:
    return Gate.objects.filter(from_stage=stage).first()


def gate_template_current(*, gate: Gate) -> GateTemplate:
    template = gate.templates.order_by("-version").first()
    if template is None:
        raise LookupError(f"gate {gate.code} has no template")
    return template


def template_criteria(template: GateTemplate, risk_tier: str) -> list[Criterion]:
    return [c for c in template.criteria.all() if c.applies_to(risk_tier)]


def template_approver_roles(template: GateTemplate, risk_tier: str) -> list[str]:
    rules: list[ApproverRule] = list(template.approvers.all())
    return [r.role for r in rules if r.applies_to(risk_tier)]


# --- criteria checklist ------------------------------------------------------------------


@dataclass
class CriterionStatus:
    criterion: Criterion
    satisfied: bool
    reasons: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        c = self.criterion
        return {
            "code": c.code,
            "text": c.text,
            "kind": c.kind,
            "required": c.required,
            "satisfied": self.satisfied,
            "reasons": self.reasons,
            "evidence": [
                {
                    "id": e.pk,
                    "url": e.url,
                    "note": e.note,
                    "attached_by": _person(e.attached_by),
                    "attached_at": e.attached_at.isoformat(),
                    "carried_from_evidence_id": e.carried_from_id,
                }
                for e in self.evidence
            ],
        }


def review_checklist(*, review: GateReview) -> list[CriterionStatus]:
    """Every criterion that applies to the review, evaluated now (automatic ones from live data)."""
    initiative = review.initiative
    criteria = template_criteria(review.template, review.effective_risk_tier)
    by_criterion: dict[int, list[Evidence]] = defaultdict(list)
    for item in review.evidence.select_related("attached_by").order_by("attached_at", "id"):
        by_criterion[item.criterion_id].append(item)
    result: list[CriterionStatus] = []
    for criterion in criteria:
        if criterion.kind == CriterionKind.AUTOMATIC:
            reasons = run_check(criterion.check_name, initiative)
            result.append(CriterionStatus(criterion, not reasons, reasons))
        else:
            items = by_criterion.get(criterion.pk, [])
            reasons = [] if items else [f"evidence needed: {criterion.text}"]
            result.append(CriterionStatus(criterion, bool(items), reasons, items))
    return result


def review_unmet_criteria(*, review: GateReview) -> list[str]:
    """Reasons the required criteria are not all satisfied, in template order."""
    unmet: list[str] = []
    for status in review_checklist(review=review):
        if status.criterion.required and not status.satisfied:
            unmet.extend(f"{status.criterion.text}: {reason}" for reason in status.reasons)
    return unmet


# --- approvers ---------------------------------------------------------------------------


@dataclass
class ResolvedApprovers:
    slots: list[tuple[str, Any]]  # (role, user)
    unmet: list[str]


def resolve_approvers(
    *, initiative: Initiative, template: GateTemplate, risk_tier: str, submitter: Any
) -> ResolvedApprovers:
    """The person for each required role, or the reasons some role can't be filled.

    A unit-specific assignment beats the default one. Separation of duties is checked here, at
    submission, so a review never starts that could not be decided.
    """
    roles = template_approver_roles(template, risk_tier)
    assignments = {
        (a.role, a.business_unit_id): a.user
        for a in GateApprover.objects.filter(
            Q(business_unit__isnull=True) | Q(business_unit_id=initiative.business_unit_id),
            role__in=roles,
        ).select_related("user")
    }
    slots: list[tuple[str, Any]] = []
    unmet: list[str] = []
    for role in roles:
        label = GateRole(role).label
        if role == GateRole.BUSINESS_OWNER:
            user = initiative.business_owner
            if user is None:
                unmet.append("approver business owner: the initiative has no business owner")
                continue
        else:
            user = assignments.get((role, initiative.business_unit_id)) or assignments.get(
                (role, None)
            )
            if user is None:
                unmet.append(
                    f"approver {label}: nobody holds this gate role for business unit "
                    f"{initiative.business_unit.code}"
                )
                continue
        slots.append((role, user))

    users = get_user_model().objects.filter(pk__in=[u.pk for _, u in slots])
    groups = {
        u.pk: set(u.groups.values_list("name", flat=True)) for u in users.prefetch_related("groups")
    }
    seen: dict[int, str] = {}
    for role, user in slots:
        label = GateRole(role).label
        names = groups.get(user.pk, set())
        if not user.is_active:
            unmet.append(f"approver {label}: {user} is not an active user")
        if INTEGRATIONS in names:
            unmet.append(f"approver {label}: {user} is a service account and cannot approve")
        if role == GateRole.PMO and PMO not in names:
            unmet.append(f"approver {label}: {user} is not in the {PMO} group")
        elif role not in (GateRole.BUSINESS_OWNER, GateRole.PMO) and APPROVERS not in names:
            unmet.append(f"approver {label}: {user} is not in the {APPROVERS} group")
        if submitter is not None and user.pk == submitter.pk:
            unmet.append(
                f"approver {label}: {user} submits this review and cannot also approve it; "
                "someone else must submit"
            )
        if user.pk in seen:
            unmet.append(
                f"approver {label}: {user} already approves as {GateRole(seen[user.pk]).label}; "
                "each approval needs a different person"
            )
        seen.setdefault(user.pk, role)
    return ResolvedApprovers(slots, unmet)


def principals_of(user: Any, day: dt.date | None = None) -> set[int]:
    """The approvers ``user`` may act for on ``day``: themselves and whoever delegated to them."""
    day = day or timezone.localdate()
    ids = set(
        Delegation.objects.filter(
            deputy_id=user.pk, starts_on__lte=day, ends_on__gte=day, revoked_at__isnull=True
        ).values_list("principal_id", flat=True)
    )
    ids.add(user.pk)
    return ids


def approvals_inbox(*, user: Any, day: dt.date | None = None) -> QuerySet[Approval]:
    """Pending approvals the user may decide now: theirs and those of whom they deputise for."""
    if not user.is_authenticated:
        return Approval.objects.none()
    return (
        Approval.objects.filter(
            status=ApprovalStatus.PENDING,
            review__state="submitted",
            approver_id__in=principals_of(user, day),
        )
        .select_related(
            "approver",
            "review__gate",
            "review__template",
            "review__initiative__business_unit",
            "review__submitted_by",
        )
        .order_by("due_at", "id")
    )


def reviews_visible_to(*, user: Any) -> QuerySet[GateReview]:
    qs = GateReview.objects.select_related(
        "initiative", "initiative__business_unit", "gate", "template", "submitted_by"
    )
    if not user.is_authenticated:
        return qs.none()
    if user.is_superuser or user.groups.filter(name=PMO).exists():
        return qs
    return qs.filter(
        Q(initiative__business_owner=user)
        | Q(initiative__sponsor=user)
        | Q(initiative__delivery_lead=user)
        | Q(approvals__approver_id__in=principals_of(user))
    ).distinct()


def review_quorum(review: GateReview) -> QuorumResult:
    statuses = [a.status for a in review.approvals.all()]
    return quorum(review.template.quorum_policy, review.template.quorum_n, statuses)


# --- evidence pack -----------------------------------------------------------------------


def _person(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    return {
        "id": user.pk,
        "username": user.get_username(),
        "name": user.get_full_name() or user.get_username(),
        "email": user.email,
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def review_for_pack(review_id: int) -> GateReview:
    return (
        GateReview.objects.select_related(
            "initiative",
            "initiative__business_unit",
            "initiative__business_owner",
            "initiative__sponsor",
            "gate",
            "template",
            "submitted_by",
            "created_by",
        )
        .prefetch_related(
            Prefetch("template__criteria", queryset=Criterion.objects.order_by("position")),
            "template__approvers",
            Prefetch(
                "approvals",
                queryset=Approval.objects.select_related("approver", "decided_by").order_by("id"),
            ),
            Prefetch(
                "events",
                queryset=ReviewEvent.objects.select_related("actor", "on_behalf_of").order_by(
                    "created_at", "id"
                ),
            ),
            "conditions__owner",
            "conditions__milestone",
        )
        .get(pk=review_id)
    )


def evidence_pack(*, review: GateReview) -> dict[str, Any]:
    """Everything a later audit needs about one gate decision, as plain JSON-ready data."""
    initiative = review.initiative
    submitted = next((e for e in review.events.all() if e.kind == EventKind.SUBMITTED), None)
    return {
        "schema": "gatekeeper.evidence-pack/1",
        "generated_at": timezone.now().isoformat(),
        "initiative": {
            "id": initiative.pk,
            "key": initiative.key,
            "name": initiative.name,
            "business_unit": initiative.business_unit.code,
            "risk_tier": initiative.risk_tier,
            "stage": initiative.stage,
            "business_owner": _person(initiative.business_owner),
            "sponsor": _person(initiative.sponsor),
            "target_workflow": initiative.target_workflow,
        },
        "review": {
            "id": review.pk,
            "gate": review.gate.code,
            "gate_name": review.gate.name,
            "from_stage": review.gate.from_stage,
            "to_stage": review.gate.to_stage,
            "template_version": review.template.version,
            "quorum_policy": review.template.quorum_policy,
            "quorum_n": review.template.quorum_n,
            "decision_sla_business_days": review.template.decision_sla_business_days,
            "risk_tier": review.effective_risk_tier,
            "state": review.state,
            "outcome": review.outcome,
            "decision_summary": review.decision_summary,
            "created_by": _person(review.created_by),
            "created_at": _iso(review.created_at),
            "submitted_by": _person(review.submitted_by),
            "submitted_at": _iso(review.submitted_at),
            "decided_at": _iso(review.decided_at),
            "closed_reason": review.closed_reason,
        },
        "criteria": [s.as_dict() for s in review_checklist(review=review)],
        "criteria_at_submission": (submitted.data.get("criteria", []) if submitted else []),
        "approvals": [
            {
                "id": a.pk,
                "role": a.role,
                "approver": _person(a.approver),
                "decided_by": _person(a.decided_by),
                "on_behalf_of": _person(a.approver) if a.on_behalf else None,
                "status": a.status,
                "outcome": a.outcome,
                "comment": a.comment,
                "due_at": _iso(a.due_at),
                "decided_at": _iso(a.decided_at),
            }
            for a in review.approvals.all()
        ],
        "conditions": [
            {
                "title": c.title,
                "owner": _person(c.owner),
                "due_at": _iso(c.due_at),
                "milestone_id": c.milestone_id,
                "milestone_status": c.milestone.status if c.milestone else None,
            }
            for c in review.conditions.all()
        ],
        "events": [
            {
                "kind": e.kind,
                "actor": _person(e.actor),
                "on_behalf_of": _person(e.on_behalf_of),
                "approval_id": e.approval_id,
                "at": _iso(e.created_at),
                "data": e.data,
            }
            for e in review.events.all()
        ],
        "links": {
            "html": reverse("gates:evidence-pack-html", args=[review.pk]),
            "json": reverse("gates:evidence-pack-json", args=[review.pk]),
        },
    }


# --- API reads (appended for api/) ---------------------------------------------------------


def approvals_visible_to(*, user: Any) -> QuerySet[Approval]:
    """Approvals of every review the user may see (its people see who decides their gate)."""
    return Approval.objects.select_related(
        "review__gate", "review__initiative", "approver", "decided_by"
    ).filter(review__in=reviews_visible_to(user=user).values("pk"))


def evidence_visible_to(*, user: Any) -> QuerySet[Evidence]:
    return Evidence.objects.select_related("review", "criterion", "attached_by").filter(
        review__in=reviews_visible_to(user=user).values("pk")
    )


def gate_templates_published() -> QuerySet[GateTemplate]:
    return GateTemplate.objects.select_related("gate").prefetch_related(
        Prefetch("criteria", queryset=Criterion.objects.order_by("position")), "approvers"
    )
