"""Periodic checks owned by programs: overdue milestones and stalled initiatives.

Each sweep reads a small batch ordered by its stored deadline (partial indexes keep that cheap),
then handles each row in its own short transaction: lock it with SKIP LOCKED (a concurrent sweep
just moves on), record the alert in a table whose unique constraint makes "once per level" a
database fact, emit the outbox event, move the deadline. A crash between rows loses nothing:
the next sweep finds the row still due.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from gatekeeper.db import create_once
from programs import events
from programs.models import Initiative, Milestone, MilestoneAlert, MilestoneStatus, StallAlert
from programs.stages import Stage

QUIET_STAGES = (Stage.ON_HOLD, Stage.CANCELLED, Stage.RETIRED)


def _conf(name: str) -> int:
    return int(settings.GATEKEEPER[name])


def sweep_overdue_milestones(*, now: dt.datetime | None = None, batch: int | None = None) -> int:
    """Alert milestone owners at the due time; escalate N days later. Returns alerts sent."""
    now = now or timezone.now()
    batch = batch or _conf("SWEEP_BATCH_SIZE")
    due_ids = list(
        Milestone.objects.filter(status=MilestoneStatus.OPEN, next_alert_at__lte=now)
        # Nobody can act on a held, cancelled or retired initiative's milestones; a held one's
        # alerts resume with it.
        .exclude(initiative__stage__in=QUIET_STAGES)
        .order_by("next_alert_at")
        .values_list("id", flat=True)[:batch]
    )
    sent = 0
    for milestone_id in due_ids:
        with transaction.atomic():
            milestone = (
                Milestone.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("initiative__business_unit", "initiative__business_owner", "owner")
                .filter(pk=milestone_id, status=MilestoneStatus.OPEN, next_alert_at__lte=now)
                .exclude(initiative__stage__in=QUIET_STAGES)
                .first()
            )
            if milestone is None:
                continue  # another sweep holds it, or it was closed or rescheduled meanwhile
            level = min(milestone.alert_level + 1, MilestoneAlert.Level.ESCALATED)
            if create_once(
                MilestoneAlert, milestone=milestone, level=level, due_at=milestone.due_at
            ):
                alert = (
                    events.milestone_overdue
                    if level == MilestoneAlert.Level.OVERDUE
                    else events.milestone_escalated
                )
                alert(milestone, level=level, now=now).emit()
                sent += 1
            milestone.alert_level = level
            milestone.next_alert_at = (
                milestone.due_at + dt.timedelta(days=_conf("MILESTONE_ESCALATION_DAYS"))
                if level == MilestoneAlert.Level.OVERDUE
                else None
            )
            milestone.save(update_fields=["alert_level", "next_alert_at"])
    return sent


def sweep_stalled_initiatives(*, now: dt.datetime | None = None, batch: int | None = None) -> int:
    """Tell the business owner, sponsor and PMO when a stay in a stage outlasts its budget."""
    now = now or timezone.now()
    batch = batch or _conf("SWEEP_BATCH_SIZE")
    due_ids = list(
        Initiative.objects.filter(stall_at__lte=now)
        .order_by("stall_at")
        .values_list("id", flat=True)[:batch]
    )
    sent = 0
    for initiative_id in due_ids:
        with transaction.atomic():
            initiative = (
                Initiative.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("business_unit", "business_owner", "sponsor", "delivery_lead")
                .filter(pk=initiative_id, stall_at__lte=now)
                .first()
            )
            if initiative is None:
                continue
            if create_once(
                StallAlert,
                initiative=initiative,
                stage=initiative.stage,
                stage_entered_at=initiative.stage_entered_at,
            ):
                events.initiative_stalled(initiative, now=now).emit()
                sent += 1
            # stage is protected: a queryset update changes only the deadline column.
            Initiative.objects.filter(pk=initiative.pk).update(stall_at=None)
    return sent
