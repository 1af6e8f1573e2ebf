"""Request budgets per token (or per person for browser sessions), kept in the default cache.

Rates are read on every request rather than once at import (DRF's default), so settings can
change them without a restart of the test process.
"""

from __future__ import annotations

from typing import Any

from knox.models import AuthToken
from rest_framework import throttling
from rest_framework.settings import api_settings


class _LiveRate:
    scope: str

    def get_rate(self) -> str | None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return None if rate is None else str(rate)


class CallerRateThrottle(_LiveRate, throttling.UserRateThrottle):
    """One budget per token, so one noisy integration doesn't starve its owner's other tokens."""

    scope = "caller"
    num_requests: int  # set from the rate by DRF's __init__
    duration: int

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None  # unauthenticated calls are refused before any work
        if isinstance(request.auth, AuthToken):
            ident = f"token:{request.auth.token_key}"
        else:
            ident = f"user:{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def applies(self, request: Any) -> bool:
        return self.rate is not None

    def decide(self, history: list[float], now: float) -> bool:
        """DRF's sliding window on a history read beforehand; True records this request."""
        self.history, self.now = history, now
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()  # type: ignore[no-any-return]
        self.history.insert(0, self.now)
        return True


class WriteRateThrottle(CallerRateThrottle):
    """A tighter budget for actions (every POST runs a transaction and may notify people)."""

    scope = "write"

    def applies(self, request: Any) -> bool:
        return request.method not in ("GET", "HEAD", "OPTIONS") and super().applies(request)

    def allow_request(self, request: Any, view: Any) -> bool:
        if not self.applies(request):
            return True
        return super().allow_request(request, view)


def refused_waits(throttles: list[Any], request: Any, view: Any) -> list[float | None]:
    """Run a view's throttles as DRF's ``check_throttles`` does (each one that allows records
    the request, even when another refuses), with one cache read and one write for all of them.

    DRF reads and writes each throttle's history on its own: four Redis round trips for a
    POST. Here the histories of ours are read with one ``get_many`` (MGET) and written with one
    ``set_many`` (a pipeline) when there are several, or a plain get/set when there is one.
    The window and the stored histories are DRF's, so budgets carry over a deploy; the read and
    the write were never atomic, and are not now. Throttles of other classes run as DRF runs
    them. Returns the wait of each throttle that refused (None where it can't say).
    """
    waits: list[float | None] = []
    pending: dict[str, CallerRateThrottle] = {}
    for throttle in throttles:
        if not isinstance(throttle, CallerRateThrottle):
            if not throttle.allow_request(request, view):
                waits.append(throttle.wait())
            continue
        if not throttle.applies(request):
            continue
        key = throttle.get_cache_key(request, view)
        if key is not None:
            throttle.key = key
            pending[key] = throttle
    if not pending:
        return waits
    cache = next(iter(pending.values())).cache
    if len(pending) == 1:
        (key,) = pending
        histories = {key: cache.get(key, [])}
    else:
        histories = cache.get_many(list(pending))
    now = next(iter(pending.values())).timer()
    allowed: dict[int, dict[str, list[float]]] = {}  # by window length: set_many takes one
    for key, throttle in pending.items():
        if throttle.decide(histories.get(key, []), now):
            allowed.setdefault(throttle.duration, {})[key] = throttle.history
        else:
            waits.append(throttle.wait())
    for duration, writes in allowed.items():
        if len(writes) == 1:
            ((key, history),) = writes.items()
            cache.set(key, history, duration)
        else:
            cache.set_many(writes, duration)
    return waits


class BatchedThrottlesMixin:
    """For DRF views: ``check_throttles`` through ``refused_waits``."""

    def check_throttles(self, request: Any) -> None:
        view: Any = self
        waits = refused_waits(view.get_throttles(), request, view)
        if waits:
            durations = [wait for wait in waits if wait is not None]
            view.throttled(request, max(durations, default=None))
