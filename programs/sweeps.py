"""Periodic checks owned by programs: overdue milestones and stalled initiatives.

Each sweep reads a small batch ordered by its stored deadline (partial indexes keep that cheap),
then handles it a chunk at a time, each chunk in one transaction and a fixed number of queries
however many rows it holds: lock the chunk's rows with SKIP LOCKED (rows a concurrent sweep holds
are left to it) re-checking that they are still due, record the alerts in one insert into a table
whose unique constraint makes "once per level" a database fact (rows already recorded are skipped,
and only the alerts actually recorded are emitted), emit those events in one outbox batch, move
the deadlines with one update per outcome. A crash mid-chunk rolls the whole chunk back: the next
sweep finds its rows still due.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from gatekeeper.db import create_once_many
from notifications import outbox
from programs import events
from programs.models import Initiative, Milestone, MilestoneAlert, MilestoneStatus, StallAlert
from programs.recipients import pmo
from programs.stages import Stage

QUIET_STAGES = (Stage.ON_HOLD, Stage.CANCELLED, Stage.RETIRED)

# Rows per transaction. Each chunk costs the same handful of queries and one commit, so bigger is
# cheaper per row; smaller keeps the row locks short (a user completing a milestone the sweep holds
# waits for the chunk's commit).
CHUNK_SIZE = 100


def _conf(name: str) -> int:
    return int(settings.GATEKEEPER[name])


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK_SIZE):
        yield ids[start : start + CHUNK_SIZE]


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
    return sum(_alert_milestones(chunk, now=now) for chunk in _chunks(due_ids))


def _alert_milestones(ids: Sequence[int], *, now: dt.datetime) -> int:
    with transaction.atomic(), outbox.batch():
        # Rows another sweep holds, or closed or rescheduled since the read, drop out here.
        locked = (
            Milestone.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("initiative__business_unit", "initiative__business_owner", "owner")
            .filter(pk__in=ids, status=MilestoneStatus.OPEN, next_alert_at__lte=now)
            .exclude(initiative__stage__in=QUIET_STAGES)
        )
        order = {pk: i for i, pk in enumerate(ids)}
        milestones = sorted(locked, key=lambda m: order[m.pk])
        if not milestones:
            return 0
        level = {m.pk: min(m.alert_level + 1, MilestoneAlert.Level.ESCALATED) for m in milestones}
        # Already recorded (a racing or repeated sweep sent it): only the deadline moves on.
        recorded = create_once_many(
            [MilestoneAlert(milestone=m, level=level[m.pk], due_at=m.due_at) for m in milestones],
            returning="milestone",
        )
        alerted = [m for m in milestones if m.pk in recorded]
        escalating = any(level[m.pk] == MilestoneAlert.Level.ESCALATED for m in alerted)
        pmo_people = pmo() if escalating else []
        outbox.emit_all(
            [
                events.milestone_overdue(m, level=level[m.pk], now=now)
                if level[m.pk] == MilestoneAlert.Level.OVERDUE
                else events.milestone_escalated(
                    m, level=level[m.pk], now=now, pmo_people=pmo_people
                )
                for m in alerted
            ]
        )
        escalation = dt.timedelta(days=_conf("MILESTONE_ESCALATION_DAYS"))
        for new_level, next_alert_at in (
            (MilestoneAlert.Level.OVERDUE, F("due_at") + escalation),
            (MilestoneAlert.Level.ESCALATED, None),
        ):
            moved = [pk for pk, reached in level.items() if reached == new_level]
            if moved:
                Milestone.objects.filter(pk__in=moved).update(
                    alert_level=new_level, next_alert_at=next_alert_at
                )
        return len(alerted)


def sweep_stalled_initiatives(*, now: dt.datetime | None = None, batch: int | None = None) -> int:
    """Tell the business owner, sponsor and PMO when a stay in a stage outlasts its budget."""
    now = now or timezone.now()
    batch = batch or _conf("SWEEP_BATCH_SIZE")
    due_ids = list(
        Initiative.objects.filter(stall_at__lte=now)
        .order_by("stall_at")
        .values_list("id", flat=True)[:batch]
    )
    return sum(_report_stalls(chunk, now=now) for chunk in _chunks(due_ids))


def _report_stalls(ids: Sequence[int], *, now: dt.datetime) -> int:
    with transaction.atomic(), outbox.batch():
        locked = (
            Initiative.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("business_unit", "business_owner", "sponsor", "delivery_lead")
            .filter(pk__in=ids, stall_at__lte=now)
        )
        order = {pk: i for i, pk in enumerate(ids)}
        initiatives = sorted(locked, key=lambda i: order[i.pk])
        if not initiatives:
            return 0
        recorded = create_once_many(
            [
                StallAlert(initiative=i, stage=i.stage, stage_entered_at=i.stage_entered_at)
                for i in initiatives
            ],
            returning="initiative",
        )
        stalled = [i for i in initiatives if i.pk in recorded]
        if stalled:
            pmo_people = pmo()
            outbox.emit_all(
                [events.initiative_stalled(i, now=now, pmo_people=pmo_people) for i in stalled]
            )
        # stage is protected: a queryset update changes only the deadline column.
        Initiative.objects.filter(pk__in=[i.pk for i in initiatives]).update(stall_at=None)
        return len(stalled)
