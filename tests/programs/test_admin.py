"""The initiative admin: business owners see theirs, edit through services, never the stage."""

from __future__ import annotations

import pytest

from notifications.models import Event
from programs.models import Initiative
from programs.roles import PMO
from tests.factories import InitiativeFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_client(client):
    owner = UserFactory(username="carla", is_staff=True, groups=["business-owners"])
    initiative = InitiativeFactory(business_owner=owner)
    client.force_login(owner)
    return client, initiative


def test_business_owner_sees_programs_in_the_admin_index(owner_client):
    client, _ = owner_client
    page = client.get("/admin/").content.decode()
    assert "/admin/programs/initiative/" in page
    assert "/admin/gates/approvalinbox/" in page


def test_owner_cannot_edit_accountability_fields_or_stage(owner_client):
    client, initiative = owner_client
    form = client.get(f"/admin/programs/initiative/{initiative.pk}/change/").context["adminform"]
    editable = set(form.form.fields)
    assert {"name", "summary", "target_workflow"} <= editable
    assert not {"stage", "key", "business_owner", "business_unit", "risk_tier"} & editable


def test_owner_edit_goes_through_the_service(owner_client):
    client, initiative = owner_client
    response = client.post(
        f"/admin/programs/initiative/{initiative.pk}/change/",
        {
            "name": "Claims triage v2",
            "summary": "",
            "sponsor": initiative.sponsor_id,
            "delivery_lead": "",
            "target_workflow": initiative.target_workflow,
            "health": "amber",
            **{f"{p}-TOTAL_FORMS": "0" for p in ("metrics", "milestones", "transitions")},
            **{f"{p}-INITIAL_FORMS": "0" for p in ("metrics", "milestones", "transitions")},
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    initiative.refresh_from_db()
    assert (initiative.name, initiative.health) == ("Claims triage v2", "amber")
    assert Event.objects.filter(type="initiative.updated").count() == 1


def test_pmo_may_reassign_the_business_owner(client):
    pmo = UserFactory(is_staff=True, groups=[PMO])
    initiative = InitiativeFactory()
    client.force_login(pmo)
    form = client.get(f"/admin/programs/initiative/{initiative.pk}/change/").context["adminform"]
    assert "business_owner" in form.form.fields
    assert Initiative.objects.count() == 1


def test_owner_waives_a_milestone_with_a_reason_from_the_list(owner_client):
    from programs.models import Milestone, MilestoneStatus
    from tests.factories import MilestoneFactory

    client, initiative = owner_client
    milestone = MilestoneFactory(initiative=initiative)
    url = "/admin/programs/milestone/"
    picked = {"action": "waive", "_selected_action": [milestone.pk]}
    confirm = client.post(url, picked)
    assert confirm.status_code == 200 and b"reason" in confirm.content
    client.post(url, {**picked, "apply": "1", "reason": ""})  # no reason: nothing happens
    assert Milestone.objects.get(pk=milestone.pk).status == MilestoneStatus.OPEN
    client.post(url, {**picked, "apply": "1", "reason": "Covered by the vendor's own test"})
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.WAIVED
    assert milestone.waive_reason == "Covered by the vendor's own test"
