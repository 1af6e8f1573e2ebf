"""The webhook endpoints: authenticate, store, answer 202 — nothing is applied in the request.

Plain Django views rather than DRF: the signature is over the raw bytes, so the body must be
read exactly as sent, before any parser touches it, and no session or CSRF applies to a sender
that proves itself with the integration's secret. Errors use the API's problem+json shape.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from gatekeeper.api_errors import problem_response
from integrations import services
from integrations.models import Integration, IntegrationKind

MAX_BODY_BYTES = 1024 * 1024


def _problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> JsonResponse:
    response = problem_response(status, slug, title, detail, extra.pop("errors", None))
    for header, value in extra.items():
        response[header] = value
    return response


def _unauthorized(detail: str) -> JsonResponse:
    return _problem(401, "not-authenticated", "Not authenticated", detail)


def signature_for(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the raw body>``: what Jira sends in X-Hub-Signature."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _signature_ok(header: str | None, secret: str, body: bytes) -> bool:
    if not header:
        return False
    return hmac.compare_digest(header.strip().encode(), signature_for(secret, body).encode())


def _read(request: HttpRequest) -> tuple[bytes | None, JsonResponse | None]:
    too_big = _problem(
        413, "payload-too-large", "Payload too large", f"The body exceeds {MAX_BODY_BYTES} bytes."
    )
    try:
        if int(request.headers.get("Content-Length") or 0) > MAX_BODY_BYTES:
            return None, too_big
    except ValueError:
        return None, _problem(400, "bad-request", "Bad request", "Invalid Content-Length.")
    try:
        body = request.body
    except RequestDataTooBig:
        return None, too_big
    if len(body) > MAX_BODY_BYTES:
        return None, too_big
    return body, None


def _json(body: bytes) -> tuple[dict[str, Any] | None, JsonResponse | None]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, _problem(400, "invalid-json", "Invalid JSON", f"The body is not JSON: {exc}")
    if not isinstance(data, dict):
        return None, _problem(400, "invalid-json", "Invalid JSON", "The body must be an object.")
    return data, None


def _lookup(kind: str, ref: str) -> tuple[Integration | None, JsonResponse | None]:
    integration = services.integration_for_webhook(kind=kind, ref=ref)
    if integration is None:
        return None, _problem(404, "not-found", "Not found", "No such active integration.")
    return integration, None


def _accepted(delivery: Any, created: bool) -> JsonResponse:
    return JsonResponse(
        {
            "delivery": delivery.pk,
            "delivery_id": delivery.delivery_id,
            "status": delivery.status,
            "duplicate": not created,
        },
        status=202,
    )


@csrf_exempt
@require_POST
def jira_webhook(request: HttpRequest, ref: str) -> JsonResponse:
    """Jira Cloud admin webhook; see docs/integrate-jira.md."""
    integration, error = _lookup(IntegrationKind.JIRA, ref)
    if error is not None:
        return error
    assert integration is not None
    body, error = _read(request)
    if error is not None:
        return error
    assert body is not None
    # Verified before parsing: an unauthenticated sender learns nothing about the body's shape.
    if not _signature_ok(request.headers.get("X-Hub-Signature"), integration.secret, body):
        return _unauthorized("Missing or wrong X-Hub-Signature (sha256=HMAC of the body).")
    data, error = _json(body)
    if error is not None:
        return error
    assert data is not None
    delivery_id = (request.headers.get("X-Atlassian-Webhook-Identifier") or "").strip()
    if not delivery_id or len(delivery_id) > 200:
        return _problem(
            400,
            "validation-error",
            "Invalid input",
            "X-Atlassian-Webhook-Identifier is required (at most 200 characters).",
        )
    event_type = data.get("webhookEvent")
    delivery, created = services.inbound_receive(
        integration=integration,
        delivery_id=delivery_id,
        event_type=event_type if isinstance(event_type, str) else "",
        body=data,
    )
    return _accepted(delivery, created)


def _servicenow_authenticated(request: HttpRequest, secret: str, body: bytes) -> bool:
    signature = request.headers.get("X-Gatekeeper-Signature")
    if signature:
        return _signature_ok(signature, secret, body)
    given = request.headers.get("X-Gatekeeper-Secret") or ""
    return bool(given) and hmac.compare_digest(given.encode(), secret.encode())


@csrf_exempt
@require_POST
def servicenow_webhook(request: HttpRequest, ref: str) -> JsonResponse:
    """ServiceNow business-rule REST message; see docs/integrate-jira.md for the shape."""
    integration, error = _lookup(IntegrationKind.SERVICENOW, ref)
    if error is not None:
        return error
    assert integration is not None
    body, error = _read(request)
    if error is not None:
        return error
    assert body is not None
    if not _servicenow_authenticated(request, integration.secret, body):
        return _unauthorized(
            "Missing or wrong X-Gatekeeper-Signature (sha256=HMAC of the body) or "
            "X-Gatekeeper-Secret."
        )
    data, error = _json(body)
    if error is not None:
        return error
    assert data is not None
    # sys_id + updated_on identify one change of one record: the business rule may resend it.
    errors = {
        name: ["required, a non-empty string"]
        for name in ("sys_id", "updated_on")
        if not isinstance(data.get(name), str) or not data[name].strip()
    }
    if errors:
        return _problem(
            400, "validation-error", "Invalid input", "The body has invalid fields.", errors=errors
        )
    delivery_id = f"{data['sys_id'].strip()}:{data['updated_on'].strip()}"[:200]
    table = data.get("table")
    delivery, created = services.inbound_receive(
        integration=integration,
        delivery_id=delivery_id,
        event_type=f"servicenow:{table}" if isinstance(table, str) else "servicenow",
        body=data,
    )
    return _accepted(delivery, created)
