from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from programs.models import StageTransition
from programs.roles import PMO
from tests.factories import BusinessUnitFactory, InitiativeFactory, MilestoneFactory, UserFactory

pytestmark = pytest.mark.django_db


def _api(user):
    _, token = AuthToken.objects.create(user=user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return api


def _moved(initiative, to_stage):
    StageTransition.objects.create(
        initiative=initiative, transition="x", from_stage="proposed", to_stage=to_stage
    )


def test_portfolio_summary_counts_what_the_caller_sees(django_assert_max_num_queries):
    now = timezone.now()
    claims = BusinessUnitFactory(code="claims")
    a = InitiativeFactory(business_unit=claims, stage_entered_at=now - dt.timedelta(days=10))
    b = InitiativeFactory(
        business_unit=claims,
        stage_entered_at=now - dt.timedelta(days=20),
        stall_at=now - dt.timedelta(days=1),
    )
    MilestoneFactory(initiative=a, due_at=now - dt.timedelta(days=2))
    _moved(a, "pilot")
    _moved(b, "pilot")
    _moved(b, "operations")
    pmo = _api(UserFactory(groups=[PMO]))
    with django_assert_max_num_queries(12):
        body = pmo.get("/api/v1/portfolio/summary/").json()
    assert body["total"] == 2
    assert body["by_stage"]["proposed"] == 2
    assert body["by_business_unit"] == [{"business_unit": "claims", "by_stage": body["by_stage"]}]
    assert body["overdue"] == 1
    assert body["stalled"] == 1
    assert body["median_days_in_stage"]["proposed"] == pytest.approx(15, abs=0.2)
    assert body["pilot_to_operations"] == {
        "entered_pilot": 2,
        "reached_operations": 1,
        "rate": 0.5,
    }
    mine = _api(a.business_owner).get("/api/v1/portfolio/summary/").json()
    assert mine["total"] == 1
    assert mine["stalled"] == 0


def test_a_scope_joined_through_milestones_counts_each_initiative_once():
    now = timezone.now()
    owner = UserFactory()
    a = InitiativeFactory(business_owner=owner, stall_at=now - dt.timedelta(days=1))
    for days in (1, 2, 3):  # three milestones: three joined rows for the same initiative
        MilestoneFactory(initiative=a, owner=owner, due_at=now - dt.timedelta(days=days))
    other = InitiativeFactory()
    MilestoneFactory(initiative=other, owner=owner, due_at=now + dt.timedelta(days=3))
    body = _api(owner).get("/api/v1/portfolio/summary/").json()
    assert body["total"] == 2
    assert body["by_stage"]["proposed"] == 2
    assert body["stalled"] == 1
    assert body["overdue"] == 1
