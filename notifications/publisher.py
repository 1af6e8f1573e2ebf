"""Dispatch messages published off the committing thread.

When a change commits, its deliveries are already rows in the database; the Celery message that
follows only wakes a worker sooner (the redispatch sweep finds any delivery whose message never
arrived). Publishing it on the thread that committed made every decision wait for Redis: about a
millisecond when Redis is well, and the broker's connect retries and timeouts when it is not, so
a Redis outage slowed every web request that wrote something. Here each process hands the
message to one publisher thread and goes on.

What can be lost is a message, never a delivery: a process that dies with messages still queued
leaves their deliveries pending, and the sweep sends them (``notifications.redispatch``). A
process that exits normally publishes what is queued first (``atexit``, bounded).

What the thread finds waiting when it wakes (commits made while it was publishing the last
ones: a web worker's threads committing at once, or any commits while the broker is slow) goes
out merged: each webhook endpoint's deliveries from all of them in as few messages as
``DISPATCH_GROUP_SIZE`` allows, people's likewise, so a worker claims and sends them together
instead of one message per commit. A message never mixes endpoints.

It also lingers: once a message is waiting, the thread waits up to
``GATEKEEPER_DISPATCH_LINGER_MS`` (20 ms) for more commits to merge with it, or until a full
message's worth of deliveries is waiting. A process committing many small changes in a row (an
import, a sweep, a ticketing system's burst of calls) would otherwise send one message per
commit, and each message costs a worker about what the delivery itself does: with one event per
commit, the workers delivered at 27 to 31% of their rate of empty tasks. The wait is on this
thread only; no request waits for it, and a notification goes out at most that much later.

Inline instead (the caller waits, as before) when Celery runs tasks eagerly: eager means "run
it here, now", and a task run on this thread's behalf from another thread would use another
database connection. Also when ``GATEKEEPER_DISPATCH_PUBLISH_IN_BACKGROUND=0``.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

from notifications.conf import get_conf

logger = logging.getLogger(__name__)

# Deliveries per dispatch message at most: with ``services.GROUP_SEND_BUDGET_SECONDS``, a
# group's worst case stays well inside the dispatch task's 120 s time limit.
DISPATCH_GROUP_SIZE = 50


class Group(NamedTuple):
    """One dispatch message: the ids of deliveries bound for one webhook endpoint, or of
    people's deliveries (e-mails, in-app notes) when ``endpoint_id`` is None."""

    endpoint_id: int | None
    ids: list[int]


Groups = list[Group]


def merged(groups: Iterable[Group]) -> Groups:
    """``groups`` with each endpoint's (and people's) put together, in the order given (commit
    order, then the order each commit wrote them in), as messages of at most
    ``DISPATCH_GROUP_SIZE``: several commits' messages for one endpoint become as few as the
    cap allows, never one with another endpoint's; endpoints in the order first seen."""
    by_endpoint: dict[int | None, list[int]] = {}
    for endpoint_id, ids in groups:
        by_endpoint.setdefault(endpoint_id, []).extend(ids)
    return [
        Group(endpoint_id, ids[start : start + DISPATCH_GROUP_SIZE])
        for endpoint_id, ids in by_endpoint.items()
        for start in range(0, len(ids), DISPATCH_GROUP_SIZE)
    ]


class BackgroundPublisher:
    """One daemon thread per process draining a queue of dispatch groups into ``publish``:
    every item waiting when it wakes, ``merged``, in one call.

    Started on first use and again in a forked child (a thread does not survive ``fork``, and
    the parent's queue is the parent's), so a pre-forking server's workers each get their own.

    ``linger`` gives the seconds to wait, once an item is taken, for more to merge with it (read
    per item, so a test's settings apply); none waits by default.
    """

    def __init__(
        self, publish: Callable[[Groups], object], *, linger: Callable[[], float] | None = None
    ) -> None:
        self._publish = publish
        self._linger = linger
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.Queue[Groups] = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, groups: Groups) -> None:
        if groups:
            self._running().put(groups)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything this process submitted is published (or failed and was
        logged); False if that took longer than ``timeout`` seconds."""
        if self._pid != os.getpid():
            return True  # nothing was submitted in this process
        pending = self._queue
        with pending.all_tasks_done:
            return pending.all_tasks_done.wait_for(
                lambda: not pending.unfinished_tasks, timeout=timeout
            )

    def _running(self) -> queue.Queue[Groups]:
        pid = os.getpid()
        thread = self._thread
        if self._pid == pid and thread is not None and thread.is_alive():
            return self._queue
        with self._lock:
            if self._pid != pid:
                self._queue = queue.Queue()
                self._pid = pid
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._drain,
                    args=(self._queue,),
                    name="gatekeeper-dispatch-publisher",
                    daemon=True,
                )
                self._thread.start()
            return self._queue

    def _linger_seconds(self) -> float:
        try:
            return self._linger() if self._linger else 0.0
        except Exception:  # a setting that cannot be read must not stop this thread
            logger.exception("reading the dispatch linger failed; not lingering")
            return 0.0

    def _drain(self, pending: queue.Queue[Groups]) -> None:
        while True:
            groups = list(pending.get())
            taken = 1
            until = time.monotonic() + self._linger_seconds()
            waiting = sum(len(group.ids) for group in groups)
            # Whatever else is waiting, or comes within the linger, goes out with it, over one
            # producer connection, and in fewer messages: the commits' groups for the same
            # endpoint are merged. A full message's worth goes out without waiting longer.
            while True:
                left = until - time.monotonic()
                try:
                    more = (
                        pending.get(timeout=left)
                        if left > 0 and waiting < DISPATCH_GROUP_SIZE
                        else pending.get_nowait()
                    )
                except queue.Empty:
                    break
                groups.extend(more)
                waiting += sum(len(group.ids) for group in more)
                taken += 1
            try:
                self._publish(merged(groups) if taken > 1 else groups)
            except Exception:  # publish logs its own failures; nothing may stop this thread
                logger.exception("publishing dispatch messages failed")
            finally:
                for _ in range(taken):
                    pending.task_done()


def _publish(groups: Groups) -> None:
    # Imported here: the outbox imports this module.
    from notifications.outbox import enqueue_dispatch

    enqueue_dispatch([group.ids for group in groups])


def _linger() -> float:
    return get_conf().dispatch_linger_ms / 1000


publisher = BackgroundPublisher(_publish, linger=_linger)
atexit.register(publisher.flush, 5.0)


def publish_after_commit(groups: Groups) -> None:
    """Queue the dispatch messages of committed deliveries (an on-commit callback): on the
    publisher thread, or right here, as given, when tasks run eagerly or background publishing
    is off.

    The one place that decides, for the outbox and the admin's retry alike. Both settings are
    looked up per call, cheaply: ``get_conf`` is read once per process (again only when a test
    overrides ``settings.NOTIFICATIONS``), and tests switch eager mode on and off.
    """
    from notifications.tasks import dispatch

    if dispatch.app.conf.task_always_eager or not get_conf().publish_in_background:
        _publish(groups)
    else:
        publisher.submit(groups)
