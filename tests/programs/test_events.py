"""What programs' events say: every payload carries its wording and its recipients."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from notifications.messages import render
from notifications.models import Event
from programs import selectors, services, sweeps
from programs.models import Initiative
from programs.roles import PMO
from tests.factories import (
    BusinessUnitFactory,
    InitiativeFactory,
    MilestoneFactory,
    SuccessMetricFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def _emit_one_of_each_service_event() -> None:
    owner = UserFactory()
    initiative = services.initiative_create(
        actor=None, name="Claims triage", business_unit=BusinessUnitFactory()
    )
    services.initiative_assign_owner(initiative=initiative, actor=None, business_owner=owner)
    services.initiative_update(initiative=initiative, actor=None, changes={"name": "Triage"})
    services.initiative_hold(initiative=initiative, actor=None, reason="budget freeze")
    metric = SuccessMetricFactory(initiative=InitiativeFactory(stage="proposed"))
    services.metric_update(metric=metric, actor=None, changes={"target": "70"})
    services.milestone_complete(milestone=MilestoneFactory(), actor=None)
    services.milestone_waive(milestone=MilestoneFactory(), actor=None, reason="out of scope")


def test_every_event_names_its_title_summary_initiative_and_recipients():
    _emit_one_of_each_service_event()
    emitted = {e.type: e.payload for e in Event.objects.all()}
    assert set(emitted) == {
        "initiative.created",
        "initiative.owner_assigned",
        "initiative.updated",
        "initiative.stage_changed",
        "metric.redefined",
        "milestone.done",
        "milestone.waived",
    }
    for payload in emitted.values():
        assert payload["title"] and payload["summary"]
        assert payload["initiative"]["key"]
        assert isinstance(payload["recipients"], list)


def test_titles_read_as_they_always_did():
    _emit_one_of_each_service_event()
    title = {e.type: render(e.type, e.payload).title for e in Event.objects.all()}
    key = Initiative.objects.get(name="Triage").key
    assert title["initiative.created"] == f"New initiative: {key} Claims triage"
    assert title["initiative.owner_assigned"] == f"Business owner assigned for {key} Claims triage"
    assert title["initiative.stage_changed"] == f"{key} Triage moved from proposed to on_hold"
    assert title["milestone.done"].startswith("Milestone done: ")
    assert title["milestone.waived"].startswith("Milestone waived: ")


def test_stall_alert_names_each_person_once_even_when_they_are_also_pmo():
    pmo_owner = UserFactory(groups=[PMO])
    initiative = InitiativeFactory(business_owner=pmo_owner, sponsor=pmo_owner)
    Initiative.objects.filter(pk=initiative.pk).update(stall_at=timezone.now())
    assert sweeps.sweep_stalled_initiatives(now=timezone.now() + dt.timedelta(seconds=1)) == 1
    payload = Event.objects.get(type="initiative.stalled").payload
    assert [(r["user_id"], r["role"]) for r in payload["recipients"]] == [
        (pmo_owner.pk, "business_owner")
    ]


def test_metrics_missing_baseline_or_target_until_one_metric_has_both():
    initiative = InitiativeFactory()
    expected = ["at least one success metric needs both a baseline and a target"]
    assert selectors.metrics_missing_baseline_or_target(initiative) == expected
    SuccessMetricFactory(initiative=initiative, target=None)
    assert selectors.metrics_missing_baseline_or_target(initiative) == expected
    SuccessMetricFactory(initiative=initiative)
    assert selectors.metrics_missing_baseline_or_target(initiative) == []
