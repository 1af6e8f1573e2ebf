from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from gates.business_days import add_business_days

UTC = dt.UTC


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (dt.datetime(2026, 3, 6, 10, tzinfo=UTC), 3, dt.datetime(2026, 3, 11, 10, tzinfo=UTC)),
        (dt.datetime(2026, 3, 2, 9, tzinfo=UTC), 5, dt.datetime(2026, 3, 9, 9, tzinfo=UTC)),
        # Submitted on a Saturday: the clock starts Monday.
        (dt.datetime(2026, 3, 7, 15, tzinfo=UTC), 1, dt.datetime(2026, 3, 10, 15, tzinfo=UTC)),
        # Backwards, for reminder lead times.
        (dt.datetime(2026, 3, 9, 9, tzinfo=UTC), -1, dt.datetime(2026, 3, 6, 9, tzinfo=UTC)),
    ],
)
def test_add_business_days_skips_weekends(start, days, expected):
    assert add_business_days(start, days) == expected


def test_due_time_keeps_wall_clock_across_dst():
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    with timezone.override(berlin):
        start = dt.datetime(2026, 3, 27, 10, tzinfo=berlin)  # Friday before the clocks change
        due = add_business_days(start, 1)
    assert due.astimezone(berlin).replace(tzinfo=None) == dt.datetime(2026, 3, 30, 10)
