"""Receiving and applying ticketing webhooks (the inbox): store, claim, apply, retry, dead-letter.

At-least-once with a claim, as the outbox's deliveries (CONVENTIONS.md §5): a delivery is applied
only by the worker whose conditional UPDATE moved it to ``applying``, and its outcome is written
in the same transaction as the milestone change, only while that worker still holds the claim.
So a replay (a redelivered task, the sweep, an admin retry) applies nothing twice; a worker that
dies mid-apply leaves the row ``applying`` and, after the lease, the sweep hands it out again.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from gatekeeper import retry
from gatekeeper.db import Param, claim
from gatekeeper.env import env_int
from gatekeeper.errors import DomainError
from integrations import tickets
from integrations.models import (
    InboundDelivery,
    InboundStatus,
    Integration,
    TicketState,
    generate_secret,
)
from programs import services as program_services
from programs.models import Milestone, MilestoneStatus
from programs.rules import is_integration

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 2000
MAX_NOTE_LENGTH = 500


@dataclass(frozen=True)
class InboundConf:
    max_attempts: int
    retry_base_seconds: int
    retry_max_seconds: int
    claim_lease_seconds: int
    redispatch_batch_size: int
    # A delivery younger than this is left to its own on-commit task by the sweep.
    redispatch_grace_seconds: int


def get_conf() -> InboundConf:
    """``settings.INTEGRATIONS_INBOUND`` (tests override it) over environment defaults."""
    values = {
        "MAX_ATTEMPTS": env_int("GATEKEEPER_INBOUND_MAX_ATTEMPTS", 8, minimum=1),
        "RETRY_BASE_SECONDS": env_int("GATEKEEPER_INBOUND_RETRY_BASE_SECONDS", 30, minimum=1),
        # Capped like the outbox's: retries live in the database, never as broker countdowns.
        "RETRY_MAX_SECONDS": min(
            env_int("GATEKEEPER_INBOUND_RETRY_MAX_SECONDS", 1800, minimum=1), 1800
        ),
        "CLAIM_LEASE_SECONDS": env_int("GATEKEEPER_INBOUND_LEASE_SECONDS", 300, minimum=1),
        "REDISPATCH_BATCH_SIZE": 500,
        "REDISPATCH_GRACE_SECONDS": 60,
        **getattr(settings, "INTEGRATIONS_INBOUND", {}),
    }
    return InboundConf(
        max_attempts=int(values["MAX_ATTEMPTS"]),
        retry_base_seconds=int(values["RETRY_BASE_SECONDS"]),
        retry_max_seconds=int(values["RETRY_MAX_SECONDS"]),
        claim_lease_seconds=int(values["CLAIM_LEASE_SECONDS"]),
        redispatch_batch_size=int(values["REDISPATCH_BATCH_SIZE"]),
        redispatch_grace_seconds=int(values["REDISPATCH_GRACE_SECONDS"]),
    )


def backoff_seconds(attempt: int, *, conf: InboundConf) -> float:
    return retry.backoff_seconds(
        attempt, base=conf.retry_base_seconds, maximum=conf.retry_max_seconds
    )


# --- receiving ---------------------------------------------------------------------------


def integration_for_webhook(*, kind: str, ref: str) -> Integration | None:
    """The active integration of ``kind`` addressed by id or slug in its webhook URL."""
    found = Integration.objects.filter(kind=kind, is_active=True)
    found = found.filter(pk=int(ref)) if ref.isdigit() else found.filter(slug=ref)
    return found.first()


def inbound_receive(
    *, integration: Integration, delivery_id: str, event_type: str, body: Any
) -> tuple[InboundDelivery, bool]:
    """Store a verified webhook; apply it after commit. ``(delivery, False)`` for a repeat."""
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                delivery = InboundDelivery.objects.create(
                    integration=integration,
                    delivery_id=delivery_id,
                    event_type=event_type[:64],
                    body=body,
                    next_attempt_at=now,
                )
        except IntegrityError:
            # The sender retried (it missed our 202): the first copy is the one that counts.
            existing = InboundDelivery.objects.get(integration=integration, delivery_id=delivery_id)
            return existing, False
        transaction.on_commit(lambda: enqueue_apply([delivery.pk]))
    return delivery, True


def enqueue_apply(delivery_ids: list[int], *, expires: float | None = None) -> bool:
    """Queue one apply task per delivery; never raises (the rows wait for the sweep)."""
    from integrations.tasks import apply  # tasks import this module

    try:
        for delivery_id in delivery_ids:
            apply.apply_async(args=[delivery_id], expires=expires)
    except Exception:  # kombu/redis raise several types for an unreachable broker
        logger.warning(
            "could not enqueue inbound deliveries %s; they stay pending for the sweep",
            delivery_ids,
            exc_info=True,
        )
        return False
    return True


# --- applying ----------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundResult:
    delivery_id: int
    status: str  # an InboundStatus value, or "skipped" (not claimable by us now)
    detail: str = ""


class _ClaimLost(Exception):
    pass


def _claimable(now: Any, conf: InboundConf, *, lease_cutoff: Any = None) -> Q:
    """Claimable now: ``now`` and ``lease_cutoff`` are times, or ``Param``s bound by the claim."""
    if lease_cutoff is None:
        lease_cutoff = now - dt.timedelta(seconds=conf.claim_lease_seconds)
    return Q(attempts__lt=conf.max_attempts) & (
        Q(status__in=[InboundStatus.PENDING, InboundStatus.FAILED], next_attempt_at__lte=now)
        | Q(status=InboundStatus.APPLYING, claimed_at__lt=lease_cutoff)
    )


_NOW = Param("now", InboundDelivery._meta.get_field("next_attempt_at"))  # type: ignore[arg-type]
_LEASE_CUTOFF = Param("lease_cutoff", InboundDelivery._meta.get_field("claimed_at"))  # type: ignore[arg-type]


def inbound_apply(*, delivery_id: int) -> InboundResult:
    """Claim and apply one delivery if it is due; a no-op if it is finished or someone holds it."""
    conf = get_conf()
    now = timezone.now()
    token = claim(
        InboundDelivery,
        pk=delivery_id,
        # The times as Params: the claim's statement is compiled once (gatekeeper.db.Param).
        claimable=_claimable(_NOW, conf, lease_cutoff=_LEASE_CUTOFF),
        params={"now": now, "lease_cutoff": now - dt.timedelta(seconds=conf.claim_lease_seconds)},
        status=InboundStatus.APPLYING,
    )
    if token is None:
        return InboundResult(delivery_id, "skipped")
    delivery = InboundDelivery.objects.select_related(
        "integration", "integration__service_user"
    ).get(pk=delivery_id)
    try:
        with transaction.atomic():
            status, note = _apply(delivery)
            finished = timezone.now()
            # The outcome commits with the milestone change, or neither does.
            marked = InboundDelivery.objects.filter(pk=delivery_id, claim_token=token).update(
                status=status,
                result_note=note[:MAX_NOTE_LENGTH],
                applied_at=finished if status == InboundStatus.APPLIED else None,
                next_attempt_at=None,
                claim_token=None,
                last_error="",
                updated_at=finished,
            )
            if marked != 1:
                raise _ClaimLost
    except _ClaimLost:
        logger.warning("inbound delivery %s: claim lost mid-apply; rolled back", delivery_id)
        return InboundResult(delivery_id, "skipped")
    except DomainError as exc:
        # A refusal (no permission, a conflicting state) will not change by retrying: dead at
        # once, for a person to look at and retry from the admin after fixing the cause.
        return _record_failure(delivery, token, f"{exc.title}: {exc.detail}", conf, permanent=True)
    except Exception as exc:
        logger.exception("inbound delivery %s: apply failed", delivery_id)
        return _record_failure(delivery, token, f"{type(exc).__name__}: {exc}", conf)
    return InboundResult(delivery_id, status, note)


def _apply(delivery: InboundDelivery) -> tuple[str, str]:
    """Change the linked milestone as the ticket says; returns (status, note)."""
    integration = delivery.integration
    if not integration.is_active:
        return InboundStatus.IGNORED, "the integration was deactivated before this was applied"
    try:
        event = tickets.parse(integration.kind, delivery.body)
    except tickets.Unsupported as exc:
        return InboundStatus.IGNORED, str(exc)
    system = integration.external_system
    ticket = f"{system.upper()} {event.key}"
    milestone = (
        Milestone.objects.select_related("initiative", "initiative__business_unit")
        .filter(external_system__iexact=system, external_key__iexact=event.key)
        .order_by("pk")
        .first()
    )
    if milestone is None:
        return InboundStatus.IGNORED, f"no milestone is linked to {ticket}"
    actor = integration.service_user
    # The scope is the one the API and the milestone services apply (the account's units and
    # what it created): out of it, there is nothing for this integration to change. An account
    # that left the integrations group is not "out of scope" but misconfigured: the service
    # refuses it below, and the delivery is dead-lettered for a person to fix and retry.
    if is_integration(actor) and not actor.has_perm("programs.complete_milestone", milestone):
        unit = milestone.initiative.business_unit
        return InboundStatus.IGNORED, (
            f"{ticket} is linked to a milestone of {milestone.initiative.key}, whose business "
            f"unit {unit.code} is outside this integration's scope: its service account "
            f"{actor} is not a member of it (add the unit on the integration's admin page)"
        )
    state, _ = TicketState.objects.select_for_update().get_or_create(
        integration=integration, issue_key=event.key.upper(), defaults={"last_event_ts": -1}
    )
    if event.timestamp_ms < state.last_event_ts:
        return InboundStatus.IGNORED, (
            f"out of order: older ({event.timestamp_ms}) than the last applied event for "
            f"{ticket} ({state.last_event_ts})"
        )
    state.last_event_ts = event.timestamp_ms
    state.save(update_fields=["last_event_ts", "updated_at"])
    label = f"milestone {milestone.pk} '{milestone.title}' ({milestone.initiative.key})"
    if event.change is tickets.TicketChange.DELETED:
        if milestone.external_deleted_at is not None:
            return InboundStatus.IGNORED, f"{label}: ticket deletion already flagged"
        program_services.milestone_flag_ticket_deleted(milestone=milestone, actor=actor)
        return InboundStatus.APPLIED, f"{label}: flagged, {ticket} was deleted"
    if milestone.status == MilestoneStatus.WAIVED:
        return InboundStatus.IGNORED, f"{label} is waived; a ticket does not override that"
    if event.change is tickets.TicketChange.DONE:
        if milestone.status == MilestoneStatus.DONE:
            return InboundStatus.IGNORED, f"{label} is already done"
        program_services.milestone_complete(milestone=milestone, actor=actor)
        return InboundStatus.APPLIED, f"{label} completed"
    if milestone.status == MilestoneStatus.OPEN:
        return InboundStatus.IGNORED, f"{label} is already open"
    program_services.milestone_reopen(
        milestone=milestone, actor=actor, reason=f"{ticket} was reopened"
    )
    return InboundStatus.APPLIED, f"{label} reopened"


def _record_failure(
    delivery: InboundDelivery,
    token: uuid.UUID,
    message: str,
    conf: InboundConf,
    *,
    permanent: bool = False,
) -> InboundResult:
    finished = timezone.now()
    error = f"attempt {delivery.attempts}: {message}"[:MAX_ERROR_LENGTH]
    fields: dict[str, Any] = {"claim_token": None, "last_error": error, "updated_at": finished}
    if permanent or delivery.attempts >= conf.max_attempts:
        fields.update(status=InboundStatus.DEAD, next_attempt_at=None)
        logger.warning("inbound delivery %s dead-lettered: %s", delivery.pk, error)
    else:
        delay = backoff_seconds(delivery.attempts, conf=conf)
        fields.update(
            status=InboundStatus.FAILED, next_attempt_at=finished + dt.timedelta(seconds=delay)
        )
    InboundDelivery.objects.filter(pk=delivery.pk, claim_token=token).update(**fields)
    return InboundResult(delivery.pk, fields["status"], error)


# --- the sweep and the admin ---------------------------------------------------------------


def inbound_due(*, now: dt.datetime | None = None) -> list[int]:
    """Ids of unfinished deliveries to (re)apply now, oldest due first."""
    conf = get_conf()
    now = now or timezone.now()
    grace_cutoff = now - dt.timedelta(seconds=conf.redispatch_grace_seconds)
    # Fresh rows are left to their own on-commit task for a grace period; retries and stale
    # claims are the sweep's alone, since nothing else re-queues them.
    fresh_or_retry = Q(attempts__gt=0) | Q(next_attempt_at__lte=grace_cutoff)
    due = InboundDelivery.objects.filter(
        _claimable(now, conf) & (Q(status=InboundStatus.APPLYING) | fresh_or_retry)
    ).order_by("next_attempt_at", "id")
    return list(due.values_list("id", flat=True)[: conf.redispatch_batch_size])


def inbound_abandon_exhausted(*, now: dt.datetime | None = None) -> int:
    """Dead-letter deliveries whose worker died during their last allowed attempt."""
    conf = get_conf()
    now = now or timezone.now()
    return InboundDelivery.objects.filter(
        status=InboundStatus.APPLYING,
        claimed_at__lt=now - dt.timedelta(seconds=conf.claim_lease_seconds),
        attempts__gte=conf.max_attempts,
    ).update(
        status=InboundStatus.DEAD,
        next_attempt_at=None,
        claim_token=None,
        last_error="the worker was lost during the last attempt",
        updated_at=now,
    )


def inbound_redispatch(*, inline: bool = False, expires: float | None = None) -> int:
    """Hand out everything due: queue it (default) or apply it here (``inline``)."""
    inbound_abandon_exhausted()
    ids = inbound_due()
    if inline:
        for delivery_id in ids:
            inbound_apply(delivery_id=delivery_id)
    else:
        enqueue_apply(ids, expires=expires)
    return len(ids)


def inbound_delivery_retry(*, delivery_id: int) -> bool:
    """Give a dead or failed delivery a fresh set of attempts now (admin action)."""
    now = timezone.now()
    with transaction.atomic():
        changed = InboundDelivery.objects.filter(
            pk=delivery_id, status__in=[InboundStatus.DEAD, InboundStatus.FAILED]
        ).update(
            status=InboundStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            claimed_at=None,
            claim_token=None,
            updated_at=now,
        )
        if changed:
            transaction.on_commit(lambda: enqueue_apply([delivery_id]))
    return changed == 1


def integration_rotate_secret(*, integration: Integration) -> str:
    """Replace the signing secret; returns the new one, the only time it is shown."""
    secret = generate_secret()
    now = timezone.now()
    Integration.objects.filter(pk=integration.pk).update(
        secret=secret, secret_rotated_at=now, updated_at=now
    )
    integration.secret = secret
    integration.secret_rotated_at = now
    return secret
