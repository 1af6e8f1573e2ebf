"""What each event programs emits says, and who gets it: one builder per event type.

A builder takes the domain objects and returns an ``OutboxEvent`` (type, payload, idempotency key);
the service or sweep that caused it calls its ``emit()`` inside its transaction. Every
payload carries a ``title`` and ``summary`` (the e-mail's subject and body), the ``initiative``
summary and its ``recipients``, built only with ``programs.recipients``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from notifications.outbox import OutboxEvent
from programs.recipients import (
    Recipient,
    dedupe,
    initiative_people,
    initiative_users,
    person,
    pmo,
)

if TYPE_CHECKING:
    from programs.models import Initiative, Milestone, StageTransition, SuccessMetric


def initiative_summary(initiative: Initiative) -> dict[str, Any]:
    """The initiative as every event payload names it (gates' events use it too)."""
    return {
        "id": initiative.pk,
        "key": initiative.key,
        "name": initiative.name,
        "stage": initiative.stage,
        "business_unit": initiative.business_unit.code,
    }


def _or_pmo(known: list[Recipient] | None) -> list[Recipient]:
    return pmo() if known is None else known


def _label(initiative: Initiative) -> str:
    return f"{initiative.key} {initiative.name}"


def _outgoing(
    type_: str,
    initiative: Initiative,
    *,
    key: str,
    title: str,
    summary: str,
    recipients: list[Recipient] | None = None,
    **rest: Any,
) -> OutboxEvent:
    """The event ``type_`` about ``initiative``, keyed ``type_:key``; ``rest`` is what is
    particular to the type. Unless told otherwise it goes to the initiative's people."""
    payload = {
        "title": title,
        "summary": summary,
        "initiative": initiative_summary(initiative),
        **rest,
        "recipients": initiative_people(initiative) if recipients is None else recipients,
    }
    users = initiative_users(initiative) if recipients is None else ()
    return OutboxEvent(type_, payload, key=f"{type_}:{key}", users=users)


# --- initiatives -----------------------------------------------------------------------------


def initiative_created(initiative: Initiative) -> OutboxEvent:
    return _outgoing(
        "initiative.created",
        initiative,
        key=str(initiative.pk),
        title=f"New initiative: {_label(initiative)}",
        summary=f"{_label(initiative)} was proposed in {initiative.business_unit.code}.",
    )


def initiative_owner_assigned(
    initiative: Initiative, *, previous_owner_id: int | None
) -> OutboxEvent:
    label = _label(initiative)
    return _outgoing(
        "initiative.owner_assigned",
        initiative,
        # Timestamped: assigning A, then B, then A again is three announcements.
        key=f"{initiative.pk}:{initiative.business_owner_id}:{timezone.now().isoformat()}",
        title=f"Business owner assigned for {label}",
        summary=f"{initiative.business_owner} is now the business owner of {label}.",
        previous_owner_id=previous_owner_id,
    )


def initiative_updated(
    initiative: Initiative, *, changes: dict[str, dict[str, Any]], actor_id: int | None
) -> OutboxEvent:
    return _outgoing(
        "initiative.updated",
        initiative,
        key=f"{initiative.pk}:{uuid.uuid4().hex}",
        title=f"{_label(initiative)} was updated",
        summary=f"Changed: {', '.join(changes)}.",
        changes=changes,
        actor_id=actor_id,
        admin_url=f"/admin/programs/initiative/{initiative.pk}/change/",
    )


def initiative_stage_changed(initiative: Initiative, record: StageTransition) -> OutboxEvent:
    summary = f"{_label(initiative)} is now in {initiative.get_stage_display()}."
    if record.reason:
        summary += f" Reason: {record.reason}"
    return _outgoing(
        "initiative.stage_changed",
        initiative,
        key=str(record.pk),
        title=f"{_label(initiative)} moved from {record.from_stage} to {record.to_stage}",
        summary=summary,
        from_stage=record.from_stage,
        to_stage=record.to_stage,
        transition=record.transition,
        reason=record.reason,
        actor_id=record.actor_id,
        gate_review_id=record.gate_review_id,
    )


def initiative_stalled(
    initiative: Initiative, *, now: dt.datetime, pmo_people: list[Recipient] | None = None
) -> OutboxEvent:
    """``pmo_people``: ``pmo()`` when the caller already has it (a sweep building many alerts
    looks the PMO up once, not once per alert)."""
    days = (now - initiative.stage_entered_at).days
    stage = initiative.get_stage_display()
    return _outgoing(
        "initiative.stalled",
        initiative,
        key=f"{initiative.pk}:{initiative.stage_entered_at.isoformat()}",
        title=f"Stalled: {_label(initiative)} has been in {stage} for {days} days",
        summary=(
            f"{initiative.key} entered {stage} on {initiative.stage_entered_at:%Y-%m-%d}, "
            "longer than its gate allows. Decide: prepare the next gate review, hold, or cancel."
        ),
        recipients=dedupe([*initiative_people(initiative), *_or_pmo(pmo_people)]),
        admin_url=f"/admin/programs/initiative/{initiative.pk}/change/",
        days_in_stage=days,
    )


# --- metrics ---------------------------------------------------------------------------------


def metric_redefined(metric: SuccessMetric, *, before: dict[str, str]) -> OutboxEvent:
    """``before``: the old values of the fields that moved (baseline, target, direction)."""
    initiative = metric.initiative
    changes = {n: {"from": before[n], "to": str(getattr(metric, n))} for n in before}
    moved = ", ".join(f"{n} {c['from']} -> {c['to']}" for n, c in changes.items())
    return _outgoing(
        "metric.redefined",
        initiative,
        key=f"{metric.pk}:{uuid.uuid4().hex}",
        title=f"{initiative.key}: success metric '{metric.name}' redefined",
        summary=f"What the gate judges {initiative.key} against changed: {moved}.",
        metric={"id": metric.pk, "name": metric.name},
        changes=changes,
    )


# --- milestones ------------------------------------------------------------------------------


def _milestone_closed(milestone: Milestone, *, verb: str) -> OutboxEvent:
    initiative = milestone.initiative
    summary = f"Milestone '{milestone.title}' of {_label(initiative)} was {verb}."
    if milestone.waive_reason:
        summary += f" Reason: {milestone.waive_reason}"
    # Keyed by the closing time too: a milestone reopened (its ticket was) and closed again is
    # news again.
    closed_at = milestone.completed_at.isoformat() if milestone.completed_at else ""
    return _outgoing(
        f"milestone.{milestone.status}",
        initiative,
        key=f"{milestone.pk}:{closed_at}",
        title=f"Milestone {milestone.status}: {milestone.title} ({_label(initiative)})",
        summary=summary,
        recipients=dedupe([person(milestone.owner, "milestone_owner")]),
        milestone={"id": milestone.pk, "title": milestone.title, "status": milestone.status},
    )


def milestone_done(milestone: Milestone) -> OutboxEvent:
    return _milestone_closed(milestone, verb="completed")


def milestone_waived(milestone: Milestone) -> OutboxEvent:
    return _milestone_closed(milestone, verb="waived")


def milestone_reopened(milestone: Milestone, *, reason: str, now: dt.datetime) -> OutboxEvent:
    initiative = milestone.initiative
    return _outgoing(
        "milestone.reopened",
        initiative,
        # A milestone may be reopened more than once; each time is its own fact.
        key=f"{milestone.pk}:{now.isoformat()}",
        title=f"Milestone reopened: {milestone.title} ({_label(initiative)})",
        summary=f"Milestone '{milestone.title}' was reopened: {reason}",
        recipients=dedupe([person(milestone.owner, "milestone_owner")]),
        milestone={"id": milestone.pk, "title": milestone.title, "status": milestone.status},
        reason=reason,
    )


def milestone_ticket_deleted(milestone: Milestone) -> OutboxEvent:
    initiative = milestone.initiative
    ticket = f"{milestone.external_system}:{milestone.external_key}"
    return _outgoing(
        "milestone.ticket_deleted",
        initiative,
        key=str(milestone.pk),
        title=f"Linked ticket deleted: {ticket} ({milestone.title}, {_label(initiative)})",
        summary=(
            f"Ticket {ticket} linked to milestone '{milestone.title}' was deleted. "
            "Complete or waive the milestone, or link it to another ticket."
        ),
        recipients=dedupe([person(milestone.owner, "milestone_owner")]),
        milestone={"id": milestone.pk, "title": milestone.title, "status": milestone.status},
        ticket={"system": milestone.external_system, "key": milestone.external_key},
    )


def _milestone_alert(
    milestone: Milestone,
    *,
    type_: str,
    level: int,
    days_late: int,
    title: str,
    recipients: list[Recipient],
) -> OutboxEvent:
    initiative = milestone.initiative
    return _outgoing(
        type_,
        initiative,
        key=f"{milestone.pk}:{milestone.due_at.isoformat()}",
        title=title,
        summary=(
            f"Milestone '{milestone.title}' of {_label(initiative)} was due "
            f"{milestone.due_at:%Y-%m-%d %H:%M} UTC and is still open."
        ),
        recipients=recipients,
        admin_url=f"/admin/programs/milestone/{milestone.pk}/change/",
        milestone={
            "id": milestone.pk,
            "title": milestone.title,
            "due_at": milestone.due_at.isoformat(),
            "owner_id": milestone.owner_id,
            "days_late": days_late,
            "level": level,
        },
    )


def milestone_overdue(milestone: Milestone, *, level: int, now: dt.datetime) -> OutboxEvent:
    return _milestone_alert(
        milestone,
        type_="milestone.overdue",
        level=level,
        days_late=max((now - milestone.due_at).days, 0),
        title=f"Overdue: {milestone.title} ({milestone.initiative.key})",
        recipients=dedupe([person(milestone.owner, "milestone_owner")]),
    )


def milestone_escalated(
    milestone: Milestone,
    *,
    level: int,
    now: dt.datetime,
    pmo_people: list[Recipient] | None = None,
) -> OutboxEvent:
    """``pmo_people`` as for ``initiative_stalled``."""
    initiative = milestone.initiative
    days_late = max((now - milestone.due_at).days, 0)
    return _milestone_alert(
        milestone,
        type_="milestone.escalated",
        level=level,
        days_late=days_late,
        title=f"Escalated: {milestone.title} ({initiative.key}) is {days_late} days late",
        recipients=dedupe(
            [
                person(initiative.business_owner, "business_owner"),
                *_or_pmo(pmo_people),
                person(milestone.owner, "milestone_owner"),
            ]
        ),
    )
