"""What each event gates emits says, and who gets it: one builder per event type.

A builder takes the domain objects of the change and returns the ``OutboxEvent`` to emit: its
type, its idempotency key and its payload, which always carries ``title`` and ``summary`` (the
e-mail's subject and body, see ``notifications.messages``), ``initiative`` and ``recipients``,
plus ``admin_url`` (where to act) when there is a page to act on. Services and sweeps only decide
*when* to emit; the wording of one e-mail and its recipients live here.

Recipients are built only from ``programs.recipients``, so their shape, the PMO lookup and the
de-duplication exist once in the project.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from gatekeeper.types import User
from gates.models import Approval, GateCondition, GateReview, GateTemplate, Outcome
from gates.selectors import deputies_of
from notifications.outbox import OutboxEvent
from programs.events import initiative_summary
from programs.recipients import (
    Recipient,
    dedupe,
    initiative_people,
    initiative_users,
    person,
    pmo,
)


def _admin_path(name: str, *args: Any) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:  # admin not mounted (e.g. an API-only deployment)
        return ""


def _review_url(review: GateReview) -> str:
    return _admin_path("admin:gates_gatereview_change", review.pk)


def _review_summary(review: GateReview) -> dict[str, Any]:
    return {
        "id": review.pk,
        "gate": review.gate.code,
        "template_version": review.template.version,
        "state": review.state,
        "outcome": review.outcome,
        "admin_url": _review_url(review),
    }


def _stakeholders(review: GateReview) -> list[Recipient]:
    """The submitter and the people named on the initiative, each once."""
    return dedupe([person(review.submitted_by, "submitter"), *initiative_people(review.initiative)])


def _stakeholder_users(review: GateReview) -> tuple[Any, ...]:
    """The user rows behind ``_stakeholders``, for the outbox (``OutboxEvent.users``)."""
    submitter = (review.submitted_by,) if review.submitted_by is not None else ()
    return (*submitter, *initiative_users(review.initiative))


# --- templates -----------------------------------------------------------------------------


def gate_template_revised(*, template: GateTemplate, actor: User | None) -> OutboxEvent:
    """For webhooks (audit, tooling): nobody is mailed about a template revision."""
    gate = template.gate
    who = str(actor) if actor is not None else "The system"
    return OutboxEvent(
        "gate.template_revised",
        {
            "title": f"{gate.code} template revised: version {template.version}",
            "summary": f"{who} saved version {template.version} of the {gate.code} template"
            + (f": {template.note}" if template.note else "."),
            "gate": gate.code,
            "version": template.version,
            "actor_id": getattr(actor, "pk", None),
            "note": template.note,
            "recipients": [],
        },
        key=f"gate.template_revised:{template.pk}",
    )


# --- reviews -------------------------------------------------------------------------------


def review_submitted(
    *, review: GateReview, submitter: User, approvals: Sequence[Approval], due_at: dt.datetime
) -> OutboxEvent:
    """To each approver, with the link to their own decision."""
    initiative = review.initiative
    gate = review.gate
    return OutboxEvent(
        "review.submitted",
        {
            "title": f"{initiative.key}: {gate.code} review awaits your decision",
            "summary": (
                f"{submitter} submitted the {gate.code} ({gate.name}) review of "
                f"{initiative.key} {initiative.name}. Please approve or reject by "
                f"{timezone.localtime(due_at):%a %d %b %Y %H:%M}."
            ),
            "review": _review_summary(review),
            "initiative": initiative_summary(initiative),
            "submitted_by": person(submitter, "submitter"),
            "due_at": due_at.isoformat(),
            "approval_ids": [a.pk for a in approvals],
            "admin_url": _admin_path("admin:gates_approvalinbox_changelist"),
            "recipients": [
                {
                    **(person(a.approver, a.role) or {}),
                    "approval_id": a.pk,
                    "due_at": due_at.isoformat(),
                    "admin_url": _admin_path("admin:gates_approvalinbox_decide", a.pk),
                }
                for a in approvals
            ],
        },
        key=f"review.submitted:{review.pk}",
    )


def review_withdrawn(
    *, review: GateReview, actor: User | None, reason: str, voided: Sequence[Approval]
) -> OutboxEvent:
    """To the approvers whose pending decision the withdrawal voided."""
    initiative = review.initiative
    return OutboxEvent(
        "review.withdrawn",
        {
            "title": f"{initiative.key}: {review.gate.code} review withdrawn",
            "summary": f"No decision needed any more. Reason: {reason}",
            "admin_url": _review_url(review),
            "review": _review_summary(review),
            "initiative": initiative_summary(initiative),
            "reason": reason,
            "actor_id": getattr(actor, "pk", None),
            "recipients": dedupe(person(a.approver, a.role) for a in voided),
        },
        key=f"review.withdrawn:{review.pk}",
    )


# --- decisions -----------------------------------------------------------------------------


def approval_decided(
    *, review: GateReview, approval: Approval, decided_by: User, deputy_for: User | None
) -> OutboxEvent:
    """One approver's decision, to the submitter and the people named on the initiative."""
    initiative = review.initiative
    assert approval.decided_at is not None  # decided before it is reported
    return OutboxEvent(
        "approval.decided",
        {
            "title": (
                f"{initiative.key}: {approval.get_role_display()} "
                f"{approval.status} the {review.gate.code} review"
            ),
            "summary": (
                f"{decided_by}"
                + (f" (deputy for {approval.approver})" if deputy_for else "")
                + f" {approval.status} it"
                + (f": {approval.comment}" if approval.comment else ".")
            ),
            "admin_url": _review_url(review),
            "approval": {
                "id": approval.pk,
                "role": approval.role,
                "status": approval.status,
                "outcome": approval.outcome,
                "comment": approval.comment,
                "approver_id": approval.approver_id,
                "decided_by_id": decided_by.pk,
                "on_behalf_of_id": getattr(deputy_for, "pk", None),
                "decided_at": approval.decided_at.isoformat(),
            },
            "review": _review_summary(review),
            "initiative": initiative_summary(initiative),
            "recipients": _stakeholders(review),
        },
        key=f"approval.decided:{approval.pk}",
        users=_stakeholder_users(review),
    )


def review_decided(
    *,
    review: GateReview,
    outcome: str,
    summary: str,
    conditions: Sequence[GateCondition],
    approvals: Sequence[Approval] | None = None,
) -> OutboxEvent:
    """The gate's decision, to the stakeholders and every approver of the review.

    ``approvals``: all the review's approvals with their approvers, if the caller has them (the
    decision read them under the review's lock); else they are read."""
    initiative = review.initiative
    if approvals is None:
        approvals = list(review.approvals.select_related("approver"))
    else:
        approvals = sorted(approvals, key=lambda a: a.pk)  # as the model orders them
    approvers = [person(a.approver, a.role) for a in approvals]
    milestone_ids = [c.milestone_id for c in conditions if c.milestone_id]
    return OutboxEvent(
        "review.decided",
        {
            "title": f"{initiative.key}: {review.gate.code} decided — {Outcome(outcome).label}",
            "admin_url": _review_url(review),
            "review": _review_summary(review),
            "outcome": outcome,
            "summary": summary,
            "initiative": initiative_summary(initiative),
            "condition_milestone_ids": milestone_ids,
            "recipients": dedupe([*_stakeholders(review), *approvers]),
        },
        key=f"review.decided:{review.pk}",
        users=(*_stakeholder_users(review), *(a.approver for a in approvals)),
    )


# --- approval deadlines (sweeps) -----------------------------------------------------------


def _deadline_common(approval: Approval) -> dict[str, Any]:
    review = approval.review
    return {
        "initiative": initiative_summary(review.initiative),
        "review": {"id": review.pk, "gate": review.gate.code},
        "approval": {
            "id": approval.pk,
            "role": approval.role,
            "approver_id": approval.approver_id,
            "due_at": approval.due_at.isoformat(),
        },
        "admin_url": _admin_path("admin:gates_approvalinbox_decide", approval.pk),
    }


def approval_reminder(
    *, approval: Approval, today: dt.date, deputies: Sequence[User] | None = None
) -> OutboxEvent:
    """Before the due date: to the approver and whoever deputises for them today.

    ``deputies``: ``deputies_of(approval.approver_id, today)`` when the caller already has it (a
    sweep reminding many approvers looks their deputies up at once)."""
    review = approval.review
    initiative = review.initiative
    due_local = timezone.localtime(approval.due_at)
    if deputies is None:
        deputies = deputies_of(approval.approver_id, today)
    deputising = [person(deputy, "deputy") for deputy in deputies]
    return OutboxEvent(
        "approval.reminder",
        {
            **_deadline_common(approval),
            "title": f"Reminder: {review.gate.code} decision on {initiative.key} due "
            f"{due_local:%a %d %b %H:%M}",
            "summary": (
                f"Your {approval.get_role_display()} decision on the {review.gate.code} "
                f"review of {initiative.key} {initiative.name} is due "
                f"{due_local:%a %d %b %Y %H:%M}."
            ),
            "recipients": dedupe([person(approval.approver, "approver"), *deputising]),
        },
        key=f"approval.reminder:{approval.pk}",
    )


def approval_escalated(
    *, approval: Approval, now: dt.datetime, pmo_people: list[Recipient] | None = None
) -> OutboxEvent:
    """Past the due date: to the sponsor and the PMO, copying the approver and the submitter.

    ``pmo_people``: ``pmo()`` when the caller already has it (once per sweep chunk)."""
    review = approval.review
    initiative = review.initiative
    due_local = timezone.localtime(approval.due_at)
    hours_late = int((now - approval.due_at).total_seconds() // 3600)
    return OutboxEvent(
        "approval.escalated",
        {
            **_deadline_common(approval),
            "title": f"Overdue decision: {review.gate.code} of {initiative.key} waits on "
            f"{approval.approver}",
            "summary": (
                f"The {approval.get_role_display()} decision by {approval.approver} on the "
                f"{review.gate.code} review of {initiative.key} {initiative.name} was due "
                f"{due_local:%a %d %b %Y %H:%M} and is still pending ({hours_late} h late)."
            ),
            "hours_late": hours_late,
            "recipients": dedupe(
                [
                    person(initiative.sponsor, "sponsor"),
                    *(pmo() if pmo_people is None else pmo_people),
                    person(approval.approver, "approver"),
                    person(review.submitted_by, "submitter"),
                ]
            ),
        },
        key=f"approval.escalated:{approval.pk}",
    )
