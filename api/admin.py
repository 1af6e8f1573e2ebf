"""API tokens in the admin: issued with an expiry, shown once, revoked by deleting the row."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from knox.admin import AuthTokenAdmin as KnoxAuthTokenAdmin
from knox.admin import AuthTokenCreateForm as KnoxAuthTokenCreateForm
from knox.models import AuthToken
from knox.settings import knox_settings


class AuthTokenCreateForm(KnoxAuthTokenCreateForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Knox's form leaves expiry empty, which means "never": default to the configured TTL.
        self.fields["expiry"].initial = timezone.now() + knox_settings.TOKEN_TTL
        self.fields["expiry"].required = True
        self.fields["expiry"].help_text = "The token stops working at this time."


admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class AuthTokenAdmin(KnoxAuthTokenAdmin):
    add_form = AuthTokenCreateForm
    # The digest is a hash of the token, not the token; the key prefix is what a holder can
    # match against the first characters of theirs.
    list_display = ("token_key", "user", "created", "expiry")
    readonly_fields = ("token_key", "user", "created", "expiry")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("user", "expiry")
        return self.readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
