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

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None  # unauthenticated calls are refused before any work
        if isinstance(request.auth, AuthToken):
            ident = f"token:{request.auth.token_key}"
        else:
            ident = f"user:{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class WriteRateThrottle(CallerRateThrottle):
    """A tighter budget for actions (every POST runs a transaction and may notify people)."""

    scope = "write"

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return super().allow_request(request, view)
