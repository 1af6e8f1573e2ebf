"""Business-day arithmetic for decision SLAs.

Monday to Friday in the project's time zone; public holidays are not modelled (a PMO that needs
them sets a longer SLA). The due time keeps the submission's time of day, so "3 business days"
from Friday 10:00 is Wednesday 10:00.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone


def _is_business_day(day: dt.date) -> bool:
    return day.weekday() < 5


def add_business_days(start: dt.datetime, days: int) -> dt.datetime:
    """``start`` plus ``days`` business days (negative goes back); aware in, aware out."""
    local = timezone.localtime(start)
    step = 1 if days >= 0 else -1
    remaining = abs(days)
    current = local
    # A submission on a weekend starts the clock on the next business morning's time of day.
    while not _is_business_day(current.date()):
        current += dt.timedelta(days=step)
    while remaining:
        current += dt.timedelta(days=step)
        if _is_business_day(current.date()):
            remaining -= 1
    # Re-localise so a DST change between start and due keeps the wall-clock time.
    naive = current.replace(tzinfo=None)
    return timezone.make_aware(naive, timezone.get_current_timezone())
