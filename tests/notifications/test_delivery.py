"""Sending deliveries over a real HTTP receiver: signatures, retries, dead letters, claims."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import cast

import pytest
import time_machine
from django.core import mail
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from gatekeeper import db as gatekeeper_db
from notifications import services
from notifications.conf import get_conf
from notifications.models import Channel, Delivery, DeliveryStatus, Event, Notification
from notifications.outbox import emit
from notifications.services import backoff_seconds, deliveries_due, delivery_attempt, redispatch
from notifications.transports import _retry_after_seconds
from tests.concurrency import run_at_once
from tests.notifications.conftest import Reply, payload_with

pytestmark = pytest.mark.django_db

NO_GRACE = {"REDISPATCH_GRACE_SECONDS": 0}


def emit_webhook(key: str = "w1", **payload) -> Delivery:
    with transaction.atomic():
        event = emit("review.submitted", payload_with(**payload), key=key)
    assert event is not None
    return Delivery.objects.get(event=event, channel=Channel.WEBHOOK)


def refreshed(delivery: Delivery) -> Delivery:
    delivery.refresh_from_db()
    return delivery


def test_webhook_is_signed_so_standardwebhooks_verifies_it(endpoint, receiver, owner):
    delivery = emit_webhook(recipients=[{"user_id": owner.pk, "email": owner.email}])

    assert delivery_attempt(delivery_id=delivery.pk).status == "delivered"

    (request,) = receiver.requests
    assert request.headers["webhook-id"] == delivery.webhook_id
    body = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert body["type"] == "review.submitted"
    assert body["event_key"] == "w1"
    assert body["data"]["initiative"]["key"] == "AI-001"
    assert body["data"]["recipients"] == [{"user_id": owner.pk}]  # no personal addresses
    assert receiver.verify_errors == []
    assert refreshed(delivery).last_status_code == 200


def test_signature_with_another_secret_is_rejected(endpoint, receiver):
    delivery = emit_webhook()
    delivery_attempt(delivery_id=delivery.pk)
    (request,) = receiver.requests
    other = Webhook("whsec_" + "A" * 43 + "=")
    with pytest.raises(Exception, match="signature"):
        other.verify(request.body, request.headers)


def test_500_then_200_is_retried_with_the_same_webhook_id_and_delivered(endpoint, receiver):
    receiver.script = [Reply(500)]
    with time_machine.travel(timezone.now(), tick=False) as clock:
        delivery = emit_webhook()
        assert delivery_attempt(delivery_id=delivery.pk).status == "retry"
        failed = refreshed(delivery)
        assert failed.status == DeliveryStatus.PENDING
        assert "HTTP 500" in failed.last_error
        wait = (cast(dt.datetime, failed.next_attempt_at) - timezone.now()).total_seconds()
        assert 15 <= wait <= 30  # first step of 30 s, half fixed, half jitter

        assert redispatch(inline=True) == 0  # not due yet
        clock.shift(dt.timedelta(seconds=31))
        assert redispatch(inline=True) == 1

    delivered = refreshed(delivery)
    assert delivered.status == DeliveryStatus.DELIVERED
    assert delivered.attempts == 2
    assert receiver.ids_received() == [delivery.webhook_id, delivery.webhook_id]
    assert receiver.applied == {delivery.webhook_id: 1}


def test_410_disables_the_endpoint_and_tells_its_owner(endpoint, receiver, owner):
    receiver.script = [Reply(410)]
    delivery = emit_webhook()

    assert delivery_attempt(delivery_id=delivery.pk).status == "dead"

    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert "410" in endpoint.disabled_reason
    notice = Event.objects.get(type="webhook.endpoint_disabled")
    assert notice.payload["recipients"] == [{"user_id": owner.pk, "role": "webhook_owner"}]
    for d in notice.deliveries.all():
        delivery_attempt(delivery_id=d.pk)
    (message,) = mail.outbox
    assert message.to == [owner.email]
    assert endpoint.url in message.body
    assert f"/admin/notifications/webhookendpoint/{endpoint.pk}/change/" in message.body
    assert Notification.objects.filter(user=owner, event_type="webhook.endpoint_disabled").exists()
    # The disabled endpoint is out of every later event.
    with transaction.atomic():
        event = emit("review.submitted", payload_with(), key="after")
    assert not Delivery.objects.filter(event=event, channel=Channel.WEBHOOK).exists()


def test_429_retry_after_is_honoured(endpoint, receiver):
    receiver.script = [Reply(429, {"Retry-After": "600"})]
    with time_machine.travel(timezone.now(), tick=False) as clock:
        delivery = emit_webhook()
        start = timezone.now()
        delivery_attempt(delivery_id=delivery.pk)
        assert refreshed(delivery).next_attempt_at == start + dt.timedelta(seconds=600)

        clock.shift(dt.timedelta(seconds=599))
        assert redispatch(inline=True) == 0
        clock.shift(dt.timedelta(seconds=2))
        assert redispatch(inline=True) == 1
    assert refreshed(delivery).status == DeliveryStatus.DELIVERED


def test_retry_after_longer_than_the_cap_is_clamped_to_30_minutes(endpoint, receiver):
    receiver.script = [Reply(503, {"Retry-After": "86400"})]
    with time_machine.travel(timezone.now(), tick=False):
        delivery = emit_webhook()
        delivery_attempt(delivery_id=delivery.pk)
        assert refreshed(delivery).next_attempt_at == timezone.now() + dt.timedelta(minutes=30)


def test_retry_after_as_an_http_date_is_understood():
    now = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert _retry_after_seconds("Tue, 01 Jan 2030 12:02:00 GMT", now) == 120
    assert _retry_after_seconds("soon", now) is None
    assert _retry_after_seconds("45", now) == 45


def test_redirects_are_not_followed(endpoint, receiver):
    receiver.script = [Reply(302, {"Location": receiver.url + "/elsewhere"})]
    delivery = emit_webhook()

    assert delivery_attempt(delivery_id=delivery.pk).status == "dead"

    assert [r.path for r in receiver.requests] == ["/hooks"]
    assert "redirect" in refreshed(delivery).last_error
    assert refreshed(delivery).last_status_code == 302


def test_other_4xx_is_permanent_and_not_retried(endpoint, receiver):
    receiver.script = [Reply(400)]
    delivery = emit_webhook()
    assert delivery_attempt(delivery_id=delivery.pk).status == "dead"
    dead = refreshed(delivery)
    assert (dead.attempts, dead.next_attempt_at) == (1, None)
    endpoint.refresh_from_db()
    assert endpoint.is_active


def test_unreachable_endpoint_is_retried(endpoint, receiver):
    receiver.close()  # nothing listens on the port any more
    delivery = emit_webhook()
    assert delivery_attempt(delivery_id=delivery.pk).status == "retry"
    assert "ConnectionError" in refreshed(delivery).last_error


@override_settings(NOTIFICATIONS={"MAX_ATTEMPTS": 4})
def test_backoff_doubles_with_jitter_and_dead_letters_after_the_last_attempt(endpoint, receiver):
    receiver.default = Reply(503)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        delivery = emit_webhook()
        for step in (30, 60, 120):
            assert delivery_attempt(delivery_id=delivery.pk).status == "retry"
            due = cast(dt.datetime, refreshed(delivery).next_attempt_at)
            wait = (due - timezone.now()).total_seconds()
            assert step / 2 <= wait <= step
            clock.move_to(due)
        assert delivery_attempt(delivery_id=delivery.pk).status == "dead"
    dead = refreshed(delivery)
    assert (dead.status, dead.attempts, dead.next_attempt_at) == ("dead", 4, None)
    assert len(receiver.requests) == 4
    assert deliveries_due() == []


@given(attempt=st.integers(min_value=1, max_value=60), retry_after=st.none() | st.floats(0, 1e9))
def test_backoff_never_exceeds_the_cap(attempt, retry_after):
    conf = get_conf()
    delay = backoff_seconds(attempt, conf=conf, retry_after=retry_after)
    assert 0 < delay <= conf.retry_max_seconds <= 30 * 60
    if retry_after is not None:
        assert delay >= min(retry_after, conf.retry_max_seconds)


def test_a_claim_held_by_a_live_worker_is_left_alone_until_its_lease_expires(endpoint, receiver):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        delivery = emit_webhook()
        # As if a worker claimed it and then died before recording anything.
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.SENDING,
            claimed_at=timezone.now(),
            claim_token=uuid.uuid4(),
            attempts=1,
        )
        assert delivery_attempt(delivery_id=delivery.pk).status == "skipped"
        clock.shift(dt.timedelta(seconds=get_conf().claim_lease_seconds + 1))
        assert redispatch(inline=True) == 1
    taken_over = refreshed(delivery)
    assert (taken_over.status, taken_over.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert len(receiver.requests) == 1


@override_settings(NOTIFICATIONS={"MAX_ATTEMPTS": 2})
def test_a_worker_lost_on_the_last_attempt_dead_letters_the_delivery(endpoint, receiver):
    delivery = emit_webhook()
    long_ago = timezone.now() - dt.timedelta(hours=1)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENDING, claimed_at=long_ago, attempts=2
    )
    redispatch(inline=True)
    dead = refreshed(delivery)
    assert dead.status == DeliveryStatus.DEAD
    assert "worker was lost" in dead.last_error
    assert receiver.requests == []


def test_fresh_deliveries_are_left_to_their_own_message_for_the_grace_period(endpoint):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        delivery = emit_webhook()
        assert deliveries_due() == []
        clock.shift(dt.timedelta(seconds=get_conf().redispatch_grace_seconds + 1))
        assert deliveries_due() == [delivery.pk]


def test_a_delivered_delivery_is_not_sent_again(endpoint, receiver):
    delivery = emit_webhook()
    delivery_attempt(delivery_id=delivery.pk)
    assert delivery_attempt(delivery_id=delivery.pk).status == "skipped"
    assert len(receiver.requests) == 1


def test_a_deleted_delivery_is_skipped_quietly():
    assert delivery_attempt(delivery_id=987654).status == "skipped"


@pytest.mark.django_db(transaction=True)
@override_settings(NOTIFICATIONS=NO_GRACE)
def test_two_concurrent_redispatch_sweeps_deliver_each_delivery_once(endpoint, receiver):
    receiver.default = Reply(200, delay=0.02)
    deliveries = [emit_webhook(key=f"c{i}") for i in range(20)]
    results = run_at_once(lambda: redispatch(inline=True), lambda: redispatch(inline=True))
    assert all(isinstance(r, int) for r in results), results
    assert sorted(receiver.ids_received()) == sorted(d.webhook_id for d in deliveries)
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.parametrize(
    "payload",
    [
        # An initiative name with a line break ends up in the subject.
        payload_with(
            title="Approval requested: AI-001 Claims\nBcc: all@example.com",
            initiative={"id": 1, "key": "AI-001", "name": "Claims\nBcc: all@example.com"},
            recipients=[{"email": "approver@example.com"}],
        ),
        payload_with(recipients=[{"email": "approver@example.com\nBcc: all@example.com"}]),
    ],
    ids=["newline-in-subject", "newline-in-address"],
)
def test_an_email_that_cannot_be_built_fails_permanently_on_the_first_attempt(payload):
    with transaction.atomic():
        event = emit("review.submitted", payload, key="bad-header")
    delivery = Delivery.objects.get(event=event, channel=Channel.EMAIL)

    assert delivery_attempt(delivery_id=delivery.pk).status == "dead"

    dead = refreshed(delivery)
    assert (dead.status, dead.attempts, dead.next_attempt_at) == (DeliveryStatus.DEAD, 1, None)
    assert "message cannot be built" in dead.last_error
    assert mail.outbox == []
    # Nothing left for the sweep: the same content would fail the same way on every retry.
    with time_machine.travel(timezone.now() + dt.timedelta(hours=2)):
        assert delivery.pk not in deliveries_due()
        redispatch(inline=True)
    assert refreshed(delivery).attempts == 1


def test_a_webhook_delivery_is_two_queries_the_claim_with_its_read_and_the_result(
    endpoint, receiver, django_assert_num_queries
):
    delivery = emit_webhook()
    with django_assert_num_queries(2):
        assert delivery_attempt(delivery_id=delivery.pk).status == "delivered"
    delivered = refreshed(delivery)
    assert (delivered.status, delivered.attempts) == (DeliveryStatus.DELIVERED, 1)
    assert receiver.applied == {delivery.webhook_id: 1}


def test_the_claim_and_the_result_are_compiled_once_and_bound_per_delivery(
    endpoint, receiver, monkeypatch
):
    compiled = []
    compile_update = gatekeeper_db._update_sql

    def counting(*args, **kwargs):
        compiled.append(args[0])
        return compile_update(*args, **kwargs)

    monkeypatch.setattr(gatekeeper_db, "_update_sql", counting)
    monkeypatch.setattr(gatekeeper_db, "_statements", {})
    deliveries = [emit_webhook(key=f"w{i}") for i in range(3)]

    with time_machine.travel(timezone.now(), tick=False) as clock:
        for delivery in deliveries:
            assert delivery_attempt(delivery_id=delivery.pk).status == "delivered"
            clock.shift(dt.timedelta(seconds=1))

    assert compiled == [Delivery, Delivery]  # the claim, then the result; once each
    rows = [refreshed(d) for d in deliveries]
    assert [(r.status, r.attempts, r.claim_token) for r in rows] == [
        (DeliveryStatus.DELIVERED, 1, None)
    ] * 3
    # Each statement ran with its own row's values and its own time.
    assert len({r.claimed_at for r in rows}) == len({r.delivered_at for r in rows}) == 3
    assert sorted(receiver.applied) == sorted(d.webhook_id for d in deliveries)


def test_a_result_from_a_claim_that_was_taken_over_is_not_written(endpoint):
    delivery = emit_webhook()
    conf = get_conf()
    claimed = gatekeeper_db.claim_and_read(
        Delivery,
        pk=delivery.pk,
        claimable=services._claimable(timezone.now(), conf),
        status=DeliveryStatus.SENDING,
    )
    assert claimed is not None
    token, _row = claimed

    assert not gatekeeper_db.finish_claim(
        Delivery, pk=delivery.pk, token=uuid.uuid4(), status=DeliveryStatus.DELIVERED
    )
    assert refreshed(delivery).status == DeliveryStatus.SENDING
    assert gatekeeper_db.finish_claim(
        Delivery, pk=delivery.pk, token=token, status=DeliveryStatus.DELIVERED, claim_token=None
    )
    assert refreshed(delivery).status == DeliveryStatus.DELIVERED


def test_the_claim_reads_the_claimed_row_with_its_event_endpoint_and_recipient(
    endpoint, owner, django_assert_num_queries
):
    with transaction.atomic():
        event = emit("review.submitted", payload_with(recipients=[{"user_id": owner.pk}]), key="r")
    assert event is not None
    in_app = Delivery.objects.get(event=event, channel=Channel.IN_APP)
    hook = Delivery.objects.get(event=event, channel=Channel.WEBHOOK)
    conf = get_conf()
    claimed = []
    for delivery in (in_app, hook):
        result = gatekeeper_db.claim_and_read(
            Delivery,
            pk=delivery.pk,
            claimable=services._claimable(timezone.now(), conf),
            status=DeliveryStatus.SENDING,
            related=services._CLAIM_RELATED,
        )
        assert result is not None
        claimed.append(result)
    (token, user_row), (_, hook_row) = claimed
    with django_assert_num_queries(0):
        assert (user_row.status, user_row.attempts, user_row.claim_token) == (
            DeliveryStatus.SENDING,
            1,
            token,
        )
        assert user_row.event.payload == event.payload  # JSON decoded, as the ORM would
        assert user_row.recipient_user == owner
        assert user_row.endpoint is None
        assert hook_row.endpoint == endpoint
        assert hook_row.recipient_user is None
    assert refreshed(in_app).claim_token == token
    # Taken: a second claim gets nothing.
    assert (
        gatekeeper_db.claim_and_read(
            Delivery,
            pk=in_app.pk,
            claimable=services._claimable(timezone.now(), conf),
            status=DeliveryStatus.SENDING,
        )
        is None
    )


# --- the redispatch sweep queues each delivery once per re-queue interval -----------------------


@pytest.fixture
def queued(monkeypatch) -> list[list[int]]:
    """The ids each non-inline sweep queued (instead of a broker), in its messages' order."""
    sweeps: list[list[int]] = []

    def enqueue(groups: list[list[int]], **kwargs: object) -> None:
        sweeps.append([delivery_id for group in groups for delivery_id in group])

    monkeypatch.setattr(services, "enqueue_dispatch", enqueue)
    monkeypatch.setattr(services, "_mark_queued", counting_sweeps(sweeps))
    return sweeps


def counting_sweeps(sweeps: list[list[int]]):
    """``_mark_queued`` that also records a sweep that found nothing (it queues no message)."""
    mark = services._mark_queued

    def marking(**kwargs):
        rows = mark(**kwargs)
        if not rows:
            sweeps.append([])
        return rows

    return marking


@override_settings(NOTIFICATIONS={**NO_GRACE, "REDISPATCH_REQUEUE_SECONDS": 60})
def test_a_sweep_does_not_queue_again_what_it_queued_until_the_requeue_interval(
    endpoint, receiver, queued
):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        deliveries = [emit_webhook(key=f"q{i}") for i in range(3)]
        ids = [d.pk for d in deliveries]
        clock.shift(dt.timedelta(seconds=1))

        assert redispatch() == 3
        clock.shift(dt.timedelta(seconds=30))
        assert redispatch() == 0  # the first messages may still be waiting in the queue
        assert deliveries_due() == []
        clock.shift(dt.timedelta(seconds=31))
        assert redispatch() == 3  # lost, perhaps: queued again

    assert queued == [ids, [], ids]
    assert receiver.requests == []


@override_settings(NOTIFICATIONS={**NO_GRACE, "REDISPATCH_REQUEUE_SECONDS": 60})
def test_a_delivery_the_sweep_queued_is_still_claimed_by_its_message(endpoint, receiver, queued):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        first, second = emit_webhook(key="a"), emit_webhook(key="b")
        clock.shift(dt.timedelta(seconds=1))
        assert redispatch() == 2
        # The sweep's message, or the on-commit one that was still waiting behind a backlog.
        assert delivery_attempt(delivery_id=first.pk).status == "delivered"
        assert delivery_attempt(delivery_id=second.pk).status == "delivered"
        assert delivery_attempt(delivery_id=second.pk).status == "skipped"  # a duplicate
        clock.shift(dt.timedelta(seconds=61))
        assert redispatch() == 0
    assert receiver.applied == {first.webhook_id: 1, second.webhook_id: 1}
    assert not Delivery.objects.filter(sweep_queued=True).exists()


@override_settings(NOTIFICATIONS={"REDISPATCH_REQUEUE_SECONDS": 60})
def test_a_queued_retry_that_fails_again_keeps_its_new_backoff(endpoint, receiver, queued):
    receiver.script = [Reply(500), Reply(503, {"Retry-After": "600"})]
    with time_machine.travel(timezone.now(), tick=False) as clock:
        delivery = emit_webhook()
        assert delivery_attempt(delivery_id=delivery.pk).status == "retry"
        clock.shift(dt.timedelta(seconds=31))  # the first backoff is at most 30 s
        assert redispatch() == 1
        assert refreshed(delivery).sweep_queued
        assert delivery_attempt(delivery_id=delivery.pk).status == "retry"
        after = refreshed(delivery)
        assert not after.sweep_queued
        assert after.next_attempt_at == timezone.now() + dt.timedelta(seconds=600)
        # A stale message (the sweep's own, redelivered) must wait for the receiver's 600 s.
        assert delivery_attempt(delivery_id=delivery.pk).status == "skipped"
        clock.shift(dt.timedelta(seconds=120))
        assert redispatch() == 0
        clock.shift(dt.timedelta(seconds=481))
        assert redispatch() == 1
        assert delivery_attempt(delivery_id=delivery.pk).status == "delivered"
    assert len(receiver.requests) == 3


@override_settings(NOTIFICATIONS={"REDISPATCH_REQUEUE_SECONDS": 60})
def test_a_stale_claim_the_sweep_queued_is_not_queued_again_within_the_interval(
    endpoint, receiver, queued
):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        delivery = emit_webhook()
        # As if a worker claimed it and then died before recording anything.
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.SENDING,
            claimed_at=timezone.now(),
            claim_token=uuid.uuid4(),
            attempts=1,
        )
        clock.shift(dt.timedelta(seconds=get_conf().claim_lease_seconds + 1))
        assert redispatch() == 1
        assert redispatch() == 0
        assert delivery_attempt(delivery_id=delivery.pk).status == "delivered"
    assert queued == [[delivery.pk], []]
    assert refreshed(delivery).attempts == 2


@pytest.mark.django_db(transaction=True)
@override_settings(NOTIFICATIONS=NO_GRACE)
def test_two_concurrent_queuing_sweeps_queue_each_delivery_once(endpoint, queued):
    deliveries = [emit_webhook(key=f"c{i}") for i in range(40)]
    results = run_at_once(redispatch, redispatch)
    assert all(isinstance(r, int) for r in results), results
    assert sorted(i for sweep in queued for i in sweep) == sorted(d.pk for d in deliveries)
