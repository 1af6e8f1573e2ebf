"""Approval deadlines: a reminder before an approval is due, an escalation once it is overdue.

Same shape as programs' sweeps: a small batch ordered by the stored ``remind_at`` column (partial
index on pending rows), each row in its own short transaction locked with SKIP LOCKED, the alert
recorded in ``ApprovalAlert`` whose unique (approval, kind) makes "once" a database fact, then the
outbox event. A sweep that first sees an approval after it fell due skips the reminder (moot by
then) and escalates.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from gatekeeper.db import create_once
from gates.models import AlertKind, Approval, ApprovalAlert, ApprovalStatus, Delegation, ReviewState
from notifications.outbox import emit
from programs.events import initiative_summary
from programs.roles import PMO
from programs.stages import ACTIVE_STAGES


def _admin_path(name: str, *args: Any) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def _recipient(user: Any, role: str) -> list[dict[str, Any]]:
    if user is None:
        return []
    return [{"user_id": user.pk, "email": user.email, "role": role}]


def _deputies(approval: Approval, day: dt.date) -> list[dict[str, Any]]:
    delegations = Delegation.objects.filter(
        principal_id=approval.approver_id,
        starts_on__lte=day,
        ends_on__gte=day,
        revoked_at__isnull=True,
    ).select_related("deputy")
    return [r for d in delegations for r in _recipient(d.deputy, "deputy")]


def _pmo() -> list[dict[str, Any]]:
    users = get_user_model()._default_manager.filter(groups__name=PMO, is_active=True)
    return [{"user_id": u.pk, "email": u.email, "role": "pmo"} for u in users]


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
                _emit(approval, kind, now)
                sent += 1
            approval.remind_at = approval.due_at if kind == AlertKind.REMINDER else None
            approval.save(update_fields=["remind_at"])
    return sent


def _emit(approval: Approval, kind: str, now: dt.datetime) -> None:
    review = approval.review
    initiative = review.initiative
    due_local = timezone.localtime(approval.due_at)
    decide_url = _admin_path("admin:gates_approvalinbox_decide", approval.pk)
    common = {
        "initiative": initiative_summary(initiative),
        "review": {"id": review.pk, "gate": review.gate.code},
        "approval": {
            "id": approval.pk,
            "role": approval.role,
            "approver_id": approval.approver_id,
            "due_at": approval.due_at.isoformat(),
        },
        "admin_url": decide_url,
    }
    if kind == AlertKind.REMINDER:
        emit(
            "approval.reminder",
            {
                **common,
                "title": f"Reminder: {review.gate.code} decision on {initiative.key} due "
                f"{due_local:%a %d %b %H:%M}",
                "summary": (
                    f"Your {approval.get_role_display()} decision on the {review.gate.code} "
                    f"review of {initiative.key} {initiative.name} is due "
                    f"{due_local:%a %d %b %Y %H:%M}."
                ),
                "recipients": _recipient(approval.approver, "approver")
                + _deputies(approval, timezone.localdate(now)),
            },
            key=f"approval.reminder:{approval.pk}",
        )
        return
    hours_late = int((now - approval.due_at).total_seconds() // 3600)
    emit(
        "approval.escalated",
        {
            **common,
            "title": f"Overdue decision: {review.gate.code} of {initiative.key} waits on "
            f"{approval.approver}",
            "summary": (
                f"The {approval.get_role_display()} decision by {approval.approver} on the "
                f"{review.gate.code} review of {initiative.key} {initiative.name} was due "
                f"{due_local:%a %d %b %Y %H:%M} and is still pending ({hours_late} h late)."
            ),
            "hours_late": hours_late,
            "recipients": _recipient(initiative.sponsor, "sponsor")
            + _pmo()
            + _recipient(approval.approver, "approver")
            + _recipient(review.submitted_by, "submitter"),
        },
        key=f"approval.escalated:{approval.pk}",
    )
