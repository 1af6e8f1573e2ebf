"""A worker keeps its database connection between tasks that succeeded, and only then
(gatekeeper.celery_django); Celery's own fix-up opened a PostgreSQL session per task."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from celery import states
from django.db import connection

from gatekeeper.celery import app
from gatekeeper.celery_django import KeepConnectionFixup, KeepConnectionWorkerFixup

pytestmark = pytest.mark.django_db(transaction=True)


def task(*, eager: bool = False) -> Any:
    """What Celery's task signals pass as ``sender``."""
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


@pytest.fixture
def fixup() -> KeepConnectionWorkerFixup:
    return KeepConnectionWorkerFixup(app)


def open_connection() -> Any:
    connection.ensure_connection()
    assert connection.connection is not None
    return connection.connection


def run_task(fixup: KeepConnectionWorkerFixup, state: str, *, eager: bool = False) -> None:
    fixup.on_task_prerun(sender=task(eager=eager))
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    fixup.on_task_postrun(sender=task(eager=eager), state=state)


def test_the_app_installs_the_fixup_that_keeps_connections():
    installed = [f for f in app._fixups if isinstance(f, KeepConnectionFixup)]
    assert len(installed) == 1
    assert isinstance(installed[0].worker_fixup, KeepConnectionWorkerFixup)


def test_a_task_that_succeeded_leaves_the_connection_for_the_next(fixup):
    kept = open_connection()
    run_task(fixup, states.SUCCESS)
    run_task(fixup, states.SUCCESS)
    assert connection.connection is kept


@pytest.mark.parametrize(
    "state", [states.FAILURE, states.RETRY, states.REJECTED, states.IGNORED, None]
)
def test_any_other_outcome_closes_it(fixup, state):
    open_connection()
    run_task(fixup, state)
    assert connection.connection is None


def test_a_connection_left_inside_a_transaction_is_closed_even_after_success(fixup):
    open_connection()
    fixup.on_task_prerun(sender=task())
    connection.set_autocommit(False)
    fixup.on_task_postrun(sender=task(), state=states.SUCCESS)
    assert connection.connection is None


def test_a_connection_the_server_dropped_is_replaced_before_the_next_task_uses_it(fixup):
    kept = open_connection()
    run_task(fixup, states.SUCCESS)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])

    # The next task's first query checks the kept connection (CONN_HEALTH_CHECKS) and reconnects.
    run_task(fixup, states.SUCCESS)
    assert connection.connection is not kept
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_eager_tasks_leave_connections_alone(fixup):
    kept = open_connection()
    run_task(fixup, states.FAILURE, eager=True)
    assert connection.connection is kept
