"""Celery's Django fix-up, except that a worker keeps its database connection between tasks.

Celery's own fix-up (``celery.fixups.django``, since celery/celery#9824) closes every database
connection before and after every task, so each task pays for a new PostgreSQL session: a
backend process forked on the server, authentication, Django's connection set-up. For the
outbox's one-delivery tasks that was most of their cost (the delivery bench opened one session
per delivery; bench/delivery/README.md).

Celery stopped reusing connections because ``close_if_unusable_or_obsolete`` cannot always tell
a broken connection, for instance one whose query was interrupted by a signal (a soft time
limit) without Django noticing. Here a connection is kept only when that cannot have happened:

- after a task that **succeeded**, the connection gets the same treatment as after a web
  request (``close_if_unusable_or_obsolete``: closed if it was left inside a transaction, if an
  error touched it and it no longer answers, or once it is ``CONN_MAX_AGE`` old);
- after any other outcome (failure, retry, a rejected or ignored task) every connection is
  closed, as Celery does;
- the first query of each task checks the kept connection first (``CONN_HEALTH_CHECKS``, on for
  PostgreSQL in settings), so one the server dropped in between (a restart, an idle timeout) is
  replaced before the task uses it;
- a task killed by its hard time limit takes its pool process, and the connection, with it.

Everything else (closing the parent's connections in a forked pool child, the cache, beat) is
Celery's fix-up unchanged.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, states
from celery.fixups.django import DjangoFixup, DjangoWorkerFixup


class KeepConnectionWorkerFixup(DjangoWorkerFixup):
    def on_task_prerun(self, sender: Any, **kwargs: Any) -> None:
        if not getattr(sender.request, "is_eager", False):
            self.close_unusable_database()

    def on_task_postrun(self, sender: Any, state: str | None = None, **kwargs: Any) -> None:
        if getattr(sender.request, "is_eager", False):
            return
        if state == states.SUCCESS:
            self.close_unusable_database()
        else:
            self._close_database()
        self.close_cache()

    def close_unusable_database(self) -> None:
        """Django's ``close_old_connections``; falls back to Celery's close-all if that fails."""
        try:
            for conn in self._db.connections.all(initialized_only=True):
                conn.close_if_unusable_or_obsolete()
        except (*self.interface_errors, self.DatabaseError):
            self._close_database()


class KeepConnectionFixup(DjangoFixup):
    _worker_fixup: DjangoWorkerFixup | None

    @property
    def worker_fixup(self) -> DjangoWorkerFixup:
        # Made on first use, as Celery's: its constructor reads the app's configuration.
        if self._worker_fixup is None:
            self._worker_fixup = KeepConnectionWorkerFixup(self.app)
        return self._worker_fixup

    @worker_fixup.setter
    def worker_fixup(self, value: DjangoWorkerFixup) -> None:
        self._worker_fixup = value


def fixup(app: Celery) -> DjangoFixup | None:
    """The app's ``fixups`` entry, in place of Celery's ``celery.fixups.django:fixup`` (installed
    under the same condition: a Django settings module is set)."""
    if os.environ.get("DJANGO_SETTINGS_MODULE") and "django" not in app.loader_cls.lower():
        return KeepConnectionFixup(app).install()
    return None
