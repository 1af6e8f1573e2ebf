from __future__ import annotations

from typing import Any

from django import http
from django.contrib import admin, messages
from django.db import transaction

from gatekeeper.errors import DomainError


class ViewOnlyMixin:
    """Admin pages (and inlines) that only show rows: history, or rows changed only through
    services and their own views."""

    def has_add_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(ViewOnlyMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class ServiceAdminMixin:
    """For admins whose saves are service calls: a refusal is shown on the form, not a 500.

    ``run_service`` runs the call; on a DomainError it reports every reason, marks the request,
    and the add/change response then returns to the same form instead of claiming success.
    """

    _REFUSED = "_gatekeeper_service_refused"

    def run_service(self, request: Any, call: Any) -> Any:
        try:
            return call()
        except DomainError as exc:
            # All or nothing: the admin runs the whole save (object, inlines) in one
            # transaction; a refusal anywhere undoes what earlier services in it wrote.
            transaction.set_rollback(True)
            setattr(request, self._REFUSED, True)
            unmet = getattr(exc, "unmet", [])
            errors = [m for field_errors in exc.errors.values() for m in field_errors]
            reasons = unmet or errors
            detail = exc.detail + (": " + "; ".join(map(str, reasons)) if reasons else "")
            messages.error(request, detail)
            return None

    def refused(self, request: Any) -> bool:
        return bool(getattr(request, self._REFUSED, False))

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        if not self.refused(request):
            super().save_related(request, form, formsets, change)  # type: ignore[misc]

    def construct_change_message(
        self, request: Any, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        if self.refused(request):
            return []  # nothing was saved, so nothing to describe (and inlines weren't saved)
        return super().construct_change_message(request, form, formsets, add)  # type: ignore[misc]

    def log_addition(self, request: Any, obj: Any, message: Any) -> Any:
        if not self.refused(request):
            return super().log_addition(request, obj, message)  # type: ignore[misc]
        return None

    def log_change(self, request: Any, obj: Any, message: Any) -> Any:
        if not self.refused(request):
            return super().log_change(request, obj, message)  # type: ignore[misc]
        return None

    def response_add(self, request: Any, obj: Any, post_url_continue: Any = None) -> Any:
        if self.refused(request):
            return http.HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)  # type: ignore[misc]

    def response_change(self, request: Any, obj: Any) -> Any:
        if self.refused(request):
            return http.HttpResponseRedirect(request.path)
        return super().response_change(request, obj)  # type: ignore[misc]
