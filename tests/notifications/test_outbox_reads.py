"""What the outbox reads to write deliveries: the endpoint list kept per process, and recipients'
user rows handed over by the caller.

The endpoint list is cached under the fingerprint of the active set that each event's INSERT
returns, so every change to the endpoints (through a service, an ``update()`` that fires no
signal, another process) is seen by the next event, while an unchanged set costs no read.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from notifications import services
from notifications.models import Channel, Delivery, WebhookEndpoint
from notifications.outbox import emit
from tests.factories import UserFactory
from tests.notifications.conftest import payload_with

pytestmark = pytest.mark.django_db


def _emit(key: str, **kwargs):
    """Emit in a transaction of its own; the event and the SQL it sent."""
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        event = emit("milestone.overdue", payload_with(**kwargs), key=key)
    return event, [q["sql"] for q in captured.captured_queries]


def _statements(sql: list[str]) -> list[str]:
    """What the emit sent, less the transaction's own bookkeeping."""
    return [q for q in sql if not q.startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"))]


def _endpoint_reads(sql: list[str]) -> list[str]:
    return [q for q in sql if q.startswith("SELECT") and "notifications_webhookendpoint" in q]


def _hooked(event) -> set[int]:
    return set(
        Delivery.objects.filter(event=event, channel=Channel.WEBHOOK).values_list(
            "endpoint_id", flat=True
        )
    )


def test_an_unchanged_endpoint_set_is_not_read_again(endpoint):
    first, _ = _emit("a")
    second, sql = _emit("b")
    assert _hooked(first) == _hooked(second) == {endpoint.pk}
    assert _endpoint_reads(sql) == []


def test_with_the_set_unchanged_the_event_and_its_deliveries_are_one_statement(endpoint):
    _emit("warm")
    event, sql = _emit("one", recipients=[{"email": "a@example.com"}, {"email": "b@example.com"}])
    statements = _statements(sql)
    assert len(statements) == 1
    assert statements[0].startswith("WITH")
    rows = list(Delivery.objects.filter(event=event).order_by("id"))
    # Written in the order worked out: the people, then the endpoint (dispatch follows ids).
    assert [(d.channel, d.recipient_email, d.endpoint_id) for d in rows] == [
        (Channel.EMAIL, "a@example.com", None),
        (Channel.EMAIL, "b@example.com", None),
        (Channel.WEBHOOK, "", endpoint.pk),
    ]
    assert all(d.status == "pending" and d.attempts == 0 and d.next_attempt_at for d in rows)


def test_a_key_emitted_before_writes_nothing_in_that_statement(endpoint):
    _emit("warm")
    first, _ = _emit("twice")
    again, sql = _emit("twice")
    assert again is None
    assert len(_statements(sql)) == 1
    assert _hooked(first) == {endpoint.pk}
    assert Delivery.objects.filter(event=first).count() == 1


def test_an_endpoint_disabled_stops_receiving_at_the_next_event(endpoint):
    _emit("warm")
    services.endpoint_disable(endpoint_id=endpoint.pk, reason="answered 410 Gone")
    event, _ = _emit("after")
    assert _hooked(event) == set()


def test_a_change_made_without_signals_is_seen_too(endpoint):
    """A shell's ``update()``, or another process: nothing tells this process, the database does."""
    _emit("warm")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(event_types=["review.*"])
    narrowed, _ = _emit("narrowed")
    assert _hooked(narrowed) == set()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(event_types=[], is_active=False)
    off, _ = _emit("off")
    assert _hooked(off) == set()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=True)
    back, _ = _emit("back")
    assert _hooked(back) == {endpoint.pk}


def test_an_endpoint_deleted_or_added_is_seen_at_the_next_event(endpoint):
    _emit("warm")
    added = WebhookEndpoint.objects.create(name="added", url="https://hooks.example.com/2")
    with_added, _ = _emit("added")
    assert _hooked(with_added) == {endpoint.pk, added.pk}
    endpoint.delete()
    # No delivery points at the deleted row (its foreign key would fail the commit).
    without, _ = _emit("deleted")
    assert _hooked(without) == {added.pk}


def test_re_enabling_an_endpoint_restores_its_deliveries(endpoint):
    _emit("warm")
    services.endpoint_disable(endpoint_id=endpoint.pk, reason="maintenance")
    _emit("while-off")
    services.endpoint_enable(endpoint_id=endpoint.pk)
    event, _ = _emit("on-again")
    assert _hooked(event) == {endpoint.pk}


def test_recipients_handed_over_are_not_read_again():
    owner = UserFactory(email="owner@example.com")
    left = UserFactory(is_active=False, email="left@example.com")
    other = UserFactory(email="other@example.com")
    recipients = [{"user_id": u.pk, "email": u.email} for u in (owner, left, other)]
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        event = emit(
            "milestone.overdue",
            payload_with(recipients=recipients),
            key="people",
            users=[owner, left],
        )
    user_reads = [
        q["sql"] for q in captured.captured_queries if q["sql"].startswith('SELECT "auth_user"')
    ]
    # Only the one not handed over is read.
    assert len(user_reads) == 1
    assert f"IN ({other.pk})" in user_reads[0]
    emailed = set(
        Delivery.objects.filter(event=event, channel=Channel.EMAIL).values_list(
            "recipient_email", flat=True
        )
    )
    # A handed-over inactive user still gets nothing.
    assert emailed == {"owner@example.com", "other@example.com"}
