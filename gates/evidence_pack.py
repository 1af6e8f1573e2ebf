"""The evidence pack of one gate review: everything a later audit needs about its decision.

A presenter, not a selector: it loads the review with every relation the pack shows
(``review_for_pack``) and turns it into plain JSON-ready data (``evidence_pack``), which the JSON
view returns as is and the HTML template renders. ``criterion_entry`` is also the shape of the
checklist snapshot a submission records, so the pack can set "at submission" beside "now".
``pack_for_people`` turns a pack into what the HTML page shows: labels instead of codes, local
times in words instead of ISO strings (the JSON export stays as it is).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

from django.db import models
from django.db.models import Prefetch
from django.urls import reverse
from django.utils import dateformat, timezone

from gatekeeper.types import User
from gates.models import (
    Approval,
    ApprovalStatus,
    Criterion,
    CriterionKind,
    EventKind,
    GateReview,
    GateRole,
    Outcome,
    QuorumPolicy,
    ReviewEvent,
    ReviewState,
)
from gates.selectors import CriterionStatus, review_checklist
from programs.models import MilestoneStatus, RiskTier
from programs.stages import Stage


def _person(user: User | None) -> dict[str, Any] | None:
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


def criterion_entry(status: CriterionStatus) -> dict[str, Any]:
    """One checklist row with its evidence, as the pack (and a submission's snapshot) holds it."""
    c = status.criterion
    return {
        "code": c.code,
        "text": c.text,
        "kind": c.kind,
        "required": c.required,
        "satisfied": status.satisfied,
        "reasons": status.reasons,
        "evidence": [
            {
                "id": e.pk,
                "url": e.url,
                "note": e.note,
                "attached_by": _person(e.attached_by),
                "attached_at": e.attached_at.isoformat(),
                "carried_from_evidence_id": e.carried_from_id,
            }
            for e in status.evidence
        ],
    }


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
        "criteria": [criterion_entry(s) for s in review_checklist(review=review)],
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


# --- the pack as people read it ----------------------------------------------------------------

HUMAN_TIME = "j M Y, H:i T"  # e.g. "26 Nov 2026, 09:15 CET"


def _local(value: str | None) -> str | None:
    if not value:
        return value
    return dateformat.format(timezone.localtime(dt.datetime.fromisoformat(value)), HUMAN_TIME)


def _labeller(choices: type[models.TextChoices]) -> Callable[[str | None], str | None]:
    labels = dict(choices.choices)
    return lambda code: labels.get(code, code) if code else code


_stage = _labeller(Stage)
_role = _labeller(GateRole)
_outcome = _labeller(Outcome)


def _relabel(row: dict[str, Any], **fields: Callable[[Any], Any]) -> None:
    for name, convert in fields.items():
        if name in row:
            row[name] = convert(row[name])


def pack_for_people(pack: dict[str, Any], *, review: GateReview) -> dict[str, Any]:
    """A copy of ``pack`` for the HTML page: each code as its label (stages, roles, states,
    outcomes, kinds), the business unit by name, and every timestamp in the local time zone."""
    shown = copy.deepcopy(pack)
    shown["generated_at"] = _local(shown["generated_at"])
    _relabel(
        shown["initiative"],
        stage=_stage,
        risk_tier=_labeller(RiskTier),
        business_unit=lambda _code: str(review.initiative.business_unit.name),
    )
    _relabel(
        shown["review"],
        from_stage=_stage,
        to_stage=_stage,
        risk_tier=_labeller(RiskTier),
        state=_labeller(ReviewState),
        outcome=_outcome,
        quorum_policy=_labeller(QuorumPolicy),
        created_at=_local,
        submitted_at=_local,
        decided_at=_local,
    )
    for entry in [*shown["criteria"], *shown["criteria_at_submission"]]:
        _relabel(entry, kind=_labeller(CriterionKind))
        for item in entry.get("evidence", []):
            _relabel(item, attached_at=_local)
    for approval in shown["approvals"]:
        _relabel(
            approval,
            role=_role,
            status=_labeller(ApprovalStatus),
            outcome=_outcome,
            due_at=_local,
            decided_at=_local,
        )
    for condition in shown["conditions"]:
        _relabel(condition, due_at=_local, milestone_status=_labeller(MilestoneStatus))
    for event in shown["events"]:
        _relabel(event, kind=_labeller(EventKind), at=_local)
    return shown
