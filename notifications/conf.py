"""Delivery tuning: ``settings.NOTIFICATIONS`` (tests override it) over environment defaults.

Retries are scheduled in the database (``Delivery.next_attempt_at``, picked up by the redispatch
sweep), never as broker ETAs or countdowns, so no message waits in Redis past its visibility
timeout; ``notifications.checks`` still verifies the timeout exceeds every delay and lease here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from gatekeeper.env import env_bool, env_int

# The ceiling for a single backoff step; a longer one would also let a retry outlive
# the broker's visibility timeout if a future change ever moved retries into the broker.
RETRY_DELAY_CEILING_SECONDS = 30 * 60
# A message only wakes a worker sooner than the sweep would; held for seconds, it would not.
MAX_DISPATCH_LINGER_MS = 1000


@dataclass(frozen=True)
class DeliveryConf:
    max_attempts: int
    retry_base_seconds: int
    retry_max_seconds: int
    claim_lease_seconds: int
    webhook_timeout_seconds: int
    redispatch_batch_size: int
    # A delivery younger than this is left to its own on-commit dispatch message by the sweep,
    # so a healthy queue is not flooded with duplicate messages every sweep.
    redispatch_grace_seconds: int
    # How long the sweep leaves a delivery it queued before queuing it again: a message still
    # waiting behind a backlog is not duplicated each sweep, and one the broker lost is found
    # again after this long.
    redispatch_requeue_seconds: int
    # Dispatch messages are published by a thread of their own, not by the thread that
    # committed (``notifications.publisher``).
    publish_in_background: bool
    # How long the publisher thread, once a commit's message is waiting, waits for more commits
    # to merge with it (``notifications.publisher``); 0 publishes what is waiting at once.
    dispatch_linger_ms: int


def _defaults() -> dict[str, int | bool]:
    return {
        "MAX_ATTEMPTS": env_int("GATEKEEPER_DELIVERY_MAX_ATTEMPTS", 8, minimum=1),
        "RETRY_BASE_SECONDS": env_int("GATEKEEPER_DELIVERY_RETRY_BASE_SECONDS", 30, minimum=1),
        "RETRY_MAX_SECONDS": env_int(
            "GATEKEEPER_DELIVERY_RETRY_MAX_SECONDS", RETRY_DELAY_CEILING_SECONDS, minimum=1
        ),
        "CLAIM_LEASE_SECONDS": env_int("GATEKEEPER_DELIVERY_LEASE_SECONDS", 300, minimum=1),
        "WEBHOOK_TIMEOUT_SECONDS": 10,
        "REDISPATCH_BATCH_SIZE": env_int("GATEKEEPER_REDISPATCH_BATCH_SIZE", 500, minimum=1),
        "REDISPATCH_GRACE_SECONDS": env_int("GATEKEEPER_REDISPATCH_GRACE_SECONDS", 60, minimum=0),
        "REDISPATCH_REQUEUE_SECONDS": env_int(
            "GATEKEEPER_REDISPATCH_REQUEUE_SECONDS", 60, minimum=1
        ),
        "PUBLISH_IN_BACKGROUND": env_bool("GATEKEEPER_DISPATCH_PUBLISH_IN_BACKGROUND", True),
        "DISPATCH_LINGER_MS": env_int("GATEKEEPER_DISPATCH_LINGER_MS", 20, minimum=0),
    }


# Read once per process: every commit (the publisher) and every delivery asks for it. Dropped
# when a test overrides ``settings.NOTIFICATIONS`` (Django's ``setting_changed``); the
# environment is read at start-up only.
_conf: DeliveryConf | None = None


def get_conf() -> DeliveryConf:
    global _conf
    conf = _conf
    if conf is None:
        conf = _conf = _read_conf()
    return conf


def _forget_conf(*, setting: str, **kwargs: Any) -> None:
    global _conf
    if setting == "NOTIFICATIONS":
        _conf = None


setting_changed.connect(_forget_conf)


def _read_conf() -> DeliveryConf:
    values = {**_defaults(), **getattr(settings, "NOTIFICATIONS", {})}
    conf = DeliveryConf(
        max_attempts=int(values["MAX_ATTEMPTS"]),
        retry_base_seconds=int(values["RETRY_BASE_SECONDS"]),
        retry_max_seconds=int(values["RETRY_MAX_SECONDS"]),
        claim_lease_seconds=int(values["CLAIM_LEASE_SECONDS"]),
        webhook_timeout_seconds=int(values["WEBHOOK_TIMEOUT_SECONDS"]),
        redispatch_batch_size=int(values["REDISPATCH_BATCH_SIZE"]),
        redispatch_grace_seconds=int(values["REDISPATCH_GRACE_SECONDS"]),
        redispatch_requeue_seconds=int(values["REDISPATCH_REQUEUE_SECONDS"]),
        publish_in_background=bool(values["PUBLISH_IN_BACKGROUND"]),
        dispatch_linger_ms=int(values["DISPATCH_LINGER_MS"]),
    )
    if not 0 <= conf.dispatch_linger_ms <= MAX_DISPATCH_LINGER_MS:
        raise ImproperlyConfigured(
            f"GATEKEEPER_DISPATCH_LINGER_MS={conf.dispatch_linger_ms} must be between 0 and "
            f"{MAX_DISPATCH_LINGER_MS}"
        )
    if conf.retry_max_seconds > RETRY_DELAY_CEILING_SECONDS:
        raise ImproperlyConfigured(
            f"GATEKEEPER_DELIVERY_RETRY_MAX_SECONDS={conf.retry_max_seconds} exceeds "
            f"{RETRY_DELAY_CEILING_SECONDS} (30 minutes)"
        )
    return conf
