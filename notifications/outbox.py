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

Two reads are spared on the hot path. The caller may hand over the recipients' user rows it
already read in its transaction (``users``); only the others are looked up. The active endpoints
are kept per process, keyed by a fingerprint of the active set (ids and subscriptions) that the
event's own INSERT returns: a cached list is used only while it is exactly the set that statement
saw, so an endpoint deactivated, deleted, added or re-subscribed anywhere (another process, a
shell ``update()``) is taken into account at the next event, with no time to live and no signal
to miss. (PostgreSQL; on other databases the endpoints are read for every delivery write.)

A service that emits several events in one change (a deciding approval: the approval, the stage
move, the review's decision) opens ``batch()`` inside its transaction, so all of them are recorded
and their deliveries resolved and written together when it closes: one insert of the events, one
look-up of the recipients, one of the endpoints and one insert of the deliveries, instead of three
of each. A sweep that emits a chunk's worth of alerts at once calls ``emit_all``, which also
records the events themselves in one insert.
"""

from __future__ import annotations

import hashlib
import logging
import uuid as uuid_module
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from gatekeeper import metrics
from gatekeeper.db import insert_ignoring_conflicts, mark_saved
from gatekeeper.logs import bind_event
from notifications import audience
from notifications.models import (
    Channel,
    Delivery,
    DeliveryStatus,
    Event,
    WebhookEndpoint,
    dispatched_with,
    event_types_problem,
)
from notifications.publisher import DISPATCH_GROUP_SIZE as DISPATCH_GROUP_SIZE
from notifications.publisher import Group, Groups, merged, publish_after_commit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxEvent:
    """One event to record, as the emitting apps' ``events.py`` builders describe it: its type,
    its payload (``title``, ``summary``, ``recipients`` …) and its idempotency key."""

    type: str
    payload: dict[str, Any]
    key: str
    # The user rows behind ``payload["recipients"]`` that the builder had at hand (see ``emit``).
    users: Sequence[Any] = field(default=(), compare=False, repr=False)

    def emit(self) -> Event | None:
        """Record it in the caller's transaction (see ``emit``)."""
        return emit(self.type, self.payload, key=self.key, users=self.users)


def emit(
    type: str, payload: dict[str, Any], *, key: str, users: Sequence[Any] = ()
) -> Event | None:
    """Record an event and its deliveries in the caller's transaction; dispatch them on commit.

    Returns None if ``key`` was already emitted (nothing new is created or sent). Must run inside
    the transaction of the change it reports, so a rollback takes the event too. Inside a
    ``batch()`` the event and its deliveries are written when the batch closes, still in that
    transaction: the event returned is saved then, and None means its key was already emitted in
    the batch (a key recorded by an earlier transaction is found, and skipped, at the close).

    ``users``: recipients' user rows the caller read in this transaction (e.g. the people joined
    to the row it locked); their ``is_active`` and ``email`` are taken as they are, and only the
    recipients not among them are read.
    """
    connection = _connection()
    if not connection.in_atomic_block:
        raise RuntimeError("notifications.outbox.emit must be called inside transaction.atomic()")
    known = {u.pk: u for u in users if u is not None}
    pending = _held_by_batch(connection)
    if pending is not None:
        if key in pending.keys:
            return None
        pending.keys.add(key)
        event = Event(type=type, key=key, payload=payload)
        pending.queued.append(event)
        pending.users.update(known)
        return event
    bind_event(type, payload, event_key=key)
    recorded = _record_and_deliver(connection, [Event(type=type, key=key, payload=payload)], known)
    return recorded[0] if recorded else None


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
    rows = [Event(type=e.type, key=e.key, payload=e.payload) for e in events]
    pending = _held_by_batch(connection)
    if pending is None:
        known = {u.pk: u for e in events for u in e.users if u is not None}
        return _record_and_deliver(connection, rows, known)
    recorded, endpoints_version = _record(connection, rows)
    if not recorded:
        return []
    wanted = {event.key for event in recorded}
    pending.events.extend(recorded)
    pending.users.update(
        (u.pk, u) for e in events if e.key in wanted for u in e.users if u is not None
    )
    pending.endpoints_version = endpoints_version
    return recorded


def _record(connection: BaseDatabaseWrapper, rows: list[Event]) -> tuple[list[Event], str | None]:
    """Insert the events whose key is new, in one statement (``_insert_all_once``); those rows,
    saved, in the given order, with the endpoints' fingerprint that statement saw. Each is
    logged, and counted in the metrics once the transaction commits."""
    inserted, endpoints_version = _insert_all_once(connection, rows)
    return _recorded(connection, rows, inserted), endpoints_version


def _recorded(
    connection: BaseDatabaseWrapper, rows: list[Event], inserted: dict[str, Event]
) -> list[Event]:
    """The rows ``inserted`` holds (by key), in the given order; each logged, and counted in the
    metrics once the transaction commits."""
    recorded: list[Event] = []
    for row in rows:
        if inserted.get(row.key) is not row:
            continue  # its key was recorded before, or given twice: only the first one is kept
        bind_event(row.type, row.payload, event_key=row.key)
        logger.info("event emitted")
        recorded.append(row)
    if recorded:

        def observe() -> None:
            for event in recorded:
                metrics.observe_event(event.type, event.payload)

        transaction.on_commit(observe, using=connection.alias)
    return recorded


def _held_by_batch(connection: BaseDatabaseWrapper) -> _Batch | None:
    """The open ``batch()`` if an event emitted now belongs to it: only one emitted at the
    batch's own savepoint level does, see ``_Batch.savepoints``."""
    pending = _batch.get()
    if pending is not None and pending.savepoints == _savepoints(connection):
        return pending
    return None


@dataclass
class _Batch:
    # The savepoints open when the batch began. Only an event emitted at that same level is held
    # back: one emitted inside a later savepoint gets its deliveries at once, so that rolling
    # back to that savepoint takes them along with the event.
    savepoints: list[str]
    # Emitted with ``emit`` and not yet inserted; their keys, so a key given twice is held once.
    queued: list[Event] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    # Recorded (by ``emit_all``, or from ``queued`` at the close), waiting for their deliveries.
    events: list[Event] = field(default_factory=list)
    users: dict[int, Any] = field(default_factory=dict)
    # As the latest event's insert saw the endpoints: the most recent of the batch's statements.
    endpoints_version: str | None = None


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
    if pending.queued and not pending.events:
        _record_and_deliver(connection, pending.queued, pending.users)
        return
    if pending.queued:
        recorded, endpoints_version = _record(connection, pending.queued)
        pending.events.extend(recorded)
        if recorded:
            pending.endpoints_version = endpoints_version
    if pending.events:
        _deliver(pending.events, pending.users, pending.endpoints_version)


def _connection() -> BaseDatabaseWrapper:
    return connections[router.db_for_write(Event)]


def _savepoints(connection: BaseDatabaseWrapper) -> list[str]:
    # None stands for an atomic block opened with savepoint=False: no point to roll back to.
    return [sid for sid in connection.savepoint_ids if sid is not None]


def _insert_all_once(
    connection: BaseDatabaseWrapper, rows: Sequence[Event]
) -> tuple[dict[str, Event], str | None]:
    """Insert each unsaved event row unless its key exists, all in one statement; the rows
    inserted (now saved), by key (of a key given twice, the first row), and the fingerprint of
    the active endpoints as that statement saw them (None if nothing was inserted or the
    database cannot say).

    ON CONFLICT instead of catching the IntegrityError: a duplicate is a no-op, not an error
    that would abort the caller's transaction, so no savepoint has to be set and released
    around every emit. (PostgreSQL and SQLite both speak this.) Four parameters per event:
    callers pass a sweep's chunk, not thousands.
    """
    now = timezone.now()
    for row in rows:
        row.created_at = now
    returned = insert_ignoring_conflicts(
        rows,
        fields=("type", "key", "payload", "created_at"),
        conflict="key",
        returning=("id", "key"),
        returning_sql=_endpoints_version_sql(connection),
    )
    ids = {key: pk for pk, key, _ in returned}
    endpoints_version = returned[0][2] if returned else None
    return _saved_by_key(rows, ids, connection.alias), endpoints_version


def _saved_by_key(rows: Sequence[Event], ids: dict[str, int], alias: str) -> dict[str, Event]:
    """The rows a statement inserted, given the ids it returned by key, marked saved; of a key
    given twice, the first row."""
    inserted: dict[str, Event] = {}
    for row in rows:
        if row.key in ids and row.key not in inserted:
            mark_saved(row, ids[row.key], alias)
            inserted[row.key] = row
    return inserted


def _record_and_deliver(
    connection: BaseDatabaseWrapper, rows: list[Event], users: dict[int, Any]
) -> list[Event]:
    """Record the events whose key is new and write their deliveries, dispatched on commit; the
    events recorded, in the given order (of a key given twice, the first row).

    On PostgreSQL, once this process has read the endpoints, one statement does both: it
    inserts the events and, for the events it inserted, their deliveries as worked out here with
    the cached endpoint set. The webhook deliveries go in only if that set is still the one the
    statement sees (its fingerprint, as in ``_insert_all_once``); if it changed, they are worked
    out again from a fresh read and written by a second statement. Elsewhere (SQLite, a
    process's first event) the events are recorded, then their deliveries written.
    """
    cached = _endpoints_cache
    if connection.vendor != "postgresql" or cached is None:
        recorded, endpoints_version = _record(connection, rows)
        if recorded:
            _deliver(recorded, users, endpoints_version)
        return recorded
    firsts: dict[str, Event] = {}
    for row in rows:
        firsts.setdefault(row.key, row)
    events = list(firsts.values())
    now = timezone.now()
    for event in events:
        event.created_at = now
    planned = _delivery_rows(events, users, cached.endpoints)
    ids, endpoints_version, delivery_ids = _insert_with_deliveries(
        connection, events, planned, cached.version, now
    )
    recorded = _recorded(connection, rows, _saved_by_key(events, ids, connection.alias))
    written: list[Planned | Delivery] = []
    for planned_row in planned:
        pk = delivery_ids.get(planned_row.uuid)
        if pk is not None:
            planned_row.pk = pk
            written.append(planned_row)
    if recorded and endpoints_version != cached.version:
        # The endpoints changed since this process read them: the statement wrote no webhook
        # delivery; write those of the set it saw.
        endpoints = tuple(_valid_endpoints(endpoints_version))
        hidden = _hidden(recorded, endpoints)
        hooks = [row for event in recorded for row in _webhook_rows(event, endpoints, hidden)]
        written.extend(_bulk_create(hooks, now))
    if recorded:
        logger.info("deliveries written", extra={"deliveries": len(written)})
    if written:
        _dispatch_on_commit(connection, written)
    return recorded


def _insert_with_deliveries(
    connection: BaseDatabaseWrapper,
    events: list[Event],
    deliveries: list[Planned],
    endpoints_version: str,
    now: Any,
) -> tuple[dict[str, int], str | None, dict[Any, int]]:
    """One statement: insert each event unless its key exists, and the deliveries of the events
    it inserted, webhook ones only while the active endpoints' fingerprint is
    ``endpoints_version``. Returns the new events' ids by key, the fingerprint the statement saw
    (None if it inserted no event) and the new deliveries' ids by uuid.

    The deliveries are inserted in the given order, so their ids follow it (dispatch sends in
    id order). Every value is a parameter; names come from the models.
    """
    quote = connection.ops.quote_name

    def columns(model: Any, *names: str) -> str:
        return ", ".join(quote(model._meta.get_field(name).column) for name in names)

    by_name = {f.name: f for f in Event._meta.concrete_fields}
    written = [by_name[name] for name in ("type", "key", "payload", "created_at")]
    params: list[Any] = [
        f.get_db_prep_save(getattr(event, f.attname), connection)
        for event in events
        for f in written
    ]
    ev_id, ev_key = columns(Event, "id"), columns(Event, "key")
    # In the order of the SELECT below; the columns left out take their defaults (NULL).
    delivery_columns = (
        columns(
            Delivery, "event", "channel", "recipient_user", "recipient_email", "endpoint", "uuid"
        )
        + ", "
        + columns(Delivery, "status", "attempts", "next_attempt_at", "sweep_queued", "last_error")
        + ", "
        + columns(Delivery, "created_at", "updated_at")
    )
    sql = f"""WITH seen AS (SELECT {_endpoints_version_sql(connection)} AS version),
        ev AS (
            INSERT INTO {quote(Event._meta.db_table)} ({columns(Event, *(f.name for f in written))})
            VALUES {", ".join(["(%s, %s, %s, %s)"] * len(events))}
            ON CONFLICT ({ev_key}) DO NOTHING
            RETURNING {ev_id} AS id, {ev_key} AS key
        ),
        dv AS (
            INSERT INTO {quote(Delivery._meta.db_table)} ({delivery_columns})
            SELECT ev.id, d.channel, d.user_id, d.email, d.endpoint_id, d.uuid,
                   %s, 0, %s, false, '', %s, %s
            FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::bigint[],
                        %s::uuid[]) WITH ORDINALITY
                 AS d(key, channel, user_id, email, endpoint_id, uuid, n)
            JOIN ev ON ev.key = d.key
            WHERE d.endpoint_id IS NULL OR (SELECT version FROM seen) = %s
            ORDER BY d.n
            RETURNING {columns(Delivery, "id")} AS id, {columns(Delivery, "uuid")} AS uuid
        )
        SELECT ev.key, ev.id, (SELECT version FROM seen), NULL::uuid FROM ev
        UNION ALL
        SELECT NULL, dv.id, NULL, dv.uuid FROM dv
    """  # noqa: S608 -- names from the models, values as parameters
    params += [DeliveryStatus.PENDING, now, now, now]
    params += [
        [d.event.key for d in deliveries],
        [d.channel for d in deliveries],
        [d.recipient_user.pk if d.recipient_user is not None else None for d in deliveries],
        [d.recipient_email for d in deliveries],
        [d.endpoint_id for d in deliveries],
        [d.uuid for d in deliveries],
        endpoints_version,
    ]
    ids: dict[str, int] = {}
    seen: str | None = None
    delivery_ids: dict[Any, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for key, pk, version, delivery_uuid in cursor.fetchall():
            if key is None:
                delivery_ids[delivery_uuid] = pk
            else:
                ids[key] = pk
                seen = version
    return ids, seen, delivery_ids


def _deliver(events: list[Event], users: dict[int, Any], endpoints_version: str | None) -> None:
    deliveries = _deliveries_for(events, users, endpoints_version)
    logger.info("deliveries written", extra={"deliveries": len(deliveries)})
    if deliveries:
        _dispatch_on_commit(_connection(), deliveries)


@dataclass
class _Dispatch:
    """The dispatch messages of one transaction's deliveries: every ``_deliver`` in it adds its
    own, and they are published together once it commits.

    People's deliveries (e-mails, in-app notes: local and quick) travel together; webhook
    deliveries travel per endpoint, so a slow or dead receiver holds up only its own deliveries,
    never another endpoint's or anyone's mail. A transaction that emits many events (a sweep's
    chunk, a service emitting in a loop) sends each endpoint its deliveries in a few messages of
    up to ``DISPATCH_GROUP_SIZE``, claimed together and sent in the order they were written,
    instead of one message each.
    """

    # ``connection.run_on_commit`` when it began: Django replaces that list when the
    # transaction ends and when a savepoint is rolled back, so it tells whether this is still
    # the same stretch of the same transaction.
    hooks: list[Any]
    # The savepoints open when its on-commit callback was registered: the callback survives
    # unless one of them is rolled back (``savepoint_rollback`` drops the callbacks registered
    # inside it), so it may carry the deliveries of any block nested inside them.
    savepoints: set[str | None]

    deliveries: list[tuple[int, int | None]] = field(default_factory=list)
    published: bool = False

    def add(self, deliveries: Sequence[Planned | Delivery]) -> None:
        self.deliveries.extend(
            (d.pk, dispatched_with(d.channel, d.endpoint_id))
            for d in deliveries
            if d.pk is not None  # always, once written: only written ones come here
        )

    def publish(self) -> None:
        if self.published:
            return
        self.published = True
        groups = dispatch_groups(self.deliveries)
        if groups:
            publish_after_commit(groups)


def dispatch_groups(deliveries: Iterable[tuple[int, int | None]]) -> Groups:
    """Delivery ids, each with its webhook endpoint's id (None for a person's delivery), as
    dispatch messages: people's together, each endpoint's apart, in the given order, at most
    ``DISPATCH_GROUP_SIZE`` per message; each with the endpoint it is for (the publisher
    merges a busy process's waiting commits by it)."""
    return merged(Group(endpoint_id, [delivery_id]) for delivery_id, endpoint_id in deliveries)


# The gathering _Dispatch of each connection (connections are per thread).
_dispatching: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _Dispatch] = (
    weakref.WeakKeyDictionary()
)


def _dispatch_on_commit(
    connection: BaseDatabaseWrapper, deliveries: Sequence[Planned | Delivery]
) -> None:
    """Have ``deliveries`` dispatched when the transaction commits, in the messages of the
    transaction's ``_Dispatch``; one on-commit callback per ``_Dispatch``.

    Deliveries join the open one only when its callback runs whenever theirs would: same
    transaction, no savepoint rolled back since it began (``hooks``), and written inside every
    savepoint its callback was registered in. Otherwise a new one starts, with its own callback.
    Deliveries written inside a savepoint that is later rolled back may still ride along in a
    message; their rows never existed, so the claim finds nothing to send.
    """
    savepoints: set[str | None] = set(connection.savepoint_ids)
    dispatch = _dispatching.get(connection)
    if (
        dispatch is None
        or dispatch.published
        or dispatch.hooks is not connection.run_on_commit
        or not dispatch.savepoints <= savepoints
    ):
        dispatch = _Dispatch(hooks=connection.run_on_commit, savepoints=savepoints)
        _dispatching[connection] = dispatch
        transaction.on_commit(dispatch.publish, using=connection.alias)
    dispatch.add(deliveries)


def _recipient_list(payload: dict[str, Any]) -> list[dict[str, Any]]:
    raw = payload.get("recipients") or []
    if not isinstance(raw, list):
        raise TypeError("payload['recipients'] must be a list of {'user_id', 'email', 'role'}")
    return [r for r in raw if isinstance(r, dict)]


def deliveries_create(event: Event) -> list[Delivery]:
    """One delivery per distinct e-mail address, per active recipient user, per endpoint."""
    return _deliveries_for([event], {}, None)


def _deliveries_for(
    events: list[Event], known_users: dict[int, Any], endpoints_version: str | None
) -> list[Delivery]:
    """The deliveries of ``events``, with at most one query for the recipient users the caller
    did not hand over, one for the webhook endpoints unless the cached set is current, and one
    insert, however many events and recipients there are."""
    rows = _delivery_rows(events, known_users, _valid_endpoints(endpoints_version))
    return _bulk_create(rows, timezone.now())


@dataclass(slots=True)
class Planned:
    """A delivery to write: what the outbox works out per event and recipient. Plain data, not
    a model instance: an event with many recipients plans many, and building each as a
    ``Delivery`` (every field's default, the related objects' descriptors) cost more CPU than
    the statement that writes them all. ``pk`` is set once it is written."""

    event: Event
    channel: str
    recipient_user: Any = None
    recipient_email: str = ""
    endpoint_id: int | None = None
    uuid: uuid_module.UUID = field(default_factory=uuid_module.uuid4)
    pk: int | None = None

    def as_delivery(self, now: Any) -> Delivery:
        return Delivery(
            event=self.event,
            channel=self.channel,
            recipient_user=self.recipient_user,
            recipient_email=self.recipient_email,
            endpoint_id=self.endpoint_id,
            uuid=self.uuid,
            next_attempt_at=now,
        )


def _bulk_create(rows: Sequence[Planned], now: Any) -> list[Delivery]:
    return Delivery.objects.bulk_create([r.as_delivery(now) for r in rows]) if rows else []


def _delivery_rows(
    events: list[Event], known_users: dict[int, Any], endpoints: Iterable[WebhookEndpoint]
) -> list[Planned]:
    """The deliveries of ``events`` (saved or not) to write, each event's people first, then
    its endpoints; one query for the recipient users not in ``known_users``, none if all are."""
    recipients = [_recipient_list(event.payload) for event in events]
    user_ids = {
        r["user_id"] for listed in recipients for r in listed if isinstance(r.get("user_id"), int)
    }
    users = {pk: known_users[pk] for pk in user_ids & known_users.keys()}
    missing = user_ids - users.keys()
    if missing:
        users.update((u.pk, u) for u in get_user_model()._default_manager.filter(pk__in=missing))
    endpoints = tuple(endpoints)
    hidden = _hidden(events, endpoints)
    rows: list[Planned] = []
    for event, listed in zip(events, recipients, strict=True):
        rows.extend(_person_rows(event, listed, users))
        rows.extend(_webhook_rows(event, endpoints, hidden))
    return rows


def _webhook_rows(
    event: Event, endpoints: Iterable[WebhookEndpoint], hidden: set[tuple[int, int]]
) -> Iterator[Planned]:
    return (
        # By id: the cached endpoint objects are shared, never attached to a delivery.
        Planned(event, Channel.WEBHOOK, endpoint_id=endpoint.pk)
        for endpoint in endpoints
        if endpoint.subscribes_to(event.type) and (id(event), endpoint.pk) not in hidden
    )


def _hidden(events: Sequence[Event], endpoints: Sequence[WebhookEndpoint]) -> set[tuple[int, int]]:
    """(id(event), endpoint id) of each subscription whose endpoint's owner may not see the
    initiative the event is about (``notifications.audience``). One question per such owner,
    and none when every subscribed endpoint's owner sees everything (the usual case)."""
    # Worked out with the endpoints' read; an endpoint read any other way is scoped to its
    # owner, which is never wider than what that read would have said.
    scoped = [
        (endpoint, owner_id)
        for endpoint in endpoints
        if (owner_id := getattr(endpoint, "scoped_owner", endpoint.owner_id)) is not None
    ]
    if not scoped:
        return set()  # every event of a batch would otherwise be walked for nothing
    asked: dict[int, set[int]] = {}
    pairs: list[tuple[int, int, int, int]] = []
    for event in events:
        initiative_id = audience.initiative_of(event.payload)
        if initiative_id is None:
            continue
        for endpoint, owner_id in scoped:
            if not endpoint.subscribes_to(event.type):
                continue
            asked.setdefault(owner_id, set()).add(initiative_id)
            pairs.append((id(event), endpoint.pk, owner_id, initiative_id))
    if not pairs:
        return set()
    port = audience.get_port()
    seen = {owner_id: port.visible(owner_id, ids) for owner_id, ids in asked.items()}
    return {(event, ep) for event, ep, owner_id, i in pairs if i not in seen[owner_id]}


def _person_rows(
    event: Event, recipients: list[dict[str, Any]], users: dict[int, Any]
) -> Iterator[Planned]:
    seen_emails: set[str] = set()
    seen_users: set[int] = set()
    for recipient in recipients:
        user = users.get(recipient.get("user_id"))  # type: ignore[arg-type]
        if user is not None and not user.is_active:
            continue  # someone who left keeps no inbox and gets no mail
        address = str(recipient.get("email") or getattr(user, "email", "") or "").strip()
        if address and address.lower() not in seen_emails:
            seen_emails.add(address.lower())
            yield Planned(event, Channel.EMAIL, recipient_user=user, recipient_email=address)
        if user is not None and user.pk not in seen_users:
            seen_users.add(user.pk)
            yield Planned(event, Channel.IN_APP, recipient_user=user)


def _endpoints_version_sql(connection: BaseDatabaseWrapper) -> str:
    """An SQL expression: the fingerprint of the active endpoints (each one's id, subscription
    list and owner, with the owner's superuser and active flags and groups: what a delivery
    depends on, ``notifications.audience`` included), or NULL where not implemented.

    Computed by the database in the statement that uses it, so it describes the rows that
    statement saw; an md5 keeps it short however many endpoints there are.
    """
    if connection.vendor != "postgresql":
        return "NULL"
    quote = connection.ops.quote_name
    fields = {f.name: f.column for f in WebhookEndpoint._meta.concrete_fields}
    table, pk = quote(WebhookEndpoint._meta.db_table), quote(fields["id"])
    types, active = quote(fields["event_types"]), quote(fields["is_active"])
    owner = quote(fields["owner"])
    user_model = get_user_model()
    users, user_pk = quote(user_model._meta.db_table), quote(user_model._meta.pk.column)  # type: ignore[union-attr]
    superuser = quote(user_model._meta.get_field("is_superuser").column)
    user_active = quote(user_model._meta.get_field("is_active").column)
    through = user_model.groups.through._meta  # type: ignore[attr-defined]
    memberships = quote(through.db_table)
    member, group = (quote(through.get_field(name).column) for name in ("user", "group"))  # type: ignore[union-attr,arg-type]
    groups = (
        f"(SELECT string_agg(g.{group}::text, ',' ORDER BY g.{group}) FROM {memberships} g "  # noqa: S608
        f"WHERE g.{member} = u.{user_pk})"
    )
    # A person made or unmade PMO, or deactivated, changes what their endpoints are sent, so it
    # changes this.
    owned_by = (
        f"(SELECT u.{user_pk}::text || ':' || u.{superuser}::text || ':' || u.{user_active}::text "  # noqa: S608
        f"|| ':' || coalesce({groups}, '') FROM {users} u WHERE u.{user_pk} = e.{owner})"
    )
    listed = (
        f"string_agg(e.{pk}::text || '=' || e.{types}::text || '@' || coalesce({owned_by}, ''), "
        f"',' ORDER BY e.{pk})"
    )
    return f"(SELECT md5(coalesce({listed}, '')) FROM {table} e WHERE e.{active})"  # noqa: S608


# The fingerprint of no active endpoint at all: md5 of the empty aggregate.
_NO_ENDPOINTS_VERSION = hashlib.md5(b"", usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class _CachedEndpoints:
    version: str
    endpoints: tuple[WebhookEndpoint, ...]


# Per process; replaced whole (one assignment), so threads never see half of an update.
_endpoints_cache: _CachedEndpoints | None = None


def _valid_endpoints(version: str | None = None) -> Iterable[WebhookEndpoint]:
    """The active endpoints whose subscription list is valid; each event then picks its own.

    ``version``: the fingerprint of the active endpoints as the caller's statement saw them
    (``_endpoints_version_sql``); the cached list is used only when it was read at that same
    fingerprint, so it is exactly the set the database holds for this transaction.
    """
    global _endpoints_cache
    cached = _endpoints_cache
    if version is not None and cached is not None and cached.version == version:
        return cached.endpoints
    version_sql = _endpoints_version_sql(_connection())
    # Filtered in Python: JSON containment is not portable to SQLite (the embedded default),
    # and the endpoint table is small. With the rows, their set's own fingerprint from the same
    # statement: the cache is keyed by exactly what was read, even if the set changed since the
    # caller's statement.
    sees_everything = Q(owner__isnull=True) | audience.get_port().sees_everything("owner")
    rows = list(
        WebhookEndpoint.objects.filter(is_active=True).annotate(
            set_version=RawSQL(version_sql, ()),  # noqa: S611 -- no input, names from the model
            sent_everything=ExpressionWrapper(sees_everything, output_field=BooleanField()),
        )
    )
    valid = []
    for endpoint in rows:
        # Whose view limits what it is sent (see _hidden); None: nobody's.
        endpoint.scoped_owner = None if endpoint.sent_everything else endpoint.owner_id  # type: ignore[attr-defined]
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
    if version_sql != "NULL":
        read_at = getattr(rows[0], "set_version") if rows else _NO_ENDPOINTS_VERSION  # noqa: B009
        _endpoints_cache = _CachedEndpoints(read_at, tuple(valid))
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
