"""The API's OpenAPI schema class (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS).

Imports no models: settings name it, and drf-spectacular loads it while views are decorated.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_MAX_KEY_LENGTH = 255

_PROBLEM_CONTENT = {
    "application/problem+json": {"schema": {"type": "object", "additionalProperties": {}}}
}


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus the Idempotency-Key header and its two refusals on
    the POSTs of views with ``api.idempotency.IdempotentPostMixin``."""

    def _idempotent_post(self) -> bool:
        return self.method == "POST" and getattr(self.view, "idempotent_posts", False)

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if self._idempotent_post():
            parameters.append(
                OpenApiParameter(
                    IDEMPOTENCY_HEADER,
                    str,
                    OpenApiParameter.HEADER,
                    description="Makes the POST safe to retry: the same key with the same "
                    "request replays the first response (with `Idempotent-Replayed: true`) for "
                    "at least 24 hours. Up to 255 printable ASCII characters, per caller.",
                )
            )
        return parameters

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is None or not self._idempotent_post():
            return operation
        responses = operation.setdefault("responses", {})
        responses.setdefault(
            "409",
            {
                "description": "Refused, or a request with this Idempotency-Key is in flight "
                "(problem+json; Retry-After)",
                "content": _PROBLEM_CONTENT,
            },
        )
        responses.setdefault(
            "422",
            {
                "description": "The Idempotency-Key was used for a different request "
                "(problem+json)",
                "content": _PROBLEM_CONTENT,
            },
        )
        return operation
