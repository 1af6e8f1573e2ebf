from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django import forms, http
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db import models, transaction
from django.utils.text import capfirst

from gatekeeper.errors import DomainError, ValidationFailed

# Every admin form's URL field: a URL typed without a scheme means https, as it will in Django
# 6.0 (links in Gatekeeper point at tickets, documents and webhook receivers, all https).
HTTPS_URL_FIELDS: dict[type[models.Field[Any, Any]], dict[str, Any]] = {
    models.URLField: {"assume_scheme": "https"}
}


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


# --- lists ---------------------------------------------------------------------------------


class EmptyStateMixin:
    """A list with nothing in it at all says so in one sentence (``empty_message``) instead of
    showing an empty table. The app's ``admin/<app>/change_list.html`` renders it (programs' and
    notifications' extend admin/empty_state_change_list.html)."""

    empty_message = ""

    def get_empty_message(self, request: Any) -> str:
        return self.empty_message

    def changelist_view(self, request: Any, extra_context: Any = None) -> Any:
        extra_context = {"empty_message": self.get_empty_message(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context)  # type: ignore[misc]


class _JoiningChangeList(ChangeList):
    def get_queryset(self, request: Any, exclude_parameters: Any = None) -> Any:
        qs = super().get_queryset(request, exclude_parameters)
        if isinstance(self.list_select_related, (list, tuple)) and qs.query.select_related:
            qs = qs.select_related(*self.list_select_related)
        return qs


class SelectorListMixin:
    """For admins whose get_queryset is a selector that already joins some rows: Django skips
    ``list_select_related`` on a queryset that has any select_related, so the columns the
    list adds (e.g. a review's template's gate) would cost a query per row. Here they are joined
    on top of the selector's own."""

    def get_changelist(self, request: Any, **kwargs: Any) -> type[ChangeList]:
        return _JoiningChangeList


# --- showing a refusal ---------------------------------------------------------------------

# Keys of DomainError.errors that carry whole sentences rather than one field's complaint.
_BARE_KEYS = frozenset({"conditions", "non_field_errors", "__all__"})
_ROW_KEY = re.compile(r"^(?P<name>\w+)\[(?P<index>\d+)\]$")


def refusal_message(exc: DomainError) -> str:
    """A refusal as one line: its headline and every reason the domain gave, not just the first."""
    reasons = [
        msg if key in _BARE_KEYS else f"{key}: {msg}"
        for key, msgs in exc.errors.items()
        for msg in msgs
    ]
    return exc.detail + (" — " + "; ".join(map(str, reasons)) if reasons else "")


def _field_named_by(form: forms.BaseForm, message: str) -> str | None:
    """The field a row message is about, when it starts with that field's name or label
    (e.g. "due date must be in the future" on a field labelled "Due")."""
    text = message.lower()
    for name, field in form.fields.items():
        for word in (name.replace("_", " "), str(field.label or "").lower()):
            if word and text.startswith(word):
                return name
    return None


def refusal_to_form(
    form: forms.BaseForm,
    exc: DomainError,
    *,
    rows: dict[str, list[forms.BaseForm]] | None = None,
) -> None:
    """Put a service's refusal on the form that sent it: each reason on its field, the rest (and
    the headline) above the form. ``rows`` maps a list key of the errors (``conditions`` for
    ``conditions[0]``) to the row forms, in the order their items were given to the service."""
    rows = rows or {}
    loose: list[str] = []
    for key, msgs in exc.errors.items():
        for msg in map(str, msgs):
            match = _ROW_KEY.match(key)
            row_forms = rows.get(match["name"], []) if match else []
            if match and int(match["index"]) < len(row_forms):
                row = row_forms[int(match["index"])]
                row.add_error(_field_named_by(row, msg), msg)
            elif key in form.fields:
                form.add_error(key, msg)
            else:
                loose.append(capfirst(msg) if key in _BARE_KEYS else f"{key}: {msg}")
    form.add_error(None, [exc.detail, *loose])


def report_refusal(
    request: http.HttpRequest,
    exc: DomainError,
    *,
    form: forms.BaseForm | None = None,
    rows: dict[str, list[forms.BaseForm]] | None = None,
) -> None:
    """The one way the admin shows a refusal: invalid input goes back onto the form it came
    from; any other refusal (permission, conflict, a lifecycle rule) is a message."""
    if form is not None and isinstance(exc, ValidationFailed):
        refusal_to_form(form, exc, rows=rows)
    else:
        messages.error(request, refusal_message(exc))


# --- admins whose saves are service calls --------------------------------------------------


@dataclass
class _ServiceOutcome:
    result: Any = None
    refused: bool = False
    invalid: ValidationFailed | None = None  # shown on the form, which is then rendered again


class ServiceAdminMixin:
    """For admins whose saves are service calls: a refusal is shown, not a 500.

    ``run_service`` runs the call inside the admin's save. A ValidationFailed about the form
    passed with it renders that form again with the service's reasons on its fields; any other
    refusal is a message and the add/change response returns to the same page instead of
    claiming success. ``service_result`` is what the last successful call returned.
    """

    _OUTCOME = "_gatekeeper_service_outcome"

    def _outcome(self, request: Any) -> _ServiceOutcome:
        outcome = getattr(request, self._OUTCOME, None)
        if outcome is None:
            outcome = _ServiceOutcome()
            setattr(request, self._OUTCOME, outcome)
        return outcome

    def run_service(self, request: Any, call: Any, *, form: Any = None) -> Any:
        outcome = self._outcome(request)
        try:
            outcome.result = call()
            return outcome.result
        except DomainError as exc:
            # All or nothing: the admin runs the whole save (object, inlines) in one
            # transaction; a refusal anywhere undoes what earlier services in it wrote.
            transaction.set_rollback(True)
            outcome.refused = True
            if form is not None and isinstance(exc, ValidationFailed):
                outcome.invalid = exc
            else:
                report_refusal(request, exc)
            return None

    def service_result(self, request: Any) -> Any:
        return self._outcome(request).result

    def refused(self, request: Any) -> bool:
        return self._outcome(request).refused

    def changeform_view(
        self, request: Any, object_id: Any = None, form_url: str = "", extra_context: Any = None
    ) -> Any:
        response = super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        if self._outcome(request).invalid is None:
            return response
        # The first pass rolled back; a second one (a new transaction) builds the same form from
        # the post, get_form puts the service's reasons on it, and the admin renders it.
        return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]

    def get_form(self, request: Any, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change, **kwargs)  # type: ignore[misc]
        refusal = self._outcome(request).invalid
        if refusal is None:
            return form_class
        invalid: ValidationFailed = refusal

        class RefusedForm(form_class):  # type: ignore[misc,valid-type]
            def clean(self) -> Any:
                data = super().clean()
                refusal_to_form(self, invalid)
                return data

        return RefusedForm

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
