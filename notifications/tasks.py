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
    # Above the longest chunk (10 sends, 10 s timeout each): a hung send is killed, the message is
    # rejected back to the queue, and the claim's lease lets the sweep retry it.
    time_limit=300,
)
def dispatch(delivery_ids: list[int]) -> list[str]:
    return [services.delivery_attempt(delivery_id=i).status for i in delivery_ids]


@app.task(name="notifications.redispatch", time_limit=120)
def redispatch() -> int:
    # A queued message older than a couple of sweeps is superseded by the next sweep's own.
    return services.redispatch(expires=300)
