from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from programs import ports
from programs.ports import GateVerdict

# CI explores the same examples on every run, so a red build always reproduces; developers
# get fresh random examples (and Hypothesis's example database) locally.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


class StubGatePort:
    """Stands in for the gates app in tests of programs alone (DESIGN.md §2)."""

    def __init__(self) -> None:
        self.approved: set[tuple[int, str]] = set()

    def approve(self, initiative, target_stage: str) -> None:
        self.approved.add((initiative.pk, target_stage))

    def verdict(self, initiative, target_stage: str) -> GateVerdict:
        if (initiative.pk, target_stage) in self.approved:
            return GateVerdict(approved=True, review_id=None)
        return GateVerdict(approved=False, unmet=[f"the gate into {target_stage} is not approved"])


@pytest.fixture
def stage_budgets() -> Iterator[Any]:
    """Install stage budgets for a test; whatever was registered (gates') comes back after."""
    previous = ports._stage_budget

    def install(budgets: dict[str, Any]) -> None:
        ports.register_stage_budget(lambda stage, review_id: budgets.get(stage))

    yield install
    ports.register_stage_budget(previous)


@pytest.fixture
def gate_port() -> Iterator[StubGatePort]:
    previous = ports._port
    stub = StubGatePort()
    ports.register_gate_port(stub)
    yield stub
    ports.register_gate_port(previous)


@pytest.fixture
def warm_outbox(db) -> None:
    """The outbox's endpoint list read once, as a running process has it: a query budget then
    counts the steady state, not the first event after the endpoints changed (which reads them
    once more)."""
    from django.db import transaction

    from notifications.outbox import emit

    with transaction.atomic():
        emit("test.warm_up", {"recipients": []}, key="test.warm_up")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every transactional test restores the data migrations' rows after its flush.

    A transactional test ends by flushing the database, which would also delete the gate
    templates and groups the data migrations seeded, and every later test would then run on a
    database no real deployment has. serialized_rollback reloads them.
    """
    for item in items:
        marker = item.get_closest_marker("django_db")
        fixtures = set(getattr(item, "fixturenames", ()))
        transactional = bool(marker and marker.kwargs.get("transaction")) or bool(
            fixtures & {"transactional_db", "live_server"}
        )
        if transactional:
            kwargs = {**(marker.kwargs if marker else {}), "transaction": True}
            kwargs["serialized_rollback"] = True
            item.add_marker(pytest.mark.django_db(**kwargs), append=False)

    # Browser tests go last (after pytest-django's own ordering, hence trylast): Playwright's
    # event loop changes which connection object Django's context-local handler returns in
    # this thread, so tests after it would no longer find the serialized seed data.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Drop the per-run test databases of earlier runs on this host that were killed before
    they could clean up (their pid is gone), so an interrupted run leaves no lasting debris."""
    from django.conf import settings

    prefix = getattr(settings, "RUN_DB_PREFIX", None)
    if not prefix or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    import psycopg

    db = settings.DATABASES["default"]
    try:
        conn = psycopg.connect(
            host=db["HOST"],
            port=db["PORT"] or 5432,
            user=db["USER"],
            dbname="postgres",
            password=db.get("PASSWORD") or None,
            autocommit=True,
            connect_timeout=5,
        )
    except psycopg.OperationalError:
        return  # the server is down: the run itself will say so
    with conn:
        names = [
            row[0]
            for row in conn.execute(
                "select datname from pg_database where datname like %s", (prefix + "%",)
            )
        ]
        for name in names:
            pid = name[len(prefix) :].split("_")[0]
            if pid.isdigit() and not _alive(int(pid)):
                conn.execute(f'drop database if exists "{name}" with (force)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
