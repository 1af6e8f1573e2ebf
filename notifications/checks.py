"""Startup checks that the broker settings uphold the delivery guarantees (issue 4 §6)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

from notifications.conf import get_conf


@register()
def delivery_timing(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    conf = get_conf()
    problems: list[Any] = []
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    visibility = options.get("visibility_timeout")
    broker = str(getattr(settings, "CELERY_BROKER_URL", ""))
    if broker.startswith(("redis", "rediss")) and visibility is not None:
        longest = max(conf.retry_max_seconds, conf.claim_lease_seconds)
        if visibility <= longest:
            problems.append(
                Error(
                    f"Redis visibility_timeout ({visibility}s) must exceed the longest retry "
                    f"delay / claim lease ({longest}s), or an unacknowledged task would be "
                    "redelivered while its first worker still runs it.",
                    hint="Raise CELERY_VISIBILITY_TIMEOUT.",
                    id="notifications.E001",
                )
            )
    if conf.claim_lease_seconds <= conf.webhook_timeout_seconds:
        problems.append(
            Warning(
                f"The delivery claim lease ({conf.claim_lease_seconds}s) is not longer than the "
                f"webhook timeout ({conf.webhook_timeout_seconds}s): a slow but healthy send can "
                "be reclaimed and sent twice (receivers dedupe on webhook-id, but still).",
                hint="Raise GATEKEEPER_DELIVERY_LEASE_SECONDS.",
                id="notifications.W001",
            )
        )
    return problems
