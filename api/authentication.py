"""Knox token authentication that refuses malformed credentials instead of crashing on them,
and counts every refused token against the address in django-axes, like a wrong password."""

from __future__ import annotations

import binascii
import functools
import re
from hmac import compare_digest
from typing import Any

from axes.conf import settings  # Django settings with axes defaults filled in
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_ip_address, get_cool_off
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from knox.models import get_token_model
from knox.settings import CONSTANTS, knox_settings
from knox.signals import token_expired
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header

from gatekeeper.compiled import CompiledRead, Param

# Knox issues hex strings; anything else (non-UTF-8 bytes, NUL, spaces) can't be a token and
# would otherwise reach the database query or the UTF-8 decode and turn into a 500.
_TOKEN = re.compile(rb"[0-9A-Za-z_-]{1,200}")

# Axes records failures under a "username". Token attempts get a label no real username can
# take (the colon is outside Django's username characters): 8 characters of the token, fewer
# than the 15 knox itself keeps in plain text, so an admin can tell which token keeps failing
# and the label gives nothing away.
API_TOKEN_LABEL = "api-token:"
_PREFIX_LENGTH = 8

# Asking axes whether an address is locked is a query on every token request. Its "allowed" is
# kept in the shared cache per address instead, and every failed sign-in from the address (a
# refused token or a wrong password: user_login_failed, as axes itself counts them) replaces it
# with a "failed" mark before that request is answered, so the next request asks the database
# again and a lockout applies from the very next request, as before. The mark outlives the
# cool-off and "allowed" is only ever added, never written over it: a check that read the
# database before a failure can't store a stale "allowed" after it. "allowed" also expires, so
# what no signal announces (an address newly blacklisted in the settings) is read within a
# minute. Only with a cache every process shares (Redis): a per-process cache would not see
# another process's failures.
_ADDRESS_KEY = "api-token-address:{}"
_ALLOWED, _FAILED = "allowed", "failed"
_ALLOWED_SECONDS = 60


class TooManyFailedLogins(exceptions.APIException):
    status_code = 429
    default_detail = "Too many failed sign-in attempts."
    default_code = "too_many_failed_logins"

    def __init__(self, wait: int) -> None:
        super().__init__(
            f"Too many failed sign-in attempts from this address; try again in {wait} seconds."
        )
        self.wait = wait  # DRF turns this into Retry-After


def axes_lockout_parameters(request_or_attempt: Any, credentials: dict[str, Any] | None) -> list:
    """Passwords lock a username or an address; tokens lock only the address.

    A guessed token names no account, so a per-label lockout would stop nothing, and the
    address-only check is the one cheap query every token request pays.
    """
    username = (credentials or {}).get("username") or getattr(request_or_attempt, "username", "")
    if isinstance(username, str) and username.startswith(API_TOKEN_LABEL):
        return ["ip_address"]
    return ["username", "ip_address"]


def _label(auth: list[bytes]) -> str:
    if len(auth) == 2 and _TOKEN.fullmatch(auth[1]):
        return API_TOKEN_LABEL + auth[1][:_PREFIX_LENGTH].decode("ascii")
    return API_TOKEN_LABEL + "malformed"


def _locked_out(request: HttpRequest) -> TooManyFailedLogins:
    cool_off = get_cool_off(request)
    # The API answers with its own problem+json; left set, this flag would make AxesMiddleware
    # swap that answer for the admin's HTML lockout page.
    request.axes_locked_out = False  # type: ignore[attr-defined]
    return TooManyFailedLogins(int(cool_off.total_seconds()) if cool_off else 0)


def _address_key(request: HttpRequest) -> str | None:
    if not isinstance(caches["default"], RedisCache):
        return None
    address = get_client_ip_address(request)
    return _ADDRESS_KEY.format(address) if address else None


def _address_allowed(request: HttpRequest, credentials: dict[str, Any]) -> bool:
    key = _address_key(request)
    if key is not None and cache.get(key) == _ALLOWED:
        return True
    if not AxesProxyHandler.is_allowed(request, credentials):
        return False
    if key is not None:
        cache.add(key, _ALLOWED, _ALLOWED_SECONDS)
    return True


def mark_failed_address(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """user_login_failed receiver (connected in ApiConfig.ready, before any request)."""
    http_request = getattr(request, "_request", request)
    key = _address_key(http_request) if http_request is not None else None
    if key is not None:
        cool_off = get_cool_off(http_request)
        seconds = int(cool_off.total_seconds()) if cool_off else 0
        # Past the cool-off: by then the failure no longer counts, and the next check says so.
        cache.set(key, _FAILED, seconds + _ALLOWED_SECONDS)


def _record_failure(request: HttpRequest, credentials: dict[str, Any]) -> bool:
    """Tell axes a sign-in failed; True when this failure (or an earlier one) locked the address."""
    user_login_failed.send(sender=TokenAuthentication, credentials=credentials, request=request)
    return bool(getattr(request, "axes_locked_out", False))


@functools.cache
def _tokens_under_key() -> CompiledRead[Any]:
    # The token model is swappable (knox's setting), so it is looked up once apps are loaded.
    model = get_token_model()
    key = Param("key", model._meta.get_field("token_key"))  # type: ignore[arg-type]
    return CompiledRead(model, lambda: model.objects.filter(token_key=key).select_related("user"))


class TokenAuthentication(KnoxTokenAuthentication):
    def authenticate(self, request: Any) -> Any:
        auth = get_authorization_header(request).split()
        prefix = self.authenticate_header(request).encode()
        if not auth or auth[0].lower() != prefix.lower() or not settings.AXES_ENABLED:
            return super().authenticate(request)  # not a token, or lockout switched off

        http_request: HttpRequest = getattr(request, "_request", request)
        credentials = {"username": _label(auth)}
        if not _address_allowed(http_request, credentials):
            # As the admin login does while locked: the token is not even looked at, and
            # axes decides (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT) whether the
            # attempt still counts and restarts the cool-off.
            if not settings.AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT:
                http_request.axes_locked_out = True  # type: ignore[attr-defined]
            _record_failure(http_request, credentials)
            raise _locked_out(http_request)
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            if _record_failure(http_request, credentials):
                raise _locked_out(http_request) from None
            raise

    def authenticate_credentials(self, token: bytes) -> Any:
        """Knox's own check (``knox.auth.TokenAuthentication.authenticate_credentials``), with
        the tokens under the presented key read by a statement compiled once per connection:
        building knox's queryset cost more CPU than running it, on every API call."""
        if not _TOKEN.fullmatch(token):
            raise exceptions.AuthenticationFailed("Invalid token.")
        text = token.decode()
        for auth_token in _tokens_under_key()(key=text[: CONSTANTS.TOKEN_KEY_LENGTH]):
            if self._cleanup_token(auth_token):
                continue
            try:
                digest = hash_token(text)
            except (TypeError, binascii.Error):
                raise exceptions.AuthenticationFailed("Invalid token.") from None
            if compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                return self.validate_user(auth_token)
        raise exceptions.AuthenticationFailed("Invalid token.")

    def _cleanup_token(self, auth_token: Any) -> bool:
        """Refuse (and delete) the presented token if it expired.

        Knox also reads every other token of the user on every request to delete expired ones:
        a query per API call, on the hot path of every integration. Those are deleted by the
        hourly ``api.purge_expired_tokens`` instead (an expired token is refused either way).
        """
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            username = auth_token.user.get_username()
            auth_token.delete()
            token_expired.send(sender=self.__class__, username=username, source="auth_token")
            return True
        return False


class TokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>`; tokens are issued by an administrator and expire.",
        }
