"""Dispatch messages are published by a thread of their own, after commit, never lost in
silence: the committing thread does not wait for the broker, a failure is logged, a forked
process publishes its own, eager Celery stays inline. Commits waiting together are merged per
endpoint into fewer messages, never mixing endpoints."""

from __future__ import annotations

import logging
import os
import threading

import pytest
from django.db import transaction

from notifications import outbox
from notifications.models import Channel, Delivery
from notifications.outbox import emit
from notifications.publisher import DISPATCH_GROUP_SIZE, BackgroundPublisher, Group, publisher
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
        own.submit([Group(7, [1])])
        assert own.flush(5.0)
        own.submit([Group(7, [2])])
        assert own.flush(5.0)
    assert [g for groups in calls for g in groups] == [Group(7, [1]), Group(7, [2])]
    assert "publishing dispatch messages failed" in caplog.text


def test_eager_celery_publishes_inline(published, eager_celery):
    from notifications.publisher import publish_after_commit

    publish_after_commit([Group(3, [41, 42])])
    assert published == [(threading.current_thread().name, [[41, 42]])]


def test_background_publishing_can_be_switched_off(published, settings):
    from notifications.publisher import publish_after_commit

    settings.NOTIFICATIONS = {"PUBLISH_IN_BACKGROUND": False}
    publish_after_commit([Group(None, [7])])
    assert published == [(threading.current_thread().name, [[7]])]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_starts_its_own_publisher():
    """A pre-forking server forks after the parent may have published: the child's messages
    must go out from a thread of the child, not wait in a copy of the parent's queue."""
    seen: list[tuple[int, list[Group]]] = []
    own = BackgroundPublisher(lambda groups: seen.append((os.getpid(), groups)))
    own.submit([Group(None, [1])])
    assert own.flush(5.0)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest, no database; report through the pipe and leave
        try:
            own.submit([Group(None, [2])])
            ok = own.flush(5.0)
            mine = [groups for who, groups in seen if who == os.getpid()]
            os.write(write_end, repr((ok, mine)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert report == repr((True, [[Group(None, [2])]]))
    assert seen == [(os.getpid(), [Group(None, [1])])]  # the parent published only its own


# --- commits waiting together are merged per endpoint -----------------------------------------


class HeldPublisher:
    """A ``BackgroundPublisher`` whose thread is kept busy publishing a first item until
    ``release``, so the commits submitted meanwhile are all waiting when it next wakes."""

    def __init__(self) -> None:
        self.calls: list[list[Group]] = []
        self._entered, self._release = threading.Event(), threading.Event()
        self.own = BackgroundPublisher(self._publish)
        self.own.submit([Group(None, [0])])
        assert self._entered.wait(5)

    def _publish(self, groups: list[Group]) -> None:
        self._entered.set()
        self._release.wait(10)
        self.calls.append(groups)

    def submit(self, groups: list[Group]) -> None:
        self.own.submit(groups)

    def release(self) -> list[list[Group]]:
        """The calls after the first, once everything submitted is published."""
        self._release.set()
        assert self.own.flush(5.0)
        assert self.calls[0] == [Group(None, [0])]
        return self.calls[1:]


def test_two_commits_groups_for_the_same_endpoint_go_out_as_one_message():
    held = HeldPublisher()
    held.submit([Group(7, [1, 2])])
    held.submit([Group(7, [3])])
    assert held.release() == [[Group(7, [1, 2, 3])]]


def test_merged_commits_keep_each_endpoint_apart_and_people_together():
    held = HeldPublisher()
    held.submit([Group(None, [1, 2]), Group(7, [3])])
    held.submit([Group(8, [4]), Group(None, [5]), Group(7, [6])])
    held.submit([Group(8, [7])])
    assert held.release() == [
        [Group(None, [1, 2, 5]), Group(7, [3, 6]), Group(8, [4, 7])],
    ]


def test_merged_groups_keep_commit_order_then_id_order():
    held = HeldPublisher()
    # A transaction that began earlier may commit later, with lower ids: commit order first.
    held.submit([Group(7, [20, 21])])
    held.submit([Group(7, [10, 11])])
    assert held.release() == [[Group(7, [20, 21, 10, 11])]]


def test_merged_groups_are_capped():
    held = HeldPublisher()
    first = list(range(1, 31))
    second = list(range(31, 61))
    third = list(range(61, 71))
    for ids in (first, second, third):
        held.submit([Group(7, ids)])
    assert DISPATCH_GROUP_SIZE == 50
    assert held.release() == [
        [Group(7, (first + second)[:50]), Group(7, (second + third)[20:])],
    ]


def test_one_commit_alone_goes_out_as_it_came():
    held = HeldPublisher()
    groups = [Group(7, [1]), Group(None, [2, 3]), Group(8, [4])]
    held.submit(groups)
    assert held.release() == [groups]


def test_commits_waiting_together_through_the_outbox_share_their_messages(
    monkeypatch, endpoint, django_capture_on_commit_callbacks
):
    entered, release = threading.Event(), threading.Event()
    sent: list[list[list[int]]] = []

    def held_broker(groups, **kwargs):
        entered.set()
        release.wait(10)
        sent.append([list(g) for g in groups])
        return True

    monkeypatch.setattr(outbox, "enqueue_dispatch", held_broker)
    with django_capture_on_commit_callbacks(execute=True):
        _emit_one("first")
    assert entered.wait(5)
    # Two more single-event commits while the first is still being published: each has a
    # webhook delivery for the endpoint and an e-mail and an in-app note for its recipient.
    with django_capture_on_commit_callbacks(execute=True):
        _emit_one("second")
    with django_capture_on_commit_callbacks(execute=True):
        _emit_one("third")
    release.set()
    assert publisher.flush(5.0)

    def ids(key: str, webhook: bool) -> list[int]:
        rows = Delivery.objects.filter(event__key=key)
        rows = (
            rows.filter(channel=Channel.WEBHOOK)
            if webhook
            else rows.exclude(channel=Channel.WEBHOOK)
        )
        return list(rows.order_by("id").values_list("pk", flat=True))

    assert sent[0] == [ids("first", False), ids("first", True)]
    assert sent[1:] == [
        [ids("second", False) + ids("third", False), ids("second", True) + ids("third", True)]
    ]


def test_inline_publishing_sends_each_commit_as_it_came(published, settings):
    from notifications.publisher import publish_after_commit

    settings.NOTIFICATIONS = {"PUBLISH_IN_BACKGROUND": False}
    publish_after_commit([Group(7, [1])])
    publish_after_commit([Group(7, [2]), Group(None, [3])])
    here = threading.current_thread().name
    assert published == [(here, [[1]]), (here, [[2], [3]])]


# --- an idle publisher lingers for commits to merge ---------------------------------------------


def _recording(linger: float) -> tuple[BackgroundPublisher, list[list[Group]]]:
    calls: list[list[Group]] = []
    return BackgroundPublisher(calls.append, linger=lambda: linger), calls


def test_commits_made_within_the_linger_go_out_as_one_message():
    # Idle, not busy: nothing was waiting when the first commit's message arrived, yet the next
    # commits, a few milliseconds apart as a loop of small changes makes them, join it.
    own, calls = _recording(linger=2.0)
    own.submit([Group(7, [1]), Group(None, [2])])
    own.submit([Group(7, [3])])
    own.submit([Group(None, [4]), Group(8, [5])])
    assert own.flush(5.0)
    assert calls == [[Group(7, [1, 3]), Group(None, [2, 4]), Group(8, [5])]]


def test_without_a_linger_an_idle_publisher_sends_at_once():
    own, calls = _recording(linger=0.0)
    own.submit([Group(7, [1])])
    assert own.flush(5.0)
    own.submit([Group(7, [2])])
    assert own.flush(5.0)
    assert calls == [[Group(7, [1])], [Group(7, [2])]]


def test_a_full_message_goes_out_without_waiting_out_the_linger():
    own, calls = _recording(linger=30.0)
    own.submit([Group(7, list(range(1, 31)))])
    own.submit([Group(8, list(range(31, 51)))])
    assert own.flush(5.0)  # well inside the 30 s linger
    assert calls == [[Group(7, list(range(1, 31))), Group(8, list(range(31, 51)))]]


def test_a_lone_commit_goes_out_once_the_linger_is_over():
    own, calls = _recording(linger=0.2)
    own.submit([Group(7, [1])])
    assert own.flush(5.0)
    own.submit([Group(7, [2])])
    assert own.flush(5.0)
    assert calls == [[Group(7, [1])], [Group(7, [2])]]


def test_the_app_publisher_lingers_as_configured(settings):
    from notifications.publisher import _linger

    assert _linger() == 0.02  # GATEKEEPER_DISPATCH_LINGER_MS's default, 20 ms
    settings.NOTIFICATIONS = {"DISPATCH_LINGER_MS": 0}
    assert _linger() == 0.0


def test_a_linger_over_a_second_is_refused(settings):
    from django.core.exceptions import ImproperlyConfigured

    from notifications.conf import get_conf

    settings.NOTIFICATIONS = {"DISPATCH_LINGER_MS": 1001}
    with pytest.raises(ImproperlyConfigured, match="GATEKEEPER_DISPATCH_LINGER_MS"):
        get_conf()


def test_a_linger_that_cannot_be_read_does_not_stop_the_publisher(caplog):
    calls: list[list[Group]] = []

    def broken() -> float:
        raise RuntimeError("settings gone")

    own = BackgroundPublisher(calls.append, linger=broken)
    with caplog.at_level(logging.ERROR, logger="notifications.publisher"):
        own.submit([Group(7, [1])])
        assert own.flush(5.0)
        own.submit([Group(7, [2])])
        assert own.flush(5.0)
    assert calls == [[Group(7, [1])], [Group(7, [2])]]
    assert "reading the dispatch linger failed" in caplog.text
