"""One JSON error shape for every 4xx and 5xx (RFC 9457 style, DESIGN.md §2 Errors)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from gatekeeper.errors import DomainError

PROBLEM_BASE = "https://gatekeeper.dev/problems/"

logger = logging.getLogger(__name__)


PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_body(
    status: int, type_slug: str, title: str, detail: str, errors: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The one error shape: every 4xx/5xx of the API, the inbound webhooks and the middleware."""
    return {
        "type": PROBLEM_BASE + type_slug,
        "title": title,
        "status": status,
        "detail": detail,
        "errors": errors or {},
    }


def problem(
    status: int, type_slug: str, title: str, detail: str, errors: dict[str, Any] | None = None
) -> Response:
    body = problem_body(status, type_slug, title, detail, errors)
    return Response(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


def problem_response(
    status: int, type_slug: str, title: str, detail: str, errors: dict[str, Any] | None = None
) -> JsonResponse:
    """The same shape for plain Django views and middleware (no DRF request around them)."""
    body = problem_body(status, type_slug, title, detail, errors)
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


def _flatten(data: Any) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    if isinstance(data, list):
        return {"non_field_errors": data}
    return {"non_field_errors": [str(data)]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return problem(exc.status_code, exc.type_slug, exc.title, exc.detail, exc.errors)
    if isinstance(exc, DjangoValidationError):
        errors = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        return problem(400, "validation-error", "Invalid input", "; ".join(exc.messages), errors)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, drf_exceptions.APIException):
        if response is None:
            # A bug, not the caller's fault: logged with its traceback, answered in the same
            # shape as every other error and without internals.
            logger.error("unhandled error in an API view", exc_info=exc)
            return problem(500, "server-error", "Server error", "An unexpected error occurred.")
        return response
    if isinstance(exc, drf_exceptions.ValidationError):
        errors = _flatten(exc.detail)
        return problem(
            400, "validation-error", "Invalid input", "The request has invalid fields.", errors
        )
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    slug = exc.default_code.replace("_", "-")
    result = problem(response.status_code, slug, str(exc.default_detail), detail)
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in response:
            result[header] = response[header]
    return result
