"""Dispatch messages are published by a thread of their own, after commit, never lost in
silence: the committing thread does not wait for the broker, a failure is logged, a forked
process publishes its own, eager Celery stays inline."""

from __future__ import annotations

import logging
import os
import threading

import pytest
from django.db import transaction

from notifications import outbox
from notifications.models import Delivery
from notifications.outbox import emit
from notifications.publisher import BackgroundPublisher, publisher
from tests.factories import UserFactory
from tests.notifications.conftest import payload_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    """What reached the broker call, with the name of the thread that made it."""
    calls: list[tuple[str, list[list[int]]]] = []

    def record(groups, **kwargs):
        calls.append((threading.current_thread().name, [list(g) for g in groups]))
        return True

    monkeypatch.setattr(outbox, "enqueue_dispatch", record)
    yield calls
    assert publisher.flush(5.0)


def _emit_one(key: str = "p1") -> list[int]:
    user = UserFactory()
    with transaction.atomic():
        emit("review.submitted", payload_with(recipients=[{"user_id": user.pk}]), key=key)
    return sorted(Delivery.objects.filter(event__key=key).values_list("pk", flat=True))


def test_the_message_is_published_after_commit_by_the_publisher_thread(
    published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ids = _emit_one()
    assert publisher.flush(5.0)
    assert [(name, sorted(g for group in groups for g in group)) for name, groups in published] == [
        ("gatekeeper-dispatch-publisher", ids)
    ]


def test_a_broker_that_hangs_does_not_hold_up_the_committing_thread(
    monkeypatch, django_capture_on_commit_callbacks
):
    entered, release = threading.Event(), threading.Event()
    sent: list[list[list[int]]] = []

    def hanging_broker(groups, **kwargs):
        entered.set()
        release.wait(10)
        sent.append(groups)
        return True

    monkeypatch.setattr(outbox, "enqueue_dispatch", hanging_broker)
    with django_capture_on_commit_callbacks(execute=True):
        ids = _emit_one()
    # The change is committed and its on-commit work has returned while the publish still
    # hangs: the caller (a web request) is answered, the deliveries wait as rows.
    assert entered.wait(5)
    assert sent == []
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
    release.set()
    assert publisher.flush(5.0)
    assert sorted(i for groups in sent for g in groups for i in g) == ids


def test_a_failing_publish_is_logged_and_the_next_one_still_goes_out(caplog):
    calls: list[list[list[int]]] = []

    def flaky(groups):
        calls.append(groups)
        if len(calls) == 1:
            raise ConnectionError("broker down")

    own = BackgroundPublisher(flaky)
    with caplog.at_level(logging.ERROR, logger="notifications.publisher"):
        own.submit([[1]])
        assert own.flush(5.0)
        own.submit([[2]])
        assert own.flush(5.0)
    assert [g for groups in calls for g in groups] == [[1], [2]]
    assert "publishing dispatch messages failed" in caplog.text


def test_eager_celery_publishes_inline(published, eager_celery):
    from notifications.publisher import publish_after_commit

    publish_after_commit([[41, 42]])
    assert published == [(threading.current_thread().name, [[41, 42]])]


def test_background_publishing_can_be_switched_off(published, settings):
    from notifications.publisher import publish_after_commit

    settings.NOTIFICATIONS = {"PUBLISH_IN_BACKGROUND": False}
    publish_after_commit([[7]])
    assert published == [(threading.current_thread().name, [[7]])]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_starts_its_own_publisher():
    """A pre-forking server forks after the parent may have published: the child's messages
    must go out from a thread of the child, not wait in a copy of the parent's queue."""
    seen: list[tuple[int, list[list[int]]]] = []
    own = BackgroundPublisher(lambda groups: seen.append((os.getpid(), groups)))
    own.submit([[1]])
    assert own.flush(5.0)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest, no database; report through the pipe and leave
        try:
            own.submit([[2]])
            ok = own.flush(5.0)
            mine = [groups for who, groups in seen if who == os.getpid()]
            os.write(write_end, repr((ok, mine)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert report == repr((True, [[[2]]]))
    assert seen == [(os.getpid(), [[1]])]  # the parent published only its own
