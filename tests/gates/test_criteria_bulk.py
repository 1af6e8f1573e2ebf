"""Each automatic check over many initiatives says exactly what it says for each one alone, in a
fixed number of queries (the PMO dashboard's stall causes rely on it)."""

from __future__ import annotations

import datetime as dt
from typing import cast

import pytest
from django.utils import timezone

from gatekeeper.types import User
from gates.criteria import BULK_CHECKS, CHECKS, run_check, run_check_bulk
from gates.portfolio import approvals_overdue, next_gate_unmet_automatic
from programs.models import Initiative, MilestoneStatus
from tests.dashboard.portfolio import build
from tests.factories import (
    BusinessUnitFactory,
    InitiativeFactory,
    MilestoneFactory,
    SuccessMetricFactory,
)

pytestmark = pytest.mark.django_db


def _varied() -> list[Initiative]:
    now = timezone.now()
    unit = BusinessUnitFactory()
    plain = InitiativeFactory(business_unit=unit)
    no_owner = InitiativeFactory(business_owner=None, target_workflow="")
    outsider = InitiativeFactory(business_unit=unit)
    unit.members.remove(cast(User, outsider.business_owner))
    SuccessMetricFactory(initiative=plain)
    SuccessMetricFactory(initiative=no_owner, baseline=None)
    piloting = build(now, created=60, moves=[("proposed", "pilot", 30)])
    measured = SuccessMetricFactory(initiative=piloting, name="Measured")
    SuccessMetricFactory(initiative=piloting, name="Not measured")
    type(measured).objects.filter(pk=measured.pk).update(
        current_value=1, measured_at=now - dt.timedelta(days=1)
    )
    MilestoneFactory(initiative=piloting, stage="pilot", title="Pilot report")
    MilestoneFactory(initiative=piloting, stage="proposed", title="Old stage's")
    MilestoneFactory(initiative=plain, is_gate_condition=True, title="Condition A")
    MilestoneFactory(
        initiative=plain,
        title="Closed",
        status=MilestoneStatus.DONE,
        completed_at=now,
    )
    return [
        Initiative.objects.select_related("business_unit").get(pk=i.pk)
        for i in (plain, no_owner, outsider, piloting)
    ]


def test_every_check_has_a_bulk_twin():
    assert set(BULK_CHECKS) == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_bulk_gives_what_each_gives_alone(name, django_assert_max_num_queries):
    initiatives = _varied()
    alone = {i.pk: run_check(name, i) for i in initiatives}
    with django_assert_max_num_queries(1):
        together = run_check_bulk(name, initiatives)
    assert together == alone


def test_unknown_check_is_reported_for_each():
    initiative = InitiativeFactory()
    assert run_check_bulk("gone", [initiative]) == {initiative.pk: run_check("gone", initiative)}
    assert run_check_bulk("gone", []) == {}


def test_next_gate_criteria_and_late_approvals_cost_the_same_for_many(
    django_assert_max_num_queries,
):
    initiatives = _varied()
    with django_assert_max_num_queries(2 + len(CHECKS)):
        unmet = next_gate_unmet_automatic(initiatives)
    plain, no_owner, outsider, piloting = initiatives
    assert [(u.gate, u.reason) for u in unmet[plain.pk]] == [
        ("G1", "milestone 'Condition A' of stage proposed is still open"),
        ("G1", "gate condition 'Condition A' is still open"),
    ]
    assert {u.gate for u in unmet[piloting.pk]} == {"G2"}
    assert "metric 'Not measured' has no result measured during this stage" in [
        u.reason for u in unmet[piloting.pk]
    ]
    assert "a business owner must be assigned" in [u.reason for u in unmet[no_owner.pk]]
    assert any("must be a member of business unit" in u.reason for u in unmet[outsider.pk])
    with django_assert_max_num_queries(1):
        assert approvals_overdue([i.pk for i in initiatives]) == {}
