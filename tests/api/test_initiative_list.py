"""The initiative list carries what a ticketing system or a PMO tool shows per row: the people,
the success metrics with where they stand, and the next open milestone."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from programs.models import MilestoneStatus
from programs.roles import PMO
from tests.factories import (
    InitiativeFactory,
    MilestoneFactory,
    SuccessMetricFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def test_each_row_has_its_metrics_and_next_open_milestone(client_for):
    now = timezone.now()
    owner = UserFactory(username="omar")
    a = InitiativeFactory(key="AI-A")
    InitiativeFactory(key="AI-B")
    SuccessMetricFactory(
        initiative=a,
        name="Handling time",
        unit="min",
        baseline=Decimal("30"),
        target=Decimal("20"),
        direction="lower",
        current_value=Decimal("18.5"),
        measured_at=now,
    )
    MilestoneFactory(
        initiative=a,
        title="Done long ago",
        due_at=now - dt.timedelta(days=9),
        status=MilestoneStatus.DONE,
        completed_at=now,
    )
    MilestoneFactory(initiative=a, title="Later", due_at=now + dt.timedelta(days=20))
    MilestoneFactory(initiative=a, title="Next", owner=owner, due_at=now - dt.timedelta(days=1))
    rows = {
        r["key"]: r
        for r in client_for(UserFactory(groups=[PMO])).get("/api/v1/initiatives/").json()["results"]
    }
    [metric] = rows["AI-A"]["metrics"]
    assert metric["name"] == "Handling time"
    assert (metric["baseline"], metric["target"], metric["current_value"]) == (
        "30.0000",
        "20.0000",
        "18.5000",
    )
    assert metric["on_target"] is True  # lower is better, and 18.5 <= 20
    nxt = rows["AI-A"]["next_milestone"]
    assert (nxt["title"], nxt["owner"], nxt["stage"]) == ("Next", "omar", "proposed")
    assert rows["AI-B"]["metrics"] == []
    assert rows["AI-B"]["next_milestone"] is None
    # The same shape on the detail.
    detail = client_for(UserFactory(groups=[PMO])).get("/api/v1/initiatives/AI-A/").json()
    assert detail["next_milestone"] == nxt
    assert detail["metrics"] == rows["AI-A"]["metrics"]
