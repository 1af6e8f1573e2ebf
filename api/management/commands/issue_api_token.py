"""Issue an API token for a user and print it once (only its digest is stored)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from knox.models import AuthToken
from knox.settings import knox_settings


class Command(BaseCommand):
    help = "Issue an expiring API token for USERNAME and print it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--days", type=int, default=None, help="Lifetime in days (default: REST_KNOX TTL)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = get_user_model().objects.get(username=options["username"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user {options['username']!r}") from None
        if not user.is_active:
            raise CommandError(f"{user} is not active")
        days = options["days"]
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1")
        ttl = dt.timedelta(days=days) if days is not None else knox_settings.TOKEN_TTL
        instance, token = AuthToken.objects.create(user=user, expiry=ttl)
        self.stderr.write(
            f"Token for {user} (key {instance.token_key}, expires {instance.expiry:%Y-%m-%d}). "
            "It is shown only now; store it in the integration's secret store."
        )
        self.stdout.write(token)
