"""Fault tests with real worker processes on a throwaway Redis (never the shared one).

The worker runs ``celery -A gatekeeper worker --pool prefork -c 2`` against the pytest database,
so these tests use committed data (``transaction=True``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.db import transaction

from notifications.models import Channel, Delivery, DeliveryStatus, Notification
from notifications.outbox import emit
from notifications.tasks import redispatch as redispatch_task
from tests.factories import UserFactory
from tests.notifications.conftest import Receiver, Reply, payload_with, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Short lease and no grace, so a restarted worker's sweep takes over within the test's time.
FAST_SWEEP = {"GATEKEEPER_DELIVERY_LEASE_SECONDS": "2", "GATEKEEPER_REDISPATCH_GRACE_SECONDS": "0"}


def all_delivered() -> bool:
    return not Delivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists()


def sweep_until(done: Callable[[], bool], *, timeout: float) -> None:
    """What beat does: send the redispatch task now and then until the work is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        redispatch_task.delay()
        try:
            wait_for(done, timeout=1.5, what="deliveries")
            return
        except TimeoutError:
            continue
    raise AssertionError(f"not all delivered after {timeout}s: {statuses()}")


def statuses() -> list[tuple[int, str, int, str]]:
    return list(Delivery.objects.values_list("id", "status", "attempts", "last_error"))


def test_worker_sigkilled_mid_batch_every_delivery_is_made_and_applied_once(
    throwaway_redis, worker_factory, endpoint, receiver: Receiver
):
    receiver.default = Reply(200, delay=0.4)  # slow enough to kill the worker mid-send
    worker = worker_factory(throwaway_redis.url, **FAST_SWEEP)
    worker.start()

    with transaction.atomic():
        for i in range(12):
            emit("milestone.overdue", payload_with(milestone={"id": i}), key=f"overdue:{i}")
    wait_for(lambda: len(receiver.requests) >= 3, timeout=15, what="the first sends")
    worker.kill()

    assert not all_delivered(), "the kill came too late to test anything"
    worker.start()
    sweep_until(all_delivered, timeout=25)

    expected = {d.webhook_id for d in Delivery.objects.filter(channel=Channel.WEBHOOK)}
    assert len(expected) == 12
    assert set(receiver.applied) == expected  # none lost
    assert receiver.applied_events == {f"overdue:{i}": 1 for i in range(12)}  # none twice
    assert receiver.verify_errors == []


def test_redis_down_during_dispatch_events_stay_pending_and_go_out_when_it_is_back(
    throwaway_redis, worker_factory, endpoint, receiver: Receiver
):
    user = UserFactory(email="owner@example.com")
    worker = worker_factory(throwaway_redis.url, **FAST_SWEEP)
    worker.start()

    throwaway_redis.stop()
    with transaction.atomic():
        for i in range(3):
            emit(
                "initiative.stalled",
                payload_with(recipients=[{"user_id": user.pk}]),
                key=f"stalled:{i}",
            )
    # The change committed even though its dispatch could not be queued.
    pending = Delivery.objects.filter(status=DeliveryStatus.PENDING, attempts=0)
    assert pending.count() == 9  # 3 events x (email, in-app, webhook)
    assert receiver.requests == []

    throwaway_redis.start()  # same port: the worker reconnects on its own
    sweep_until(all_delivered, timeout=25)

    assert receiver.applied_events == {f"stalled:{i}": 1 for i in range(3)}
    assert Notification.objects.filter(user=user).count() == 3
