"""Approval deadlines: a reminder before an approval is due, an escalation once it is overdue.

Same shape as programs' sweeps: a small batch ordered by the stored ``remind_at`` column (partial
index on pending rows), handled a chunk at a time, each chunk in one transaction with a fixed
number of queries: its rows locked with SKIP LOCKED, the alerts recorded in one insert into
``ApprovalAlert`` whose unique (approval, kind) makes "once" a database fact (only the alerts
actually recorded are emitted), the outbox events emitted together, the deadlines moved on in
bulk. A sweep that first sees an approval after it fell due skips the reminder (moot by then) and
escalates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from gatekeeper.db import create_once_many
from gates import events
from gates.models import AlertKind, Approval, ApprovalAlert, ApprovalStatus, ReviewState
from gates.selectors import deputies_of_each
from notifications import outbox
from programs.recipients import pmo
from programs.stages import ACTIVE_STAGES

# Approvals per transaction, as programs.sweeps.CHUNK_SIZE.
CHUNK_SIZE = 100


def sweep_approval_deadlines(*, now: dt.datetime | None = None, batch: int | None = None) -> int:
    now = now or timezone.now()
    batch = batch or int(settings.GATEKEEPER["SWEEP_BATCH_SIZE"])
    due_ids = list(
        Approval.objects.filter(status=ApprovalStatus.PENDING, remind_at__lte=now)
        .order_by("remind_at")
        .values_list("id", flat=True)[:batch]
    )
    return sum(
        _chase(due_ids[start : start + CHUNK_SIZE], now=now)
        for start in range(0, len(due_ids), CHUNK_SIZE)
    )


def _chase(ids: Sequence[int], *, now: dt.datetime) -> int:
    with transaction.atomic(), outbox.batch():
        # Decided meanwhile, or held by another sweep: dropped here.
        locked = (
            Approval.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related(
                "approver",
                "review__gate",
                "review__submitted_by",
                "review__initiative__business_unit",
                "review__initiative__sponsor",
            )
            .filter(pk__in=ids, status=ApprovalStatus.PENDING, remind_at__lte=now)
        )
        order = {pk: i for i, pk in enumerate(ids)}
        approvals = sorted(locked, key=lambda a: order[a.pk])
        if not approvals:
            return 0
        # A closed review, or an initiative held/cancelled/past the gates (no decision can be
        # recorded there): nothing left to chase, only the deadline is cleared.
        live = [
            a
            for a in approvals
            if a.review.state == ReviewState.SUBMITTED
            and a.review.initiative.stage in ACTIVE_STAGES
        ]
        kind = {a.pk: AlertKind.REMINDER if now < a.due_at else AlertKind.ESCALATION for a in live}
        # Already recorded (a racing or repeated sweep sent it): only move the deadline on.
        recorded = create_once_many(
            [ApprovalAlert(approval=a, kind=kind[a.pk]) for a in live], returning="approval"
        )
        alerted = [a for a in live if a.pk in recorded]
        today = timezone.localdate(now)
        reminded = [a for a in alerted if kind[a.pk] == AlertKind.REMINDER]
        deputies = deputies_of_each({a.approver_id for a in reminded}, today) if reminded else {}
        escalating = len(reminded) < len(alerted)
        pmo_people = pmo() if escalating else []
        outbox.emit_all(
            [
                events.approval_reminder(
                    approval=a, today=today, deputies=deputies.get(a.approver_id, [])
                )
                if kind[a.pk] == AlertKind.REMINDER
                else events.approval_escalated(approval=a, now=now, pmo_people=pmo_people)
                for a in alerted
            ]
        )
        # After the reminder, the escalation at the due time; after that, nothing.
        again = [a.pk for a in live if kind[a.pk] == AlertKind.REMINDER]
        done = [a.pk for a in approvals if a.pk not in again]
        if again:
            Approval.objects.filter(pk__in=again).update(remind_at=F("due_at"))
        if done:
            Approval.objects.filter(pk__in=done).update(remind_at=None)
        return len(alerted)
