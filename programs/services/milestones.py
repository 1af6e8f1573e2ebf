"""Milestones: adding and rescheduling them, and closing them as done or waived."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from gatekeeper.errors import Conflict, ValidationFailed
from gatekeeper.types import User
from programs import events
from programs.models import Initiative, Milestone, MilestoneStatus
from programs.services._common import require_open, require_perm, require_reason
from programs.stages import Stage


def milestone_add(
    *,
    initiative: Initiative,
    actor: User | None,
    title: str,
    owner: User,
    due_at: dt.datetime,
    stage: str | None = None,
    is_gate_condition: bool = False,
    external_system: str = "",
    external_key: str = "",
) -> Milestone:
    errors: dict[str, list[str]] = {}
    if not title.strip():
        errors["title"] = ["required"]
    if stage is not None and stage not in Stage.values:
        errors["stage"] = ["unknown stage"]
    if bool(external_system) != bool(external_key):
        errors["external_key"] = ["external system and key go together"]
    if timezone.is_naive(due_at):
        errors["due_at"] = ["must include a time zone"]
    if errors:
        raise ValidationFailed("The milestone has invalid fields.", errors=errors)
    try:
        with transaction.atomic():
            locked = Initiative.objects.select_for_update().get(pk=initiative.pk)
            require_perm(actor, "programs.change_initiative", locked)
            require_open(locked)
            return Milestone.objects.create(
                initiative=locked,
                stage=stage or (locked.held_from or locked.stage),
                title=title.strip(),
                owner=owner,
                due_at=due_at,
                is_gate_condition=is_gate_condition,
                external_system=external_system,
                external_key=external_key,
                next_alert_at=due_at,
            )
    except IntegrityError as exc:
        raise ValidationFailed(
            f"Ticket {external_system}:{external_key} is already linked to a milestone.",
            errors={"external_key": ["already linked"]},
        ) from exc


def milestone_update(
    *, milestone: Milestone, actor: User | None, title: str, owner: User, due_at: dt.datetime
) -> Milestone:
    """Edit an open milestone; moving its due date restarts its overdue alerts from level 0."""
    if not title.strip():
        raise ValidationFailed("A milestone needs a title.", errors={"title": ["required"]})
    if timezone.is_naive(due_at):
        raise ValidationFailed("Invalid due date.", errors={"due_at": ["must include a time zone"]})
    with transaction.atomic():
        locked = (
            Milestone.objects.select_for_update(of=("self",))
            .select_related("initiative")
            .get(pk=milestone.pk)
        )
        require_perm(actor, "programs.change_milestone", locked)
        if locked.is_gate_condition:
            require_perm(actor, "programs.override_gate_condition", locked)
        if locked.status != MilestoneStatus.OPEN:
            raise Conflict(f"Milestone '{locked.title}' is {locked.status}; it can't be edited")
        if locked.due_at != due_at:
            locked.next_alert_at = due_at
            locked.alert_level = 0
        locked.title = title.strip()
        locked.owner = owner
        locked.due_at = due_at
        locked.save()
    milestone.refresh_from_db()
    return locked


def _lock_milestone(milestone: Milestone) -> Milestone:
    return (
        Milestone.objects.select_for_update(of=("self",))
        .select_related("initiative", "initiative__business_unit", "owner")
        .get(pk=milestone.pk)
    )


def _close_milestone(
    *, milestone: Milestone, actor: User | None, status: str, reason: str = ""
) -> Milestone:
    with transaction.atomic():
        locked = _lock_milestone(milestone)
        if status == MilestoneStatus.DONE:
            require_perm(actor, "programs.complete_milestone", locked)
        else:
            require_perm(actor, "programs.change_milestone", locked)
            if locked.is_gate_condition:
                require_perm(actor, "programs.override_gate_condition", locked)
        if locked.status == status:
            return locked  # repeated request (a ticket webhook retried): already done
        if locked.status != MilestoneStatus.OPEN:
            raise Conflict(f"Milestone '{locked.title}' is already {locked.status}")
        locked.status = status
        locked.completed_at = timezone.now()
        locked.completed_by = actor
        locked.waive_reason = reason
        locked.next_alert_at = None
        locked.save()
        builder = (
            events.milestone_done if status == MilestoneStatus.DONE else events.milestone_waived
        )
        builder(locked).emit()
    milestone.refresh_from_db()
    return locked


def milestone_complete(*, milestone: Milestone, actor: User | None) -> Milestone:
    return _close_milestone(milestone=milestone, actor=actor, status=MilestoneStatus.DONE)


def milestone_waive(*, milestone: Milestone, actor: User | None, reason: str) -> Milestone:
    require_reason(reason, "waive a milestone")
    return _close_milestone(
        milestone=milestone, actor=actor, status=MilestoneStatus.WAIVED, reason=reason
    )


# --- ticketing -------------------------------------------------------------------------------
# Services a ticketing integration drives (integrations/ calls them with its service account).
# Like milestone_complete they are idempotent, so a replayed webhook changes nothing twice.


def milestone_reopen(*, milestone: Milestone, actor: User | None, reason: str) -> Milestone:
    """Put a done milestone back to open (its ticket was reopened); open already is a no-op.

    Its overdue alerts start over from level 0 at its due date, as when milestone_update moves
    the date. A waived milestone stays waived: that was a person's decision, not a ticket's.
    """
    with transaction.atomic():
        locked = _lock_milestone(milestone)
        # Reopening undoes a completion, so whoever may complete it may reopen it.
        require_perm(actor, "programs.complete_milestone", locked)
        if locked.status == MilestoneStatus.OPEN:
            return locked
        if locked.status != MilestoneStatus.DONE:
            raise Conflict(f"Milestone '{locked.title}' is {locked.status}; it can't be reopened")
        locked.status = MilestoneStatus.OPEN
        locked.completed_at = None
        locked.completed_by = None
        locked.next_alert_at = locked.due_at
        locked.alert_level = 0
        locked.save()
        events.milestone_reopened(locked, reason=reason, now=timezone.now()).emit()
    milestone.refresh_from_db()
    return locked


def milestone_flag_ticket_deleted(*, milestone: Milestone, actor: User | None) -> Milestone:
    """Record that the milestone's linked ticket was deleted and tell its owner (once).

    The status is left alone: a deleted ticket neither proves the work done nor undone, so a
    person decides (complete, waive, or link another ticket).
    """
    with transaction.atomic():
        locked = _lock_milestone(milestone)
        require_perm(actor, "programs.complete_milestone", locked)
        if locked.external_deleted_at is not None:
            return locked
        locked.external_deleted_at = timezone.now()
        locked.save(update_fields=["external_deleted_at"])
        events.milestone_ticket_deleted(locked).emit()
    milestone.refresh_from_db()
    return locked
