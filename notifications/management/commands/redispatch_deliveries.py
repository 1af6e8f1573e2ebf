"""Operator's lever: hand out every due delivery now, e.g. after a broker outage.

By default it queues them for the workers, like the beat sweep; ``--inline`` sends them from
this process, for when no worker or broker is available. Safe beside running workers: every
send goes through the delivery's claim.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from notifications.services import redispatch


class Command(BaseCommand):
    help = "Queue (or with --inline, send) every undelivered delivery that is due."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--inline", action="store_true", help="send from this process instead of queueing"
        )

    def handle(self, *args: Any, inline: bool = False, **options: Any) -> None:
        count = redispatch(inline=inline)
        verb = "attempted" if inline else "queued"
        self.stdout.write(f"{count} due deliveries {verb}.")
