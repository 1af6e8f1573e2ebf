"""Approval deadlines: a reminder before an approval is due, an escalation once it is overdue.

Same shape as programs' sweeps: a small batch ordered by the stored ``remind_at`` column (partial
index on pending rows), each row in its own short transaction locked with SKIP LOCKED, the alert
recorded in ``ApprovalAlert`` whose unique (approval, kind) makes "once" a database fact, then the
outbox event. A sweep that first sees an approval after it fell due skips the reminder (moot by
then) and escalates.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from gatekeeper.db import create_once
from gates import events
from gates.models import AlertKind, Approval, ApprovalAlert, ApprovalStatus, ReviewState
from programs.stages import ACTIVE_STAGES


def sweep_approval_deadlines(*, now: dt.datetime | None = None, batch: int | None = None) -> int:
    now = now or timezone.now()
    batch = batch or int(settings.GATEKEEPER["SWEEP_BATCH_SIZE"])
    due_ids = list(
        Approval.objects.filter(status=ApprovalStatus.PENDING, remind_at__lte=now)
        .order_by("remind_at")
        .values_list("id", flat=True)[:batch]
    )
    sent = 0
    for approval_id in due_ids:
        with transaction.atomic():
            approval = (
                Approval.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related(
                    "approver",
                    "review__gate",
                    "review__submitted_by",
                    "review__initiative__business_unit",
                    "review__initiative__sponsor",
                )
                .filter(pk=approval_id, status=ApprovalStatus.PENDING, remind_at__lte=now)
                .first()
            )
            if approval is None:
                continue  # decided meanwhile, or another sweep holds it
            if (
                approval.review.state != ReviewState.SUBMITTED
                or approval.review.initiative.stage not in ACTIVE_STAGES
            ):
                # The review closed, or its initiative is held/cancelled/past the gates (no
                # decision can be recorded there): nothing left to chase.
                approval.remind_at = None
                approval.save(update_fields=["remind_at"])
                continue
            kind = AlertKind.REMINDER if now < approval.due_at else AlertKind.ESCALATION
            # Already recorded (a racing or repeated sweep sent it): only move the deadline on.
            if create_once(ApprovalAlert, approval=approval, kind=kind):
                alert = (
                    events.approval_reminder(approval=approval, today=timezone.localdate(now))
                    if kind == AlertKind.REMINDER
                    else events.approval_escalated(approval=approval, now=now)
                )
                alert.emit()
                sent += 1
            approval.remind_at = approval.due_at if kind == AlertKind.REMINDER else None
            approval.save(update_fields=["remind_at"])
    return sent
