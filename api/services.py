"""Writes of the API's own data: idempotency keys (claim, complete, release, purge) and the
purge of expired tokens."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping

from django.db import IntegrityError, transaction
from django.utils import timezone
from knox.models import AuthToken

from api.models import IdempotencyKey
from gatekeeper.env import env_int
from gatekeeper.types import User

# The draft asks servers to say how long keys live; we promise at least a day, so a client
# retrying across a night's outage still gets its first answer.
IDEMPOTENCY_TTL = dt.timedelta(hours=env_int("API_IDEMPOTENCY_TTL_HOURS", 24, minimum=24))
# A claim still in flight after this long belongs to a process that died mid-request (no web
# request lives that long behind gunicorn's timeout); a retry may take it over.
IDEMPOTENCY_ABANDONED_AFTER = dt.timedelta(
    seconds=env_int("API_IDEMPOTENCY_ABANDONED_SECONDS", 300, minimum=30)
)


class ClaimOutcome(enum.Enum):
    CLAIMED = "claimed"  # the caller runs the action and then completes or releases the claim
    REPLAY = "replay"  # a stored response of the same request
    MISMATCH = "mismatch"  # the key was used for another request
    IN_FLIGHT = "in_flight"  # the first request with this key has not answered yet


def idempotency_key_claim(
    *,
    owner: User,
    key: str,
    fingerprint: str,
    method: str,
    path: str,
    now: dt.datetime | None = None,
) -> tuple[ClaimOutcome, IdempotencyKey | None]:
    """Claim ``key`` for ``owner`` by INSERT, or say why the request must not run. The record
    comes back with every outcome but the IN_FLIGHT of a pathological race (see the end).

    The INSERT commits in its own transaction before the action runs (the API runs without
    ATOMIC_REQUESTS), so a concurrent request with the same key, in any process, meets the
    unique constraint and sees the claim in flight instead of running the action again.
    """
    now = now or timezone.now()
    record: IdempotencyKey | None = None
    for _ in range(3):  # an expired row or a concurrent purge makes way for one more INSERT
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(
                    owner=owner,
                    key=key,
                    fingerprint=fingerprint,
                    method=method,
                    path=path,
                    claimed_at=now,
                    expires_at=now + IDEMPOTENCY_TTL,
                )
            return ClaimOutcome.CLAIMED, record
        except IntegrityError:
            pass
        record = IdempotencyKey.objects.filter(owner=owner, key=key).first()
        if record is None:
            continue
        if record.expires_at <= now:
            IdempotencyKey.objects.filter(pk=record.pk, expires_at__lte=now).delete()
            continue
        if record.fingerprint != fingerprint:
            return ClaimOutcome.MISMATCH, record
        if not record.in_flight:
            return ClaimOutcome.REPLAY, record
        if record.claimed_at <= now - IDEMPOTENCY_ABANDONED_AFTER:
            # Conditional UPDATE: of two retries racing for an abandoned claim, one wins.
            taken = IdempotencyKey.objects.filter(
                pk=record.pk, status_code__isnull=True, claimed_at=record.claimed_at
            ).update(claimed_at=now)
            if taken:
                record.claimed_at = now
                return ClaimOutcome.CLAIMED, record
        return ClaimOutcome.IN_FLIGHT, record
    # Only a pathological race (the row purged and re-created between every attempt) gets here.
    return ClaimOutcome.IN_FLIGHT, record


def idempotency_key_complete(
    *,
    record: IdempotencyKey,
    status_code: int,
    body: bytes,
    headers: Mapping[str, str],
    now: dt.datetime | None = None,
) -> bool:
    """Store the response of a claimed request; later requests with its key replay it."""
    now = now or timezone.now()
    stored = IdempotencyKey.objects.filter(
        pk=record.pk, status_code__isnull=True, claimed_at=record.claimed_at
    ).update(
        status_code=status_code,
        response_body=body,
        response_headers=dict(headers),
        completed_at=now,
        expires_at=now + IDEMPOTENCY_TTL,
    )
    return bool(stored)


def idempotency_key_release(*, record: IdempotencyKey) -> None:
    """Drop a claim whose request failed on our side (5xx), so a retry can run it."""
    IdempotencyKey.objects.filter(
        pk=record.pk, status_code__isnull=True, claimed_at=record.claimed_at
    ).delete()


def idempotency_keys_purge_expired(*, now: dt.datetime | None = None) -> int:
    """Delete the keys past their expiry; returns how many went."""
    deleted, _ = IdempotencyKey.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted


def api_tokens_purge_expired(*, now: dt.datetime | None = None) -> int:
    """Delete the API tokens past their expiry (they are refused anyway); returns how many."""
    deleted, _ = AuthToken.objects.filter(expiry__lt=now or timezone.now()).delete()
    return deleted
