"""Celery tasks: thin, ids as arguments, safe to run twice (CONVENTIONS.md §4).

Apply failures are not Celery retries: they are recorded on the delivery with its next attempt
time, and the ``redispatch`` sweep applies it again then (no long ETAs in the broker).
"""

from __future__ import annotations

from django.db import DatabaseError

from gatekeeper.celery import app
from integrations import services


@app.task(
    name="integrations.apply",
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=3,
    time_limit=120,
)
def apply(delivery_id: int) -> str:
    return services.inbound_apply(delivery_id=delivery_id).status


@app.task(name="integrations.redispatch", time_limit=120)
def redispatch() -> int:
    # A queued message older than a couple of sweeps is superseded by the next sweep's own.
    return services.inbound_redispatch(expires=300)
