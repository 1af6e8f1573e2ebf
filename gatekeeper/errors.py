"""Typed domain errors shared by every app; one DRF handler renders them (CONVENTIONS.md §8)."""

from __future__ import annotations

from collections.abc import Iterable


class DomainError(Exception):
    """Base of every refusal the domain can explain to its caller."""

    status_code = 400
    type_slug = "domain-error"
    title = "Request refused"

    def __init__(self, detail: str, *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}


class ValidationFailed(DomainError):
    status_code = 400
    type_slug = "validation-error"
    title = "Invalid input"


class TransitionRefused(DomainError):
    """A lifecycle move whose conditions are not met; lists every unmet one, not just the first."""

    status_code = 409
    type_slug = "transition-refused"
    title = "Transition refused"

    def __init__(self, detail: str, *, unmet: Iterable[str]) -> None:
        self.unmet = list(unmet)
        super().__init__(detail, errors={"conditions": self.unmet})


class Conflict(DomainError):
    """The object changed under the caller (a concurrent decision or transition got there first)."""

    status_code = 409
    type_slug = "conflict"
    title = "Conflict"


class PermissionDenied(DomainError):
    status_code = 403
    type_slug = "permission-denied"
    title = "Permission denied"


class NotFound(DomainError):
    status_code = 404
    type_slug = "not-found"
    title = "Not found"
