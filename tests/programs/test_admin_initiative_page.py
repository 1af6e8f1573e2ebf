"""The initiative page: where it stands in the lifecycle, how long it has left, what the next
gate still needs, and how it got here."""

from __future__ import annotations

import datetime as dt
from typing import cast

import pytest
from django.utils import timezone

from gates import services as gates
from gates.models import Criterion, CriterionKind
from programs import ports
from programs.models import Initiative, StageTransition
from programs.stages import Stage
from tests.factories import InitiativeFactory, MilestoneFactory, SuccessMetricFactory, UserFactory
from tests.unguarded import unguarded

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client):
    user = UserFactory(
        username="carla", first_name="Carla", is_staff=True, groups=["business-owners"]
    )
    client.force_login(user)
    return user


def _page(client, initiative):
    response = client.get(f"/admin/programs/initiative/{initiative.pk}/change/")
    assert response.status_code == 200
    return response


def _move(initiative, **fields):
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(**fields)
    initiative.refresh_from_db()


def test_lifecycle_diagram_marks_the_current_stage_and_the_ones_passed(client, owner):
    initiative = InitiativeFactory(business_owner=owner)
    with unguarded():
        StageTransition.objects.create(
            initiative=initiative, transition="start_pilot", from_stage="proposed", to_stage="pilot"
        )
        Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.PILOT)
    response = _page(client, initiative)
    steps = {s["label"]: s["state"] for s in response.context["initiative_page"]["steps"]}
    assert steps["Proposed"] == "done"
    assert steps["Pilot"] == "current"
    assert steps["Integration"] == steps["Operations"] == steps["Cancelled"] == "todo"
    assert 'aria-current="step">Pilot</li>' in response.content.decode()


@pytest.mark.parametrize(
    ("stall_in", "says"),
    [
        (dt.timedelta(days=12, hours=1), "stalls in 12 days"),
        (-dt.timedelta(days=9, hours=1), "stalled 9 days ago"),
    ],
)
def test_time_in_stage_is_shown_against_the_gates_expected_maximum(client, owner, stall_in, says):
    initiative = InitiativeFactory(business_owner=owner)
    now = timezone.now()
    _move(
        initiative,
        stage=Stage.PILOT,
        stage_entered_at=now - dt.timedelta(days=30),
        stall_at=now + stall_in,
    )
    page = _page(client, initiative)
    clock = page.context["initiative_page"]["clock"]
    assert clock.days_in_stage == 30
    assert clock.summary == says
    assert says in page.content.decode()


def test_a_stall_already_reported_still_shows_how_long_ago(client, owner):
    initiative = InitiativeFactory(business_owner=owner)
    # The stall sweep clears the stored deadline once it has told people; the pilot's budget
    # (G1's expected 90 days) still says when it ran out.
    _move(
        initiative,
        stage=Stage.PILOT,
        stage_entered_at=timezone.now() - dt.timedelta(days=100, hours=1),
        stall_at=None,
    )
    clock = _page(client, initiative).context["initiative_page"]["clock"]
    assert (clock.budget_days, clock.summary, clock.stalled) == (90, "stalled 10 days ago", True)


def test_on_hold_the_clock_of_the_held_stage_stands_still(client, owner):
    initiative = InitiativeFactory(business_owner=owner)
    now = timezone.now()
    _move(
        initiative,
        stage=Stage.ON_HOLD,
        held_from=Stage.PILOT,
        stage_entered_at=now - dt.timedelta(days=50),
        held_stage_entered_at=now - dt.timedelta(days=80),
        held_stall_at=now - dt.timedelta(days=40),
    )
    clock = _page(client, initiative).context["initiative_page"]["clock"]
    assert (clock.stage, clock.days_in_stage, clock.budget_days) == (Stage.PILOT, 30, 40)
    assert clock.summary == "clock paused while on hold: 10 days left"


def test_next_gate_checklist_shows_each_criterion_its_evidence_and_who_attached_it(client, owner):
    initiative = InitiativeFactory(business_owner=owner)  # no success metric yet
    review = gates.gate_review_open(initiative=initiative, actor=None)
    criterion = cast(
        Criterion, review.template.criteria.filter(kind=CriterionKind.EVIDENCE).first()
    )
    gates.evidence_attach(
        review=review, actor=owner, criterion=criterion, url="https://wiki.example.com/scope"
    )

    page = _page(client, initiative)
    panel = page.context["initiative_page"]["gate"]
    assert panel.gate.startswith("G1")
    assert panel.review.label == f"G1 review #{review.pk}"
    lines = {line.text: line for line in panel.checklist}
    attached = lines[criterion.text]
    assert attached.met and attached.evidence[0].by == str(owner)
    metrics = lines["Success metrics with baseline and target"]
    assert not metrics.met and metrics.reasons
    html = page.content.decode()
    assert f"/admin/gates/gatereview/{review.pk}/change/" in html
    assert "https://wiki.example.com/scope" in html and str(owner) in html


def test_without_a_review_the_checklist_is_the_current_templates_checked_now(client, owner):
    initiative = InitiativeFactory(business_owner=owner)
    SuccessMetricFactory(initiative=initiative)
    panel = _page(client, initiative).context["initiative_page"]["gate"]
    assert panel.review is None
    lines = {line.text: line.met for line in panel.checklist}
    assert lines["Success metrics with baseline and target"] is True
    assert lines["Pilot scope and exit criteria"] is False  # no review to attach it to yet
    assert panel.reviews == []


def test_the_page_works_without_gates(client, owner):
    initiative = InitiativeFactory(business_owner=owner)
    ports.register_gate_panel(None)
    try:
        page = _page(client, initiative)
    finally:
        from gates.adapters import gate_panel

        ports.register_gate_panel(gate_panel)
    assert page.context["initiative_page"]["gate"] is None


def test_overdue_milestones_are_highlighted(client, owner):
    initiative = InitiativeFactory(business_owner=owner)
    MilestoneFactory(
        initiative=initiative, title="Late one", due_at=timezone.now() - dt.timedelta(days=3)
    )
    MilestoneFactory(initiative=initiative, title="On time")
    page = _page(client, initiative)
    assert page.context["initiative_page"]["overdue"] == 1
    assert page.content.decode().count('class="gk-overdue"') == 2  # the row, and the summary


def test_history_says_when_who_from_to_why_and_links_the_review(client, owner):
    initiative = InitiativeFactory(business_owner=owner)
    with unguarded():
        StageTransition.objects.create(
            initiative=initiative,
            transition="start_pilot",
            from_stage="proposed",
            to_stage="pilot",
            actor=owner,
            reason="G1 approved",
            gate_review_id=4242,
        )
        Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.PILOT)
    html = _page(client, initiative).content.decode()
    assert "Proposed → Pilot" in html
    assert "G1 approved" in html
    assert '<a href="/admin/gates/gatereview/4242/change/">review #4242</a>' in html


def test_clock_fields_are_shown_read_only_not_editable(client, owner):
    initiative = InitiativeFactory(business_owner=owner)
    page = _page(client, initiative)
    editable = set(page.context["adminform"].form.fields)
    clock = {"stall_at", "stage_entered_at", "held_stage_entered_at", "held_stall_at", "held_from"}
    assert not clock & editable
    assert clock <= set(page.context["adminform"].readonly_fields)
