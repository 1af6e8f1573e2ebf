"""Services other than the lifecycle: create, update, metrics, milestones; bad input refused."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, cast

import pytest
from django.utils import timezone

from gatekeeper.errors import Conflict, PermissionDenied, TransitionRefused, ValidationFailed
from gatekeeper.types import User
from notifications.models import Event
from programs import services
from programs.models import Initiative, MetricReading, MilestoneStatus
from programs.roles import PMO
from programs.stages import Stage
from tests.factories import (
    BusinessUnitFactory,
    InitiativeFactory,
    MilestoneFactory,
    SuccessMetricFactory,
    UserFactory,
)
from tests.unguarded import unguarded

pytestmark = pytest.mark.django_db


def test_create_assigns_a_stable_human_key_and_emits():
    unit = BusinessUnitFactory()
    first = services.initiative_create(actor=None, name="Claims triage", business_unit=unit)
    second = services.initiative_create(actor=None, name="Fraud", business_unit=unit)
    assert first.key == f"AI-{first.pk:03d}" and second.key == f"AI-{second.pk:03d}"
    assert first.stage == Stage.PROPOSED
    assert Event.objects.filter(type="initiative.created", key=f"initiative.created:{first.pk}")


def test_create_refuses_blank_name_bad_tier_and_duplicate_key_without_writing():
    unit = BusinessUnitFactory()
    with pytest.raises(ValidationFailed) as bad:
        services.initiative_create(actor=None, name=" ", business_unit=unit, risk_tier="extreme")
    assert set(bad.value.errors) == {"name", "risk_tier"}
    services.initiative_create(actor=None, name="A", business_unit=unit, key="AI-900")
    with pytest.raises(ValidationFailed) as dup:
        services.initiative_create(actor=None, name="B", business_unit=unit, key="AI-900")
    assert dup.value.errors == {"key": ["already in use"]}
    assert Initiative.objects.count() == 1


def test_owner_edits_descriptive_fields_and_everyone_involved_hears_of_it():
    initiative = InitiativeFactory()
    services.initiative_update(
        initiative=initiative, actor=initiative.business_owner, changes={"name": "Renamed"}
    )
    assert Initiative.objects.get(pk=initiative.pk).name == "Renamed"
    event = Event.objects.get(type="initiative.updated")
    assert event.payload["changes"]["name"]["to"] == "Renamed"


def test_only_pmo_reassigns_owner_unit_or_risk_tier():
    initiative = InitiativeFactory()
    newcomer = UserFactory()
    with pytest.raises(PermissionDenied):
        services.initiative_update(
            initiative=initiative,
            actor=initiative.business_owner,
            changes={"business_owner": newcomer},
        )
    services.initiative_update(
        initiative=initiative,
        actor=UserFactory(groups=[PMO]),
        changes={"business_owner": newcomer, "risk_tier": "high"},
    )
    initiative.refresh_from_db()
    assert (initiative.business_owner, initiative.risk_tier) == (newcomer, "high")


@pytest.mark.parametrize("field", ["stage", "key", "stage_entered_at", "held_from", "created_by"])
def test_read_only_fields_stay_read_only(field):
    initiative = InitiativeFactory()
    with pytest.raises(ValidationFailed) as refused:
        services.initiative_update(initiative=initiative, actor=None, changes={field: "x"})
    assert refused.value.errors == {field: ["read-only"]}


def test_metric_readings_keep_history_and_the_latest_wins():
    metric = SuccessMetricFactory()
    now = timezone.now()
    services.metric_record_value(metric=metric, actor=None, value="50", measured_at=now)
    services.metric_record_value(
        metric=metric, actor=None, value="45", measured_at=now - dt.timedelta(days=3)
    )
    metric.refresh_from_db()
    assert metric.current_value == Decimal("50")
    assert MetricReading.objects.filter(metric=metric).count() == 2


@pytest.mark.parametrize("value", ["abc", "NaN", "Infinity", None])
def test_metric_value_must_be_a_finite_number(value):
    metric = SuccessMetricFactory()
    with pytest.raises(ValidationFailed):
        services.metric_record_value(metric=metric, actor=None, value=value)
    assert not MetricReading.objects.exists()


def test_duplicate_metric_name_is_refused():
    metric = SuccessMetricFactory()
    with pytest.raises(ValidationFailed):
        services.metric_add(initiative=metric.initiative, actor=None, name=metric.name)


def test_milestone_needs_aware_due_date_and_paired_ticket_reference():
    initiative = InitiativeFactory()
    with pytest.raises(ValidationFailed) as bad:
        services.milestone_add(
            initiative=initiative,
            actor=None,
            title="",
            owner=cast(User, initiative.business_owner),
            due_at=dt.datetime(2026, 1, 1),  # naive: the bad input under test
            external_system="jira",
        )
    assert set(bad.value.errors) == {"title", "due_at", "external_key"}


def test_ticket_can_be_linked_to_one_milestone_only():
    initiative = InitiativeFactory()
    kwargs: dict[str, Any] = {
        "initiative": initiative,
        "actor": None,
        "owner": initiative.business_owner,
        "due_at": timezone.now(),
        "external_system": "jira",
        "external_key": "GK-1",
    }
    services.milestone_add(title="One", **kwargs)
    with pytest.raises(ValidationFailed):
        services.milestone_add(title="Two", **kwargs)


def test_completing_twice_is_a_no_op_and_waiving_a_done_milestone_conflicts():
    milestone = MilestoneFactory()
    services.milestone_complete(milestone=milestone, actor=None)
    services.milestone_complete(milestone=milestone, actor=None)  # a retried ticket webhook
    assert Event.objects.filter(type="milestone.done").count() == 1
    with pytest.raises(Conflict):
        services.milestone_waive(milestone=milestone, actor=None, reason="not needed")
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.DONE and milestone.next_alert_at is None


def test_closed_initiative_takes_no_new_milestones():
    initiative = InitiativeFactory()
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.CANCELLED)
    initiative.refresh_from_db()
    with pytest.raises(TransitionRefused):
        services.milestone_add(
            initiative=initiative,
            actor=None,
            title="Late idea",
            owner=cast(User, initiative.business_owner),
            due_at=timezone.now(),
        )
