"""The one entry point through which other apps emit side effects (DESIGN.md §2 Outbox).

Contract for callers: ``emit(type, payload, key=...)`` inside the transaction of the change. The
payload is free-form JSON; these keys are read:

- ``recipients``: ``[{"user_id": int?, "email": str?, "role": str?}, ...]``. Each recipient with
  an e-mail (explicit, else the user's) gets one e-mail; each active user gets one in-app
  notification. Inactive users get nothing.
- ``title``, ``summary`` (or ``body``), ``admin_url`` (a site path such as
  ``/admin/gates/approval/7/change/``): what the message says and where to act
  (``notifications.messages``).

Every active ``WebhookEndpoint`` subscribed to the type also gets one delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from gatekeeper import metrics
from gatekeeper.logs import bind_event
from notifications.models import Channel, Delivery, Event, WebhookEndpoint, event_types_problem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxEvent:
    """One event to record, as the emitting apps' ``events.py`` builders describe it: its type,
    its payload (``title``, ``summary``, ``recipients`` …) and its idempotency key."""

    type: str
    payload: dict[str, Any]
    key: str

    def emit(self) -> Event | None:
        """Record it in the caller's transaction (see ``emit``)."""
        return emit(self.type, self.payload, key=self.key)


def emit(type: str, payload: dict[str, Any], *, key: str) -> Event | None:
    """Record an event and its deliveries in the caller's transaction; dispatch them on commit.

    Returns None if ``key`` was already emitted (nothing new is created or sent). Must run inside
    the transaction of the change it reports, so a rollback takes the event too.
    """
    bind_event(type, payload, event_key=key)
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("notifications.outbox.emit must be called inside transaction.atomic()")
    try:
        with transaction.atomic():
            event = Event.objects.create(type=type, key=key, payload=payload)
    except IntegrityError:
        return None
    deliveries = deliveries_create(event)
    logger.info("event emitted", extra={"deliveries": len(deliveries)})
    transaction.on_commit(lambda: metrics.observe_event(type, payload))
    ids = [d.pk for d in deliveries]
    if ids:
        transaction.on_commit(lambda: enqueue_dispatch(ids))
    return event


def _recipient_list(payload: dict[str, Any]) -> list[dict[str, Any]]:
    raw = payload.get("recipients") or []
    if not isinstance(raw, list):
        raise TypeError("payload['recipients'] must be a list of {'user_id', 'email', 'role'}")
    return [r for r in raw if isinstance(r, dict)]


def deliveries_create(event: Event) -> list[Delivery]:
    """One delivery per distinct e-mail address, per active recipient user, per endpoint."""
    recipients = _recipient_list(event.payload)
    user_ids = {r["user_id"] for r in recipients if isinstance(r.get("user_id"), int)}
    users = {u.pk: u for u in get_user_model()._default_manager.filter(pk__in=user_ids)}
    now = timezone.now()
    rows: list[Delivery] = []
    seen_emails: set[str] = set()
    seen_users: set[int] = set()
    for recipient in recipients:
        user = users.get(recipient.get("user_id"))  # type: ignore[arg-type]
        if user is not None and not user.is_active:
            continue  # someone who left keeps no inbox and gets no mail
        address = str(recipient.get("email") or getattr(user, "email", "") or "").strip()
        if address and address.lower() not in seen_emails:
            seen_emails.add(address.lower())
            rows.append(
                Delivery(
                    event=event,
                    channel=Channel.EMAIL,
                    recipient_user=user,
                    recipient_email=address,
                    next_attempt_at=now,
                )
            )
        if user is not None and user.pk not in seen_users:
            seen_users.add(user.pk)
            rows.append(
                Delivery(
                    event=event, channel=Channel.IN_APP, recipient_user=user, next_attempt_at=now
                )
            )
    for endpoint in _subscribed_endpoints(event.type):
        rows.append(
            Delivery(event=event, channel=Channel.WEBHOOK, endpoint=endpoint, next_attempt_at=now)
        )
    return Delivery.objects.bulk_create(rows)


def _subscribed_endpoints(event_type: str) -> Iterable[WebhookEndpoint]:
    # Filtered in Python: JSON containment is not portable to SQLite (the embedded default),
    # and the endpoint table is small.
    subscribed = []
    for endpoint in WebhookEndpoint.objects.filter(is_active=True):
        problem = event_types_problem(endpoint.event_types)
        if problem is not None:
            # emit runs inside every service's transaction: one endpoint saved with bad JSON
            # (a shell, a bulk update) must not make every write in the app fail. It gets
            # nothing until fixed; the log says why.
            logger.error(
                "webhook endpoint %s (%s) skipped: event_types %s", endpoint.pk, endpoint, problem
            )
            continue
        if endpoint.subscribes_to(event_type):
            subscribed.append(endpoint)
    return subscribed


def enqueue_dispatch(delivery_ids: list[int], *, expires: float | None = None) -> bool:
    """Queue one dispatch message per delivery; False if the broker could not be reached.

    Runs after commit, so it must never raise into the caller: the change is already saved and
    its deliveries are pending in the database, where the redispatch sweep will find them.
    """
    # Imported here: tasks import services, which import this module.
    from notifications.tasks import dispatch

    try:
        for delivery_id in delivery_ids:
            dispatch.apply_async(args=[[delivery_id]], expires=expires)
    except Exception:  # kombu/redis raise several types for an unreachable broker
        logger.warning(
            "could not enqueue dispatch of deliveries %s; they stay pending for the "
            "redispatch sweep",
            delivery_ids,
            exc_info=True,
        )
        return False
    return True
