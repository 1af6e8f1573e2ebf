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

A service that emits several events in one change (a deciding approval: the approval, the stage
move, the review's decision) opens ``batch()`` inside its transaction, so the deliveries of all of
them are resolved and written together: one look-up of the recipients, one of the endpoints and
one insert, instead of three of each. A sweep that emits a chunk's worth of alerts at once calls
``emit_all``, which also records the events themselves in one insert.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
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
    the transaction of the change it reports, so a rollback takes the event too. Inside a
    ``batch()`` the deliveries are written when the batch closes, still in that transaction.
    """
    bind_event(type, payload, event_key=key)
    connection = _connection()
    if not connection.in_atomic_block:
        raise RuntimeError("notifications.outbox.emit must be called inside transaction.atomic()")
    event = _insert_once(connection, type=type, key=key, payload=payload)
    if event is None:
        return None
    logger.info("event emitted")
    transaction.on_commit(lambda: metrics.observe_event(type, payload), using=connection.alias)
    pending = _batch.get()
    if pending is not None and pending.savepoints == _savepoints(connection):
        pending.events.append(event)
    else:
        _deliver([event])
    return event


def emit_all(events: Sequence[OutboxEvent]) -> list[Event]:
    """``emit`` for many events in one statement (a sweep's chunk): record those whose key is new
    and return them, in the given order; the others were already emitted and send nothing.

    Same contract as ``emit``: inside the change's transaction; their deliveries are written
    together at once, or when an open ``batch()`` closes.
    """
    if not events:
        return []
    connection = _connection()
    if not connection.in_atomic_block:
        raise RuntimeError(
            "notifications.outbox.emit_all must be called inside transaction.atomic()"
        )
    inserted = _insert_all_once(connection, events)
    recorded: list[Event] = []
    for outgoing in events:
        event = inserted.pop(outgoing.key, None)  # popped: a key given twice is recorded once
        if event is None:
            continue
        bind_event(outgoing.type, outgoing.payload, event_key=outgoing.key)
        logger.info("event emitted")
        recorded.append(event)
    if not recorded:
        return []

    def observe() -> None:
        for event in recorded:
            metrics.observe_event(event.type, event.payload)

    transaction.on_commit(observe, using=connection.alias)
    pending = _batch.get()
    if pending is not None and pending.savepoints == _savepoints(connection):
        pending.events.extend(recorded)
    else:
        _deliver(recorded)
    return recorded


@dataclass
class _Batch:
    # The savepoints open when the batch began. Only an event emitted at that same level is held
    # back: one emitted inside a later savepoint gets its deliveries at once, so that rolling
    # back to that savepoint takes them along with the event.
    savepoints: list[str]
    events: list[Event] = field(default_factory=list)


_batch: ContextVar[_Batch | None] = ContextVar("outbox_batch", default=None)


@contextmanager
def batch() -> Iterator[None]:
    """Hold back the deliveries of the events emitted in the block and write them together when
    it ends. Open it inside the change's ``transaction.atomic()``: an exception that leaves the
    block leaves the transaction too, and nothing is delivered. Nested batches join the outer."""
    connection = _connection()
    if not connection.in_atomic_block:
        raise RuntimeError("notifications.outbox.batch must be opened inside transaction.atomic()")
    if _batch.get() is not None:
        yield
        return
    pending = _Batch(savepoints=_savepoints(connection))
    token = _batch.set(pending)
    try:
        yield
    finally:
        _batch.reset(token)
    # Not reached when the block raised: the transaction that holds the events is rolling back.
    if pending.events:
        _deliver(pending.events)


def _connection() -> BaseDatabaseWrapper:
    return connections[router.db_for_write(Event)]


def _savepoints(connection: BaseDatabaseWrapper) -> list[str]:
    # None stands for an atomic block opened with savepoint=False: no point to roll back to.
    return [sid for sid in connection.savepoint_ids if sid is not None]


def _insert_once(
    connection: BaseDatabaseWrapper, *, type: str, key: str, payload: dict[str, Any]
) -> Event | None:
    """Insert the event unless its key exists, in one statement; None if it existed."""
    return _insert_all_once(connection, [OutboxEvent(type, payload, key)]).get(key)


def _insert_all_once(
    connection: BaseDatabaseWrapper, events: Sequence[OutboxEvent]
) -> dict[str, Event]:
    """Insert each event unless its key exists, all in one statement; the new ones by key (a key
    given twice is inserted once).

    ON CONFLICT instead of catching the IntegrityError: a duplicate is a no-op, not an error
    that would abort the caller's transaction, so no savepoint has to be set and released
    around every emit. (PostgreSQL and SQLite both speak this.) One statement's parameters are
    bounded (65,535 on PostgreSQL, four per event): callers pass a sweep's chunk, not thousands.
    """
    now = timezone.now()
    rows = [Event(type=e.type, key=e.key, payload=e.payload, created_at=now) for e in events]
    fields = {f.name: f for f in Event._meta.concrete_fields}
    written = [fields[name] for name in ("type", "key", "payload", "created_at")]
    quote = connection.ops.quote_name
    one_row = f"({', '.join(['%s'] * len(written))})"
    sql = (
        f"INSERT INTO {quote(Event._meta.db_table)} "  # noqa: S608 -- names from the model
        f"({', '.join(quote(f.column) for f in written)}) "
        f"VALUES {', '.join([one_row] * len(rows))} "
        f"ON CONFLICT ({quote(fields['key'].column)}) DO NOTHING "
        f"RETURNING {quote(fields['id'].column)}, {quote(fields['key'].column)}"
    )
    params = [
        f.get_db_prep_save(getattr(row, f.attname), connection) for row in rows for f in written
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = {key: pk for pk, key in cursor.fetchall()}
    inserted: dict[str, Event] = {}
    for row in rows:
        if row.key in ids and row.key not in inserted:
            row.pk = ids[row.key]
            row._state.adding = False
            row._state.db = connection.alias
            inserted[row.key] = row
    return inserted


def _deliver(events: list[Event]) -> None:
    deliveries = _deliveries_for(events)
    logger.info("deliveries written", extra={"deliveries": len(deliveries)})
    # People's deliveries (emails, in-app notes: local and quick) travel in one message; each
    # webhook gets its own, so a slow or dead receiver never holds up anyone's mail.
    people = [d.pk for d in deliveries if d.channel != Channel.WEBHOOK]
    groups = [people] if people else []
    groups += [[d.pk] for d in deliveries if d.channel == Channel.WEBHOOK]
    if groups:
        transaction.on_commit(lambda: enqueue_dispatch(groups), using=_connection().alias)


def _recipient_list(payload: dict[str, Any]) -> list[dict[str, Any]]:
    raw = payload.get("recipients") or []
    if not isinstance(raw, list):
        raise TypeError("payload['recipients'] must be a list of {'user_id', 'email', 'role'}")
    return [r for r in raw if isinstance(r, dict)]


def deliveries_create(event: Event) -> list[Delivery]:
    """One delivery per distinct e-mail address, per active recipient user, per endpoint."""
    return _deliveries_for([event])


def _deliveries_for(events: list[Event]) -> list[Delivery]:
    """The deliveries of ``events``, with one query for their recipient users, one for the
    webhook endpoints and one insert, however many events and recipients there are."""
    recipients = {event.pk: _recipient_list(event.payload) for event in events}
    user_ids = {
        r["user_id"]
        for listed in recipients.values()
        for r in listed
        if isinstance(r.get("user_id"), int)
    }
    users = {u.pk: u for u in get_user_model()._default_manager.filter(pk__in=user_ids)}
    endpoints = _valid_endpoints()
    now = timezone.now()
    rows: list[Delivery] = []
    for event in events:
        rows.extend(_person_rows(event, recipients[event.pk], users, now))
        rows.extend(
            Delivery(event=event, channel=Channel.WEBHOOK, endpoint=endpoint, next_attempt_at=now)
            for endpoint in endpoints
            if endpoint.subscribes_to(event.type)
        )
    return Delivery.objects.bulk_create(rows) if rows else []


def _person_rows(
    event: Event, recipients: list[dict[str, Any]], users: dict[int, Any], now: Any
) -> Iterator[Delivery]:
    seen_emails: set[str] = set()
    seen_users: set[int] = set()
    for recipient in recipients:
        user = users.get(recipient.get("user_id"))  # type: ignore[arg-type]
        if user is not None and not user.is_active:
            continue  # someone who left keeps no inbox and gets no mail
        address = str(recipient.get("email") or getattr(user, "email", "") or "").strip()
        if address and address.lower() not in seen_emails:
            seen_emails.add(address.lower())
            yield Delivery(
                event=event,
                channel=Channel.EMAIL,
                recipient_user=user,
                recipient_email=address,
                next_attempt_at=now,
            )
        if user is not None and user.pk not in seen_users:
            seen_users.add(user.pk)
            yield Delivery(
                event=event, channel=Channel.IN_APP, recipient_user=user, next_attempt_at=now
            )


def _valid_endpoints() -> Iterable[WebhookEndpoint]:
    """The active endpoints whose subscription list is valid; each event then picks its own."""
    # Filtered in Python: JSON containment is not portable to SQLite (the embedded default),
    # and the endpoint table is small.
    valid = []
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
        valid.append(endpoint)
    return valid


def enqueue_dispatch(
    delivery_ids: list[int] | list[list[int]], *, expires: float | None = None
) -> bool:
    """Queue dispatch messages: one per delivery id, or one per group when given groups of ids;
    False if the broker could not be reached.

    Runs after commit, so it must never raise into the caller: the change is already saved and
    its deliveries are pending in the database, where the redispatch sweep will find them.
    """
    # Imported here: tasks import services, which import this module.
    from notifications.tasks import dispatch

    try:
        groups = [item if isinstance(item, list) else [item] for item in delivery_ids]
        # Over one producer connection: a sweep's or a decision's messages share its set-up.
        with dispatch.app.producer_or_acquire() as producer:
            for group in groups:
                dispatch.apply_async(args=[group], expires=expires, producer=producer)
    except Exception:  # kombu/redis raise several types for an unreachable broker
        logger.warning(
            "could not enqueue dispatch of deliveries %s; they stay pending for the "
            "redispatch sweep",
            delivery_ids,
            exc_info=True,
        )
        return False
    return True
