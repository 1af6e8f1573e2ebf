"""Sending deliveries: claim, send through the channel's transport, record the result.

At-least-once with a claim (CONVENTIONS.md §5): a delivery is sent only by the worker whose
conditional UPDATE moved it to ``sending``; the result is written only while that worker still
holds the claim (its token). A worker that dies mid-send leaves the row ``sending``; after the
lease the redispatch sweep hands it out again. Receivers dedupe on ``webhook-id``, which is the
same on every attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from gatekeeper import retry
from gatekeeper.db import Param, claim_and_read_many, finish_claim, finish_claims
from gatekeeper.logs import bind_event
from notifications.conf import DeliveryConf, get_conf
from notifications.models import (
    Channel,
    Delivery,
    DeliveryStatus,
    Notification,
    WebhookEndpoint,
    dispatched_with,
)
from notifications.outbox import dispatch_groups, emit, enqueue_dispatch
from notifications.publisher import Group, publish_after_commit
from notifications.transports import EndpointGone, TransportError, get_transport

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 2000


def backoff_seconds(attempt: int, *, conf: DeliveryConf, retry_after: float | None = None) -> float:
    """Delay before a delivery's next attempt; capped at ``retry_max_seconds`` (<= 30 min)."""
    return retry.backoff_seconds(
        attempt,
        base=conf.retry_base_seconds,
        maximum=conf.retry_max_seconds,
        retry_after=retry_after,
    )


@dataclass(frozen=True)
class DeliveryResult:
    delivery_id: int
    # "delivered", "retry", "dead", "skipped" (not claimable by us now), or "released"
    # (claimed, then given back unsent: see ``deliveries_attempt``)
    status: str
    detail: str = ""
    next_attempt_at: dt.datetime | None = None  # of a "retry"


# A group starts no new send after this long (a send may take 10 s to connect and 10 s between
# bytes); the rest go back to the queue, so the time limit never kills a group and leaves its
# unsent deliveries claimed until the lease runs out.
GROUP_SEND_BUDGET_SECONDS = 60.0


def _claimable(now: Any, conf: DeliveryConf, *, lease_cutoff: Any = None) -> Q:
    """Claimable now: ``now`` and ``lease_cutoff`` are times, or ``Param``s bound by the claim."""
    if lease_cutoff is None:
        lease_cutoff = now - dt.timedelta(seconds=conf.claim_lease_seconds)
    return Q(attempts__lt=conf.max_attempts) & (
        # A delivery the sweep queued has its next_attempt_at pushed out (so the next sweeps
        # leave it alone), but was due when queued: its message may claim it before then. A
        # retry's backoff is untouched: the claim clears the mark, a failure sets the time.
        (Q(status=DeliveryStatus.PENDING) & (Q(next_attempt_at__lte=now) | Q(sweep_queued=True)))
        | Q(status=DeliveryStatus.SENDING, claimed_at__lt=lease_cutoff)
    )


# Read with the claim, in the same statement: what every transport needs.
_CLAIM_RELATED = ("event", "endpoint", "recipient_user")
# The claim's times, bound per call into a statement compiled once (gatekeeper.db.Param).
_NOW = Param("now", Delivery._meta.get_field("next_attempt_at"))  # type: ignore[arg-type]
_LEASE_CUTOFF = Param("lease_cutoff", Delivery._meta.get_field("claimed_at"))  # type: ignore[arg-type]


def delivery_attempt(*, delivery_id: int) -> DeliveryResult:
    """Claim and send one delivery if it is due; a no-op if it is done or someone holds it."""
    return deliveries_attempt(delivery_ids=[delivery_id])[0]


def deliveries_attempt(*, delivery_ids: Sequence[int]) -> list[DeliveryResult]:
    """Claim the due ones of ``delivery_ids`` and send them, in id order (the order their
    transaction wrote them in); one result per id given, in that order.

    One statement claims them all (``claim_and_read_many``); ids that are done, not due or held
    by another worker are "skipped". Each delivery's outcome is written as soon as it is known,
    so a worker killed mid-group has made at most the send in flight without recording it: the
    sweep re-sends that one, with its webhook-id, once the lease runs out; the ones not yet
    sent wait for the lease too, unsent.

    After a failed webhook send, the endpoint's other deliveries in the group are not sent:
    they are released (pending again, the attempt they were claimed for given back) and become
    due when the failed one is, so a receiver that is down gets one request per group, not one
    per delivery, and the sweep brings them back under the usual backoff. Other endpoints' and
    people's deliveries in the group carry on. A group still sending after
    ``GROUP_SEND_BUDGET_SECONDS`` stops there and queues the rest in a new message, well inside
    the task's time limit.
    """
    conf = get_conf()
    started = time.monotonic()
    now = timezone.now()
    claimed = claim_and_read_many(
        Delivery,
        pks=delivery_ids,
        claimable=_claimable(_NOW, conf, lease_cutoff=_LEASE_CUTOFF),
        params={"now": now, "lease_cutoff": now - dt.timedelta(seconds=conf.claim_lease_seconds)},
        status=DeliveryStatus.SENDING,
        related=_CLAIM_RELATED,
        values={"sweep_queued": False},
    )
    results: dict[int, DeliveryResult] = {}
    for index, (token, delivery) in enumerate(claimed):
        if delivery.pk in results:
            continue  # released after an earlier failure to its endpoint
        if time.monotonic() - started > GROUP_SEND_BUDGET_SECONDS:
            rest = [(t, d) for t, d in claimed[index:] if d.pk not in results]
            results.update(_release(rest, until=timezone.now(), why="out of time"))
            enqueue_dispatch([[d.pk for _t, d in rest]])
            break
        result = _send(token, delivery, conf)
        results[delivery.pk] = result
        if result.status in ("retry", "dead") and delivery.channel == Channel.WEBHOOK:
            held = [
                (t, d)
                for t, d in claimed[index + 1 :]
                if d.endpoint_id == delivery.endpoint_id and d.pk not in results
            ]
            until = result.next_attempt_at or timezone.now()
            results.update(_release(held, until=until, why=f"delivery {delivery.pk} failed"))
    return [results.get(i) or DeliveryResult(i, "skipped") for i in delivery_ids]


def _release(
    claimed: Sequence[tuple[uuid.UUID, Delivery]], *, until: dt.datetime, why: str
) -> dict[int, DeliveryResult]:
    """Give claimed, unsent deliveries back: pending, due at ``until``, their attempt uncounted
    (nothing was sent). One statement per claim token (one in all on PostgreSQL)."""
    by_token: dict[uuid.UUID, list[int]] = {}
    for token, delivery in claimed:
        by_token.setdefault(token, []).append(delivery.pk)
    now = timezone.now()
    for token, ids in by_token.items():
        finish_claims(
            Delivery,
            pks=ids,
            token=token,
            status=DeliveryStatus.PENDING,
            attempts=F("attempts") - 1,
            next_attempt_at=until,
            claim_token=None,
            updated_at=now,
        )
    if claimed:
        logger.info("deliveries released unsent: %s", why, extra={"deliveries": len(claimed)})
    return {d.pk: DeliveryResult(d.pk, "released", why) for _t, d in claimed}


def _send(token: uuid.UUID, delivery: Delivery, conf: DeliveryConf) -> DeliveryResult:
    """Send one claimed delivery and record the outcome while the claim is ours."""
    event = delivery.event
    # The event's own key: the context the message was queued with is that of the last event
    # its transaction emitted, which for a sweep's chunk is another event's.
    bind_event(
        event.type,
        event.payload,
        event_key=event.key,
        delivery=delivery.pk,
        channel=delivery.channel,
    )
    try:
        status_code = get_transport(delivery.channel).send(delivery)
    except EndpointGone as exc:
        if delivery.endpoint_id is not None:
            endpoint_disable(endpoint_id=delivery.endpoint_id, reason=f"answered {exc.message}")
        return _record_failure(delivery, token, exc, conf)
    except TransportError as exc:
        return _record_failure(delivery, token, exc, conf)
    except Exception as exc:
        # A bug or an unexpected library error: retried like a transient failure so it is
        # visible in the admin and dead-lettered eventually instead of looping forever.
        logger.exception(
            "delivery %s: unexpected error in %s transport", delivery.pk, delivery.channel
        )
        return _record_failure(
            delivery, token, TransportError(f"{type(exc).__name__}: {exc}"), conf
        )
    finished = timezone.now()
    finish_claim(
        Delivery,
        pk=delivery.pk,
        token=token,
        status=DeliveryStatus.DELIVERED,
        delivered_at=finished,
        next_attempt_at=None,
        claim_token=None,
        last_error="",
        last_status_code=status_code,
        updated_at=finished,
    )
    return DeliveryResult(delivery.pk, "delivered")


def _record_failure(
    delivery: Delivery, token: uuid.UUID, exc: TransportError, conf: DeliveryConf
) -> DeliveryResult:
    finished = timezone.now()
    error = f"attempt {delivery.attempts}: {exc.message}"[:MAX_ERROR_LENGTH]
    fields: dict[str, Any] = {
        "claim_token": None,
        "last_error": error,
        "last_status_code": exc.status_code,
        "updated_at": finished,
    }
    next_attempt_at = None
    if exc.permanent or delivery.attempts >= conf.max_attempts:
        fields.update(status=DeliveryStatus.DEAD, next_attempt_at=None)
        result = "dead"
        logger.warning("delivery %s dead-lettered: %s", delivery.pk, error)
    else:
        delay = backoff_seconds(delivery.attempts, conf=conf, retry_after=exc.retry_after)
        next_attempt_at = finished + dt.timedelta(seconds=delay)
        fields.update(status=DeliveryStatus.PENDING, next_attempt_at=next_attempt_at)
        result = "retry"
    finish_claim(Delivery, pk=delivery.pk, token=token, **fields)
    return DeliveryResult(delivery.pk, result, error, next_attempt_at)


def _due(now: dt.datetime, conf: DeliveryConf) -> Q:
    grace_cutoff = now - dt.timedelta(seconds=conf.redispatch_grace_seconds)
    # Fresh deliveries (never attempted) are left to their own on-commit message for a grace
    # period; retries, stale claims and what the sweep already queued once are the sweep's
    # alone, since nothing else re-queues them.
    fresh_or_retry = Q(attempts__gt=0) | Q(sweep_queued=True) | Q(next_attempt_at__lte=grace_cutoff)
    # next_attempt_at also for claimable rows the sweep queued less than the re-queue interval
    # ago (their message is probably still waiting in the queue) and for stale claims it queued.
    return (
        _claimable(now, conf)
        & Q(next_attempt_at__lte=now)
        & (Q(status=DeliveryStatus.SENDING) | fresh_or_retry)
    )


def deliveries_due(*, now: dt.datetime | None = None, limit: int | None = None) -> list[int]:
    """Ids of undelivered deliveries that should be (re)sent now, oldest due first."""
    conf = get_conf()
    now = now or timezone.now()
    due = Delivery.objects.filter(_due(now, conf)).order_by("next_attempt_at", "id")
    return list(due.values_list("id", flat=True)[: limit or conf.redispatch_batch_size])


def deliveries_mark_queued(
    *, now: dt.datetime | None = None, limit: int | None = None
) -> list[int]:
    """``deliveries_due``, marked as queued by the sweep: their ``next_attempt_at`` is pushed
    out by the re-queue interval, so the sweeps until then skip them.

    Without it a backlog longer than a sweep interval had the same oldest ids queued again by
    every sweep while their first message still waited, and workers spent their time on claims
    already taken. A message the broker lost is made up for by the first sweep after the
    interval. Rows locked by a concurrent sweep or a claim in progress are skipped, not waited
    for: each sweep marks (and queues) its own.
    """
    return [delivery_id for delivery_id, _endpoint in _mark_queued(now=now, limit=limit)]


def _mark_queued(
    *, now: dt.datetime | None = None, limit: int | None = None
) -> list[tuple[int, int | None]]:
    """``deliveries_mark_queued``, each id with its webhook endpoint's (None for a person's)."""
    conf = get_conf()
    now = now or timezone.now()
    with transaction.atomic():
        rows = [
            (delivery_id, dispatched_with(channel, endpoint_id))
            for delivery_id, endpoint_id, channel in Delivery.objects.filter(_due(now, conf))
            .order_by("next_attempt_at", "id")
            .select_for_update(skip_locked=True)
            .values_list("id", "endpoint_id", "channel")[: limit or conf.redispatch_batch_size]
        ]
        if rows:
            Delivery.objects.filter(pk__in=[delivery_id for delivery_id, _ in rows]).update(
                sweep_queued=True,
                next_attempt_at=now + dt.timedelta(seconds=conf.redispatch_requeue_seconds),
                updated_at=now,
            )
    return rows


def deliveries_abandon_exhausted(*, now: dt.datetime | None = None) -> int:
    """Dead-letter deliveries whose worker died during their last allowed attempt."""
    conf = get_conf()
    now = now or timezone.now()
    lease_cutoff = now - dt.timedelta(seconds=conf.claim_lease_seconds)
    return Delivery.objects.filter(
        status=DeliveryStatus.SENDING,
        claimed_at__lt=lease_cutoff,
        attempts__gte=conf.max_attempts,
    ).update(
        status=DeliveryStatus.DEAD,
        next_attempt_at=None,
        claim_token=None,
        last_error="the worker was lost during the last attempt",
        updated_at=now,
    )


def redispatch(*, inline: bool = False, expires: float | None = None) -> int:
    """Hand out everything due: queue it (default) or send it here (``inline``).

    Returns how many deliveries were queued or attempted. Safe to run concurrently with
    itself and with the workers: every send goes through the claim.
    """
    deliveries_abandon_exhausted()
    if inline:
        ids = deliveries_due()
        for delivery_id in ids:
            delivery_attempt(delivery_id=delivery_id)
        return len(ids)
    queued = _mark_queued()
    # Grouped as on commit (each endpoint's deliveries apart), so a slow endpoint holds up only
    # its own sends, and one that is down gets one request per group. If the broker is down
    # they stay pending, and a sweep queues them again after the re-queue interval.
    if queued:
        enqueue_dispatch([group.ids for group in dispatch_groups(queued)], expires=expires)
    return len(queued)


def delivery_retry(*, delivery_id: int) -> bool:
    """Give a dead delivery a fresh set of attempts (admin action); False if it is not dead."""
    now = timezone.now()
    with transaction.atomic():
        changed = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.DEAD).update(
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            sweep_queued=False,
            claimed_at=None,
            claim_token=None,
            updated_at=now,
        )
        if changed:
            # As the outbox does: the publisher decides between inline and its thread, and may
            # merge it into a message for the same endpoint, so it says which endpoint.
            channel, endpoint_id = (
                Delivery.objects.filter(pk=delivery_id).values_list("channel", "endpoint_id").get()
            )
            group = Group(dispatched_with(channel, endpoint_id), [delivery_id])
            transaction.on_commit(lambda: publish_after_commit([group]))
    return changed == 1


def endpoint_disable(*, endpoint_id: int, reason: str) -> bool:
    """Stop sending to an endpoint and tell its owner; False if it was already disabled."""
    now = timezone.now()
    with transaction.atomic():
        # Conditional, so of several deliveries hitting 410 at once only one tells the owner.
        changed = WebhookEndpoint.objects.filter(pk=endpoint_id, is_active=True).update(
            is_active=False, disabled_reason=reason[:300], disabled_at=now, updated_at=now
        )
        if not changed:
            return False
        endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
        recipients = []
        if endpoint.owner_id is not None:
            recipients.append({"user_id": endpoint.owner_id, "role": "webhook_owner"})
        emit(
            "webhook.endpoint_disabled",
            {
                "endpoint": {"id": endpoint.pk, "name": endpoint.name, "url": endpoint.url},
                "reason": reason,
                "title": f"Webhook endpoint disabled: {endpoint.name}",
                "summary": (
                    f"Gatekeeper stopped sending events to {endpoint.url} because it {reason}. "
                    "Fix the receiver, then re-enable the endpoint and retry its dead deliveries."
                ),
                "admin_url": reverse(
                    "admin:notifications_webhookendpoint_change", args=[endpoint.pk]
                ),
                "recipients": recipients,
            },
            key=f"webhook.endpoint_disabled:{endpoint.pk}:{now.isoformat()}",
        )
    logger.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
    return True


def endpoint_enable(*, endpoint_id: int) -> bool:
    return (
        WebhookEndpoint.objects.filter(pk=endpoint_id, is_active=False).update(
            is_active=True, disabled_reason="", disabled_at=None, updated_at=timezone.now()
        )
        == 1
    )


def notifications_mark_read(*, user: Any, notification_ids: list[int]) -> int:
    """Mark the user's own notifications read; others' ids in the list are ignored."""
    return Notification.objects.filter(
        user_id=user.pk, pk__in=notification_ids, read_at__isnull=True
    ).update(read_at=timezone.now())
