"""Celery's floor on this machine and broker: a task that does nothing with dispatch's arguments."""

from __future__ import annotations

from gatekeeper.celery import app


@app.task(name="bench.noop")
def noop(delivery_ids: list[int]) -> None:
    return None
