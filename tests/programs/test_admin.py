"""The initiative admin: business owners see theirs, edit through services, never the stage."""

from __future__ import annotations

import pytest

from notifications.models import Event
from programs.models import Initiative
from programs.roles import PMO
from tests.factories import InitiativeFactory, UserFactory
from tests.unguarded import unguarded

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


def test_metric_edits_in_the_initiative_page_go_through_services(owner_client):
    from programs.models import SuccessMetric
    from programs.stages import Stage
    from tests.factories import SuccessMetricFactory

    client, initiative = owner_client
    metric = SuccessMetricFactory(initiative=initiative, baseline=40, target=60)
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.PILOT)
    url = f"/admin/programs/initiative/{initiative.pk}/change/"
    post = {
        "name": initiative.name,
        "summary": "",
        "sponsor": initiative.sponsor_id,
        "delivery_lead": "",
        "target_workflow": initiative.target_workflow,
        "health": "green",
        "metrics-TOTAL_FORMS": "1",
        "metrics-INITIAL_FORMS": "1",
        "metrics-0-id": metric.pk,
        "metrics-0-initiative": initiative.pk,
        "metrics-0-name": metric.name,
        "metrics-0-unit": "%",
        "metrics-0-direction": "higher",
        "metrics-0-baseline": "40",
        "metrics-0-target": "50",  # lowering the bar after G1: PMO only
        **{f"{p}-TOTAL_FORMS": "0" for p in ("milestones", "transitions")},
        **{f"{p}-INITIAL_FORMS": "0" for p in ("milestones", "transitions")},
    }
    client.post(url, post)
    assert SuccessMetric.objects.get(pk=metric.pk).target == 60
    assert not Event.objects.filter(type="metric.redefined").exists()

    client.force_login(UserFactory(is_staff=True, groups=[PMO]))
    response = client.post(
        url,
        {
            **post,
            "business_unit": initiative.business_unit_id,
            "risk_tier": "medium",
            "business_owner": initiative.business_owner_id,
        },
    )
    assert response.status_code == 302
    assert SuccessMetric.objects.get(pk=metric.pk).target == 50
    assert Event.objects.filter(type="metric.redefined").count() == 1


def test_recording_a_pilot_result_from_the_admin(owner_client):
    from django.utils import timezone

    from programs.models import SuccessMetric
    from tests.factories import SuccessMetricFactory

    client, initiative = owner_client
    metric = SuccessMetricFactory(initiative=initiative)
    now = timezone.localtime()
    response = client.post(
        "/admin/programs/metricreading/add/",
        {
            "metric": metric.pk,
            "value": "57.5",
            "measured_at_0": now.strftime("%Y-%m-%d"),
            "measured_at_1": now.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert str(SuccessMetric.objects.get(pk=metric.pk).current_value) == "57.5000"

    other = SuccessMetricFactory()  # someone else's initiative
    response = client.post(
        "/admin/programs/metricreading/add/",
        {
            "metric": other.pk,
            "value": "1",
            "measured_at_0": now.strftime("%Y-%m-%d"),
            "measured_at_1": now.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 200  # the form refuses: not a choice for this user
    assert SuccessMetric.objects.get(pk=other.pk).current_value is None


def test_a_refused_admin_save_shows_the_reason_instead_of_failing(owner_client):
    from django.utils import timezone

    from programs import services
    from tests.factories import MilestoneFactory

    client, initiative = owner_client
    milestone = MilestoneFactory(initiative=initiative, owner=initiative.business_owner)
    services.milestone_complete(milestone=milestone, actor=None)
    due = timezone.localtime(milestone.due_at)
    url = f"/admin/programs/milestone/{milestone.pk}/change/"
    response = client.post(
        url,
        {
            "title": "Renamed after it was done",
            "owner": milestone.owner_id,
            "due_at_0": due.strftime("%Y-%m-%d"),
            "due_at_1": due.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 302 and response["Location"] == url
    shown = [str(m) for m in client.get(url).context["messages"]]
    assert any("can't be edited" in m for m in shown), shown
    milestone.refresh_from_db()
    assert milestone.title != "Renamed after it was done"


def test_transition_urls_are_checked(owner_client):
    client, initiative = owner_client
    base = f"/admin/programs/initiative/{initiative.pk}/transition"
    assert client.get(f"{base}/not_a_transition/").status_code == 404
    assert client.get(f"{base}/save/").status_code == 404  # a model method, not a transition
    other = InitiativeFactory()
    response = client.get(f"/admin/programs/initiative/{other.pk}/transition/hold/")
    assert response.status_code in (302, 404)  # someone else's: not found for this user
    assert Initiative.objects.get(pk=other.pk).stage == "proposed"


def _change_post(initiative, **overrides):
    post = {
        "name": initiative.name,
        "summary": "",
        "target_workflow": initiative.target_workflow,
        "health": "green",
        **{f"{p}-TOTAL_FORMS": "0" for p in ("metrics", "milestones", "transitions")},
        **{f"{p}-INITIAL_FORMS": "0" for p in ("metrics", "milestones", "transitions")},
    }
    post.update(overrides)
    return post


def test_refused_edit_of_a_cancelled_initiative_is_shown_not_a_500(owner_client):
    client, initiative = owner_client
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(stage="cancelled")
    url = f"/admin/programs/initiative/{initiative.pk}/change/"
    response = client.post(url, _change_post(initiative, name="Resurrected"))
    assert response.status_code == 302 and response["Location"] == url
    assert Initiative.objects.get(pk=initiative.pk).name != "Resurrected"


def test_a_refusal_in_an_inline_undoes_the_whole_save(owner_client):
    from programs.models import SuccessMetric
    from tests.factories import SuccessMetricFactory

    client, initiative = owner_client
    metric = SuccessMetricFactory(initiative=initiative, baseline=40, target=60)
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(stage="pilot")
    url = f"/admin/programs/initiative/{initiative.pk}/change/"
    post = _change_post(
        initiative,
        name="Renamed with the refused target",
        **{
            "metrics-TOTAL_FORMS": "1",
            "metrics-INITIAL_FORMS": "1",
            "metrics-0-id": metric.pk,
            "metrics-0-initiative": initiative.pk,
            "metrics-0-name": metric.name,
            "metrics-0-unit": "%",
            "metrics-0-direction": "higher",
            "metrics-0-baseline": "40",
            "metrics-0-target": "10",  # moving the bar after G1: PMO only
        },
    )
    response = client.post(url, post)
    assert response.status_code == 302 and response["Location"] == url
    assert Initiative.objects.get(pk=initiative.pk).name == initiative.name
    assert SuccessMetric.objects.get(pk=metric.pk).target == 60
    assert not Event.objects.filter(type="initiative.updated").exists()


def test_unknown_transition_posted_on_the_change_form_is_a_404(owner_client):
    client, initiative = owner_client
    url = f"/admin/programs/initiative/{initiative.pk}/change/"
    for name in ("nope", "save"):
        response = client.post(url, _change_post(initiative, _fsm_transition_to=name))
        assert response.status_code == 404


def test_owner_proposing_an_initiative_cannot_name_its_people(owner_client):
    client, _ = owner_client
    form = client.get("/admin/programs/initiative/add/").context["adminform"].form
    assert {"name", "business_unit", "target_workflow"} <= set(form.fields)
    assert not {"business_owner", "sponsor", "delivery_lead", "risk_tier"} & set(form.fields)


def test_initiative_page_says_what_blocks_each_move(owner_client):
    client, initiative = owner_client
    initiative.metrics.all().delete()
    page = client.get(f"/admin/programs/initiative/{initiative.pk}/change/").content.decode()
    assert "Next moves" in page
    assert "Start pilot (G1 approved)" in page
    assert "at least one success metric needs both a baseline and a target" in page
    assert "Put on hold</strong>: possible now" in page


def test_add_forms_offer_only_initiatives_and_metrics_the_user_may_add_to(owner_client):
    """Owning one milestone of an initiative lets a person see it, not change it: it is not
    offered on the add forms, so nobody picks a choice the service would refuse after the form
    is filled in."""
    from tests.factories import MilestoneFactory, SuccessMetricFactory

    client, mine = owner_client
    owner = mine.business_owner
    seen = InitiativeFactory()  # visible to the owner through one milestone, not changeable
    MilestoneFactory(initiative=seen, owner=owner)
    elsewhere = InitiativeFactory()  # not even visible
    my_metric = SuccessMetricFactory(initiative=mine)
    SuccessMetricFactory(initiative=seen)
    SuccessMetricFactory(initiative=elsewhere)

    milestone_form = client.get("/admin/programs/milestone/add/").context["adminform"].form
    assert list(milestone_form.fields["initiative"].queryset) == [mine]
    reading_form = client.get("/admin/programs/metricreading/add/").context["adminform"].form
    assert list(reading_form.fields["metric"].queryset) == [my_metric]

    # The other initiative is still listed for the owner, just not offered for adding.
    listed = client.get("/admin/programs/initiative/").content.decode()
    assert seen.key in listed and elsewhere.key not in listed
