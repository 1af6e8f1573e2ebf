"""Readiness (``/readyz``): can this process do its work now? Liveness stays ``/healthz``.

A container orchestrator restarts a process whose liveness fails, but only stops sending
traffic to one whose readiness fails: a database being migrated or a broker restarting must not
get every web process killed, so the two probes are separate. Readiness checks (django-health-
check) the database answers and has no unapplied migration, the Celery broker accepts a
connection, and the cache round-trips a value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView


@dataclasses.dataclass
class DatabaseMigrated(HealthCheck):
    """Every migration on disk is applied: code newer than its schema is not ready."""

    alias: str = "default"

    async def run(self) -> None:
        # Thread-sensitive: runs where the request's own connection lives.
        await sync_to_async(self._check)()

    def _check(self) -> None:
        try:
            executor = MigrationExecutor(connections[self.alias])
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except DatabaseError as exc:
            raise ServiceUnavailable("database unreachable") from exc
        if plan:
            raise ServiceUnavailable(f"{len(plan)} unapplied migration(s)")


@dataclasses.dataclass
class CeleryBroker(HealthCheck):
    """The broker accepts a connection (not that a worker is up: the outbox survives a worker
    outage, pending deliveries wait for the redispatch sweep)."""

    timeout: dt.timedelta = dataclasses.field(default=dt.timedelta(seconds=3), repr=False)

    def run(self) -> None:
        from gatekeeper.celery import app

        try:
            with app.connection_for_write() as connection:
                connection.ensure_connection(
                    max_retries=1, interval_start=0, interval_step=0, timeout=2
                )
        except Exception as exc:  # kombu raises a transport's own errors
            raise ServiceUnavailable("broker unreachable") from exc


class ReadinessView(HealthCheckView):
    checks = (
        "health_check.checks.Database",
        DatabaseMigrated,
        CeleryBroker,
        "health_check.checks.Cache",
    )
