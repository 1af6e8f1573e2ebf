"""Retry timing shared by the outbox (notifications) and the inbox (integrations)."""

from __future__ import annotations

import random


def backoff_seconds(
    attempt: int, *, base: float, maximum: float, retry_after: float | None = None
) -> float:
    """Delay before the attempt after ``attempt`` (1-based): exponential with "equal jitter".

    Half the step is fixed so retries never bunch up at zero, half is random so many items
    failing together (an endpoint outage, a database hiccup) do not come back in lock-step. A
    receiver's Retry-After is honoured as a floor. Everything is capped at ``maximum``, so a
    hostile or silly Retry-After cannot park an item for days.
    """
    step = min(maximum, base * 2 ** max(0, attempt - 1))
    delay = step / 2 + random.uniform(0, step / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, maximum)
