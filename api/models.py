"""Idempotency keys of POSTs under /api/v1/ (the IETF draft "The Idempotency-Key HTTP Header
Field"): one row per (caller, key), claimed before the action runs and completed with the response.

In PostgreSQL rather than the cache so a key survives restarts and holds across web processes:
the unique constraint is what makes two concurrent first requests with one key run the action
once.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class IdempotencyKey(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", editable=False
    )
    key = models.CharField(max_length=255)
    # sha256 of method, path and the canonical JSON body: the same key with another request is
    # a client bug (422), never a replay of someone else's answer.
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2048)
    # Refreshed when an abandoned claim (its process died mid-request) is taken over.
    claimed_at = models.DateTimeField()
    # Null while the first request is still in flight.
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(default=b"", editable=False)
    response_headers = models.JSONField(default=dict, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="api_idempotency_owner_key"),
        ]
        verbose_name = "idempotency key"

    def __str__(self) -> str:
        return f"{self.key} ({self.method} {self.path})"

    @property
    def in_flight(self) -> bool:
        return self.status_code is None
