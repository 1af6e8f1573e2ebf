from __future__ import annotations

from django.db import models


class Event(models.Model):
    """An outbox row, written in the same transaction as the change that caused it.

    ``key`` is the idempotency key: the same fact (e.g. "milestone 7 overdue, level 1") can only
    ever be recorded once, whichever worker or sweep tries to record it.
    """

    type = models.CharField(max_length=64, db_index=True)
    key = models.CharField(max_length=200, unique=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} [{self.key}]"
