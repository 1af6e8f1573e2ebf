"""``Idempotency-Key`` on every POST under /api/v1/ (IETF draft "The Idempotency-Key HTTP Header
Field"), plugged into the API's base view as a mixin.

- First request with a key: claimed (api.services.idempotency_key_claim), run, and its response
  stored, 4xx included: the same request would be refused the same way.
- Same key, same request (method, path, canonical JSON body): the stored response, with
  ``Idempotent-Replayed: true``; the action does not run again.
- Same key, another request: 422 ``idempotency-key-reuse``.
- Same key while the first is still running: 409 ``idempotency-key-in-flight`` + Retry-After.
- A 5xx (or an exception) drops the claim, so the client's retry runs the action.
- Keys belong to the caller: one user's key never replays another's response.
- No header: the request runs exactly as without this module.

The claim happens after authentication, permissions and throttling (DRF's ``initial``), so a
401/403/429 stores nothing and a caller can't occupy keys without being let in.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, cast

from django.http import HttpResponse, HttpResponseBase
from rest_framework.request import Request
from rest_framework.response import Response

from api import services
from api.models import IdempotencyKey
from api.openapi import IDEMPOTENCY_HEADER as HEADER
from api.openapi import IDEMPOTENCY_MAX_KEY_LENGTH as MAX_KEY_LENGTH
from api.services import ClaimOutcome
from gatekeeper.errors import Conflict, DomainError, ValidationFailed
from gatekeeper.types import signed_in_user

REPLAYED_HEADER = "Idempotent-Replayed"
IN_FLIGHT_RETRY_AFTER_SECONDS = 1
# An sf-string's characters (RFC 8941: printable ASCII); the draft sends the key as one, quoted.
_KEY = re.compile(r"[\x20-\x7e]+")
# Headers that belong to the answer itself; Allow, Vary and the like are recomputed per request.
_STORED_HEADERS = ("Content-Type", "Location", "Content-Location", "ETag", "Last-Modified", "Link")


class IdempotencyKeyInvalid(ValidationFailed):
    type_slug = "idempotency-key-invalid"
    title = "Invalid Idempotency-Key"


class IdempotencyKeyReuse(DomainError):
    status_code = 422
    type_slug = "idempotency-key-reuse"
    title = "Idempotency-Key reused"


class IdempotencyKeyInFlight(Conflict):
    type_slug = "idempotency-key-in-flight"
    title = "Request with this Idempotency-Key in progress"


class _Replay(Exception):
    """Carries a stored response out of ``initial()`` past the handler."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__("replay")
        self.response = response


def parse_key(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value:
        raise IdempotencyKeyInvalid(f"{HEADER} must not be empty.")
    if len(value) > MAX_KEY_LENGTH:
        raise IdempotencyKeyInvalid(f"{HEADER} must be at most {MAX_KEY_LENGTH} characters.")
    if not _KEY.fullmatch(value):
        raise IdempotencyKeyInvalid(f"{HEADER} may contain printable ASCII characters only.")
    return value


def request_fingerprint(request: Request) -> str:
    """sha256 of method, path with query and the body as canonical JSON (key order and
    whitespace don't matter; values do)."""
    body = json.dumps(
        request.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    digest = hashlib.sha256()
    for part in (request.method or "", request.get_full_path(), body):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _replay(record: IdempotencyKey) -> HttpResponse:
    assert record.status_code is not None
    response = HttpResponse(bytes(record.response_body), status=record.status_code)
    for name, value in record.response_headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


class IdempotentPostMixin:
    """For DRF views: the first base class of the API's viewsets, so every POST action gets it."""

    idempotent_posts = True  # read by api.openapi.ApiAutoSchema to document the header
    _idempotency_claim: IdempotencyKey | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self._idempotency_claim = None
        raw = request.META.get("HTTP_IDEMPOTENCY_KEY")
        if request.method != "POST" or raw is None or not request.user.is_authenticated:
            return
        key = parse_key(raw)
        outcome, record = services.idempotency_key_claim(
            owner=signed_in_user(request),
            key=key,
            fingerprint=request_fingerprint(request),
            method=request.method,
            path=request.get_full_path(),
        )
        if outcome is ClaimOutcome.CLAIMED:
            self._idempotency_claim = record
        elif outcome is ClaimOutcome.REPLAY:
            assert record is not None
            raise _Replay(_replay(record))
        elif outcome is ClaimOutcome.MISMATCH:
            raise IdempotencyKeyReuse(
                f"This {HEADER} was used for a different request (method, path or body); "
                "use a new key for a new request."
            )
        else:
            raise IdempotencyKeyInFlight(
                f"A request with this {HEADER} is still being processed; retry shortly."
            )

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, _Replay):
            # The stored bytes, already rendered: a plain HttpResponse that DRF passes through.
            return cast(Response, exc.response)
        response: Response = super().handle_exception(exc)  # type: ignore[misc]
        if isinstance(exc, IdempotencyKeyInFlight):
            response["Retry-After"] = str(IN_FLIGHT_RETRY_AFTER_SECONDS)
        return response

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        record, self._idempotency_claim = self._idempotency_claim, None
        if record is None:
            return response
        if response.status_code >= 500 or getattr(response, "streaming", False):
            services.idempotency_key_release(record=record)
            return response
        render = getattr(response, "render", None)
        if callable(render):
            render()  # idempotent: Django's handler won't render it a second time
        services.idempotency_key_complete(
            record=record,
            status_code=response.status_code,
            body=response.content,
            headers={h: response[h] for h in _STORED_HEADERS if h in response},
        )
        return response

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc, no-any-return]
        except BaseException:
            # An exception DRF re-raised (or one from rendering): no response to replay.
            record, self._idempotency_claim = self._idempotency_claim, None
            if record is not None:
                services.idempotency_key_release(record=record)
            raise
