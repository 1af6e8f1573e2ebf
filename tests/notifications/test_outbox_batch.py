"""outbox.batch(): several events of one change, their deliveries written together."""

from __future__ import annotations

import pytest
from django.db import transaction

from notifications import outbox
from notifications.models import Channel, Delivery, Event
from notifications.outbox import emit
from tests.factories import UserFactory
from tests.notifications.conftest import payload_with

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


def _to(*users):
    return payload_with(recipients=[{"user_id": u.pk} for u in users])


def test_deliveries_of_a_batch_are_written_together_when_it_ends(
    endpoint, django_capture_on_commit_callbacks
):
    ann, bob = UserFactory(), UserFactory()
    with (
        django_capture_on_commit_callbacks() as callbacks,
        transaction.atomic(),
        outbox.batch(),
    ):
        first = emit("review.submitted", _to(ann), key="b1")
        second = emit("review.decided", _to(ann, bob), key="b2")
        assert not Delivery.objects.exists()
    assert {(d.channel, d.recipient_user_id) for d in Delivery.objects.filter(event=first)} == {
        (Channel.EMAIL, ann.pk),
        (Channel.IN_APP, ann.pk),
        (Channel.WEBHOOK, None),
    }
    assert Delivery.objects.filter(event=second, channel=Channel.IN_APP).count() == 2
    assert Delivery.objects.filter(event=second, endpoint=endpoint).count() == 1
    # One dispatch for the whole batch (the other on-commit callbacks count metrics).
    dispatches = [c for c in callbacks if c.__qualname__ == "_Dispatch.publish"]
    assert len(dispatches) == 1


def test_a_batch_costs_four_queries_however_many_events(endpoint, django_assert_num_queries):
    """Emitting costs nothing; the close inserts the events, looks up the users and the
    endpoints, and inserts the deliveries, once for all of them."""
    users = [UserFactory() for _ in range(3)]
    with transaction.atomic():
        batch = outbox.batch()
        batch.__enter__()
        with django_assert_num_queries(0):
            emitted = [
                emit("review.decided", _to(user, *users), key=f"n{i}")
                for i, user in enumerate(users)
            ]
        with django_assert_num_queries(4):
            batch.__exit__(None, None, None)
    assert Delivery.objects.filter(channel=Channel.WEBHOOK).count() == 3
    # The events emit returned are the rows recorded at the close, in the order emitted.
    assert [e.pk for e in emitted if e is not None] == list(
        Event.objects.order_by("pk").values_list("pk", flat=True)
    )
    assert [e.key for e in Event.objects.order_by("pk")] == ["n0", "n1", "n2"]


def test_a_key_recorded_before_the_batch_is_skipped_at_its_close(endpoint):
    ann = UserFactory()
    with transaction.atomic():
        emit("review.submitted", _to(ann), key="seen")
    with transaction.atomic(), outbox.batch():
        emit("review.submitted", _to(ann), key="seen")
        fresh = emit("review.decided", _to(ann), key="fresh")
    assert Event.objects.filter(key="seen").count() == 1
    assert Delivery.objects.filter(event__key="seen").count() == 3  # nothing added to it
    assert fresh is not None and Delivery.objects.filter(event=fresh).count() == 3


def test_an_emit_in_a_savepoint_rolled_back_inside_the_batch_leaves_nothing(endpoint):
    ann = UserFactory()
    with transaction.atomic(), outbox.batch():
        kept = emit("review.submitted", _to(ann), key="kept")
        with pytest.raises(Boom), transaction.atomic():
            emit("review.decided", _to(ann), key="gone")
            raise Boom
    assert list(Event.objects.values_list("key", flat=True)) == ["kept"]
    assert Delivery.objects.filter(event=kept).count() == 3
    assert Delivery.objects.count() == 3


def test_a_batch_left_by_an_exception_delivers_nothing(endpoint):
    with pytest.raises(Boom), transaction.atomic(), outbox.batch():
        emit("review.submitted", _to(UserFactory()), key="boom")
        raise Boom
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


def test_a_key_emitted_twice_in_a_batch_is_recorded_once():
    ann = UserFactory()
    with transaction.atomic(), outbox.batch():
        first = emit("review.submitted", _to(ann), key="twice")
        again = emit("review.submitted", _to(ann), key="twice")
    assert first is not None and again is None
    assert Delivery.objects.filter(event=first).count() == 2


def test_emit_all_records_only_new_keys_in_one_insert(django_assert_num_queries):
    ann, bob = UserFactory(), UserFactory()
    with transaction.atomic():
        emit("milestone.overdue", _to(ann), key="old")
    with transaction.atomic():
        outgoing = [
            outbox.OutboxEvent("milestone.overdue", _to(ann), key="old"),
            outbox.OutboxEvent("milestone.overdue", _to(bob), key="new"),
            outbox.OutboxEvent("milestone.overdue", _to(ann), key="new"),  # the same key twice
        ]
        # The users, then one statement for the new event and its deliveries (the endpoint
        # list is the one the first emit read, at the same fingerprint).
        with django_assert_num_queries(2):
            recorded = outbox.emit_all(outgoing)
    assert [(e.key, e.payload) for e in recorded] == [("new", _to(bob))]
    assert Event.objects.filter(key="new").get().pk == recorded[0].pk
    assert {d.recipient_user_id for d in Delivery.objects.filter(event__key="new")} == {bob.pk}
    assert Delivery.objects.filter(event__key="old").count() == 2  # nothing added to the old one
