"""Celery tasks: thin, arguments are ids, safe to run twice (CONVENTIONS.md §4).

Transport failures are not Celery retries: they are recorded on the delivery with its next
attempt time, and the ``redispatch`` sweep sends it again then. Only database trouble (which
says nothing about the receiver) is retried here, briefly.
"""

from __future__ import annotations

from django.db import DatabaseError

from gatekeeper.celery import app
from notifications import services


@app.task(
    name="notifications.dispatch",
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=3,
    # Well above a send's timeouts (10 s to connect, 10 s between bytes) and a group's send
    # budget (services.GROUP_SEND_BUDGET_SECONDS, 60 s, after which a group re-queues its
    # rest). A send hung past it is killed; its message is rejected back to the queue, and
    # once the claim's lease runs out the sweep retries the group's unfinished deliveries.
    time_limit=120,
)
def dispatch(delivery_ids: list[int]) -> list[str]:
    # A group: one endpoint's deliveries, or people's, from one transaction or one sweep.
    return [r.status for r in services.deliveries_attempt(delivery_ids=delivery_ids)]


@app.task(name="notifications.redispatch", time_limit=120)
def redispatch() -> int:
    # A queued message older than a couple of sweeps is superseded by the next sweep's own.
    return services.redispatch(expires=300)
