"""Dispatch groups: one transaction's webhook deliveries travel per endpoint, are claimed in one
statement and sent in order; a failure releases the endpoint's rest; endpoints stay isolated."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import time_machine
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from gatekeeper import db as gatekeeper_db
from notifications import outbox, services
from notifications.conf import get_conf
from notifications.models import Channel, Delivery, DeliveryStatus, WebhookEndpoint
from notifications.outbox import DISPATCH_GROUP_SIZE, emit, emit_all
from notifications.publisher import Group
from notifications.services import deliveries_attempt, redispatch
from tests.concurrency import run_at_once
from tests.notifications.conftest import Receiver, Reply, payload_with

pytestmark = pytest.mark.django_db


class Published(list[list[int]]):
    """The ids of each dispatch group published on commit, in order; ``endpoints``: the
    endpoint each group said it was for (None: people's)."""

    endpoints: list[int | None]


@pytest.fixture
def published(monkeypatch) -> Published:
    """The dispatch groups published on commit (instead of a broker)."""
    groups = Published()
    groups.endpoints = []

    def record(published: list[Group]) -> None:
        groups.extend(group.ids for group in published)
        groups.endpoints.extend(group.endpoint_id for group in published)

    monkeypatch.setattr(outbox, "publish_after_commit", record)
    return groups


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def other_endpoint(other_receiver: Receiver, owner) -> WebhookEndpoint:
    ep = WebhookEndpoint.objects.create(name="crm", url=other_receiver.url, owner=owner)
    other_receiver.secret = ep.secret
    return ep


def webhooks(endpoint: WebhookEndpoint) -> list[Delivery]:
    return list(Delivery.objects.filter(endpoint=endpoint).order_by("id"))


def emit_many(n: int, prefix: str = "e", **payload) -> None:
    with transaction.atomic():
        for i in range(n):
            emit("review.submitted", payload_with(**payload), key=f"{prefix}{i}")


# --- groups made on commit --------------------------------------------------------------------


def test_a_transaction_s_deliveries_are_grouped_per_endpoint_in_order_and_capped(
    endpoint, other_endpoint, owner, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        emit_many(120, recipients=[{"user_id": owner.pk}])
    assert [c.__qualname__ for c in callbacks].count("_Dispatch.publish") == 1

    by_endpoint = {ep.pk: [d.pk for d in webhooks(ep)] for ep in (endpoint, other_endpoint)}
    people = list(
        Delivery.objects.exclude(channel=Channel.WEBHOOK)
        .order_by("id")
        .values_list("id", flat=True)
    )
    assert len(people) == 240  # an e-mail and an in-app note per event
    assert all(len(group) <= DISPATCH_GROUP_SIZE for group in published)
    # Each group is one endpoint's, or people's only, in the order they were written, and says
    # which.
    for endpoint_id, ids in (*by_endpoint.items(), (None, people)):
        mine = [(g, e) for g, e in zip(published, published.endpoints, strict=True) if g[0] in ids]
        assert [i for g, _e in mine for i in g] == ids
        assert [len(g) for g, _e in mine] == (
            [50, 50, 20] if len(ids) == 120 else [50, 50, 50, 50, 40]
        )
        assert {e for _g, e in mine} == {endpoint_id}
    assert len(published) == 3 + 3 + 5


def test_a_sweep_s_chunk_is_grouped_per_endpoint(
    endpoint, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        emit_all(
            [outbox.OutboxEvent("review.submitted", payload_with(), key=f"s{i}") for i in range(60)]
        )
    assert published == [
        [d.pk for d in webhooks(endpoint)][:50],
        [d.pk for d in webhooks(endpoint)][50:],
    ]
    assert published.endpoints == [endpoint.pk, endpoint.pk]


def test_deliveries_after_a_rolled_back_savepoint_are_still_dispatched(
    endpoint, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        # The first dispatch callback is registered inside a savepoint that is rolled back:
        # the deliveries written after it must not depend on it.
        try:
            with transaction.atomic():
                emit("review.submitted", payload_with(), key="gone")
                raise RuntimeError("undo")
        except RuntimeError:
            pass
        emit("review.submitted", payload_with(), key="kept-1")
        with transaction.atomic():
            emit("review.submitted", payload_with(), key="kept-2")
    kept = [d.pk for d in webhooks(endpoint)]
    assert len(kept) == 2
    assert [i for g in published for i in g] == kept


def test_a_transaction_that_rolls_back_dispatches_nothing_and_leaves_nothing_behind(
    endpoint, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            emit("review.submitted", payload_with(), key="undone")
            raise RuntimeError("undo")
        emit_many(2, prefix="next")
    assert [i for g in published for i in g] == [d.pk for d in webhooks(endpoint)]


# --- claimed together, sent in order, finished one by one -------------------------------------


def test_a_group_is_one_claim_and_one_result_per_delivery(
    endpoint, receiver, django_assert_max_num_queries
):
    emit_many(10)
    ids = [d.pk for d in webhooks(endpoint)]
    with django_assert_max_num_queries(1 + 10):
        results = deliveries_attempt(delivery_ids=ids)
    assert [r.status for r in results] == ["delivered"] * 10
    # Sent in the order they were written.
    assert receiver.ids_received() == [d.webhook_id for d in webhooks(endpoint)]
    assert {(d.status, d.attempts, d.claim_token) for d in webhooks(endpoint)} == {
        (DeliveryStatus.DELIVERED, 1, None)
    }


def test_a_group_skips_what_is_delivered_or_claimed_by_someone_else(endpoint, receiver):
    emit_many(3)
    done, taken, due = webhooks(endpoint)
    assert services.delivery_attempt(delivery_id=done.pk).status == "delivered"
    held = gatekeeper_db.claim_and_read(
        Delivery,
        pk=taken.pk,
        claimable=services._claimable(timezone.now(), get_conf()),
        status=DeliveryStatus.SENDING,
    )
    assert held is not None
    token, _row = held

    results = deliveries_attempt(delivery_ids=[done.pk, taken.pk, due.pk])

    assert [r.status for r in results] == ["skipped", "skipped", "delivered"]
    assert receiver.ids_received() == [done.webhook_id, due.webhook_id]
    taken.refresh_from_db()
    assert (taken.status, taken.claim_token, taken.attempts) == (DeliveryStatus.SENDING, token, 1)


def test_a_failure_mid_group_releases_the_endpoint_s_rest_unsent_until_its_retry(
    endpoint, receiver, django_assert_max_num_queries
):
    receiver.script = [Reply(200), Reply(503)]
    emit_many(5)
    _first, failed, *rest = webhooks(endpoint)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        # The claim, a result, the failure, one release of the rest.
        ids = [d.pk for d in webhooks(endpoint)]
        with django_assert_max_num_queries(4):
            results = deliveries_attempt(delivery_ids=ids)
        assert [r.status for r in results] == [
            "delivered",
            "retry",
            "released",
            "released",
            "released",
        ]
        assert len(receiver.requests) == 2  # the receiver was not hammered with the rest
        failed.refresh_from_db()
        assert (failed.status, failed.attempts) == (DeliveryStatus.PENDING, 1)
        for d in rest:
            d.refresh_from_db()
            # Given back: pending, the attempt uncounted, due when the failed one is.
            assert (d.status, d.attempts, d.claim_token) == (DeliveryStatus.PENDING, 0, None)
            assert d.next_attempt_at == failed.next_attempt_at
        assert failed.next_attempt_at is not None
        # The sweep brings them back under its usual rules (fresh ones after the grace).
        clock.move_to(
            failed.next_attempt_at + dt.timedelta(seconds=get_conf().redispatch_grace_seconds)
        )
        redispatch(inline=True)
    assert {d.status for d in webhooks(endpoint)} == {DeliveryStatus.DELIVERED}
    assert sorted(set(receiver.ids_received())) == sorted(d.webhook_id for d in webhooks(endpoint))
    assert [d.attempts for d in webhooks(endpoint)] == [1, 2, 1, 1, 1]


def test_a_dead_endpoint_holds_up_neither_another_endpoint_nor_people(
    endpoint, receiver, other_endpoint, other_receiver, owner
):
    receiver.close()  # nothing listens there any more
    emit_many(3, recipients=[{"user_id": owner.pk}])
    everything = list(Delivery.objects.order_by("id").values_list("id", flat=True))

    results = {r.delivery_id: r.status for r in deliveries_attempt(delivery_ids=everything)}

    dead_first, *dead_rest = webhooks(endpoint)
    assert results[dead_first.pk] == "retry"
    assert [results[d.pk] for d in dead_rest] == ["released", "released"]
    assert [results[d.pk] for d in webhooks(other_endpoint)] == ["delivered"] * 3
    people = Delivery.objects.exclude(channel=Channel.WEBHOOK)
    assert {results[d.pk] for d in people} == {"delivered"}
    assert len(other_receiver.applied) == 3


def test_a_group_out_of_time_queues_its_rest_again(endpoint, receiver, monkeypatch):
    receiver.default = Reply(200, delay=0.2)
    monkeypatch.setattr(services, "GROUP_SEND_BUDGET_SECONDS", 0.1)
    queued: list[list[int]] = []
    monkeypatch.setattr(services, "enqueue_dispatch", lambda groups, **kw: queued.extend(groups))
    emit_many(4)
    _sent, *rest = webhooks(endpoint)

    results = deliveries_attempt(delivery_ids=[d.pk for d in webhooks(endpoint)])

    assert [r.status for r in results] == ["delivered", "released", "released", "released"]
    assert queued == [[d.pk for d in rest]]
    for d in rest:
        d.refresh_from_db()
        assert (d.status, d.attempts, d.claim_token) == (DeliveryStatus.PENDING, 0, None)
    # Its message claims them at once.
    monkeypatch.setattr(services, "GROUP_SEND_BUDGET_SECONDS", 60.0)
    assert [r.status for r in deliveries_attempt(delivery_ids=queued[0])] == ["delivered"] * 3
    assert receiver.ids_received() == [d.webhook_id for d in webhooks(endpoint)]


@pytest.mark.django_db(transaction=True)
@override_settings(NOTIFICATIONS={"REDISPATCH_GRACE_SECONDS": 0})
def test_the_same_group_claimed_twice_at_once_is_sent_once(endpoint, receiver):
    receiver.default = Reply(200, delay=0.01)
    emit_many(30)
    ids = [d.pk for d in webhooks(endpoint)]
    # Opposite orders, as a redelivered message and the sweep's might overlap.
    results = run_at_once(
        lambda: deliveries_attempt(delivery_ids=ids),
        lambda: deliveries_attempt(delivery_ids=list(reversed(ids))),
    )
    assert all(isinstance(r, list) for r in results), results
    statuses = [r.status for result in results for r in result]
    assert statuses.count("delivered") == 30
    assert sorted(receiver.ids_received()) == sorted(d.webhook_id for d in webhooks(endpoint))
    assert {(d.status, d.attempts) for d in webhooks(endpoint)} == {(DeliveryStatus.DELIVERED, 1)}


def test_the_admin_retry_is_published_like_the_outbox(
    endpoint, published, django_capture_on_commit_callbacks, monkeypatch
):
    emit_many(1)
    (delivery,) = webhooks(endpoint)
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DEAD)
    calls: list[list[Group]] = []
    monkeypatch.setattr(services, "publish_after_commit", calls.append)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.delivery_retry(delivery_id=delivery.pk)
    # With its endpoint: the publisher may merge it with that endpoint's other deliveries.
    assert calls == [[Group(endpoint.pk, [delivery.pk])]]


def test_the_admin_retry_of_a_person_s_delivery_is_published_with_people_s(
    owner, published, django_capture_on_commit_callbacks, monkeypatch
):
    emit_many(1, recipients=[{"user_id": owner.pk}])
    delivery = Delivery.objects.get(channel=Channel.EMAIL)
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DEAD)
    calls: list[list[Group]] = []
    monkeypatch.setattr(services, "publish_after_commit", calls.append)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.delivery_retry(delivery_id=delivery.pk)
    assert calls == [[Group(None, [delivery.pk])]]


@override_settings(NOTIFICATIONS={"REDISPATCH_GRACE_SECONDS": 0})
def test_the_sweep_queues_per_endpoint_groups_too(endpoint, other_endpoint, owner, monkeypatch):
    queued: list[list[int]] = []
    monkeypatch.setattr(services, "enqueue_dispatch", lambda groups, **kw: queued.extend(groups))
    with time_machine.travel(timezone.now(), tick=False) as clock:
        emit_many(3, recipients=[{"user_id": owner.pk}])
        clock.shift(dt.timedelta(seconds=1))
        assert redispatch() == 12
    people = list(
        Delivery.objects.exclude(channel=Channel.WEBHOOK)
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)
    )
    assert sorted(map(sorted, queued)) == sorted(
        [
            sorted(people),
            [d.pk for d in webhooks(endpoint)],
            [d.pk for d in webhooks(other_endpoint)],
        ]
    )
