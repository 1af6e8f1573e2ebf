"""The one entry point through which other apps emit side effects (DESIGN.md §2 Outbox)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from notifications.models import Event


def emit(type: str, payload: dict[str, Any], *, key: str) -> Event | None:
    """Record an event in the caller's transaction; returns None if ``key`` was already emitted.

    Must run inside the transaction of the change it reports, so a rollback takes the event too.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("notifications.outbox.emit must be called inside transaction.atomic()")
    try:
        with transaction.atomic():
            event = Event.objects.create(type=type, key=key, payload=payload)
    except IntegrityError:
        return None
    return event
