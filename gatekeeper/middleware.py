"""Refuse request input no view could store or compute with, before any view sees it.

Two kinds reach the database or datetime arithmetic unvalidated through code we do not own
(admin changelist filters, date hierarchies, lookups a view passes through): NUL, which
PostgreSQL refuses in any text ("A string literal cannot contain NUL"), and date parts at the
edge of what ``datetime`` holds, which the admin's date hierarchy steps past (year 9999 + 1).
One check here answers 400 for the admin, the API and the views alike, instead of a 500.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError

from gatekeeper.api_errors import problem_response
from gatekeeper.validators import contains_nul

# Date-part lookups (the admin's date hierarchy: ?created_at__year=…&created_at__month=…) and the
# range each may take. The year stops one short of each end, since the hierarchy computes the
# next period (year + 1, month + 32 days) and an aware datetime may shift across the boundary.
_DATE_PARTS = {
    "__year": (dt.MINYEAR + 1, dt.MAXYEAR - 1),
    "__month": (1, 12),
    "__day": (1, 31),
}


def _bad_request(detail: str) -> HttpResponse:
    return problem_response(400, "invalid-input", "Invalid input", detail)


def _date_part_problem(key: str, value: str) -> str | None:
    for suffix, (low, high) in _DATE_PARTS.items():
        if key.endswith(suffix):
            try:
                number = int(value)
            except ValueError:
                return f"{key} must be a whole number"
            if not low <= number <= high:
                return f"{key} must be between {low} and {high}"
    return None


def input_problem(request: HttpRequest) -> str | None:
    """Why this request's input is refused outright, or None."""
    for key, values in request.GET.lists():
        if "\x00" in key or any("\x00" in v for v in values):
            return "The query string contains a null character."
        for value in values:
            problem = _date_part_problem(key, value)
            if problem:
                return problem
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    content_type = request.content_type or ""
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            data = json.loads(request.body or b"null")
        except ValueError:
            return None  # the view says what is wrong with the JSON itself
        if contains_nul(data):
            return "The JSON body contains a null character."
        return None
    try:
        post = request.POST
    except MultiPartParserError:
        return None  # the view meets the same error and answers it
    for key, values in post.lists():
        if "\x00" in key or any("\x00" in v for v in values):
            return "The form data contains a null character."
    return None


class RefuseUnstorableInputMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        problem = input_problem(request)
        if problem is not None:
            return _bad_request(problem)
        return self.get_response(request)
