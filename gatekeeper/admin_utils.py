from __future__ import annotations

from typing import Any

from django import http
from django.contrib import admin


class ReadOnlyInline(admin.TabularInline):
    """An inline that only shows rows (history, or rows changed only through services)."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False
