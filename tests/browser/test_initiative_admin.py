"""A business owner moves their initiative from the admin; outsiders don't see it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import cast

import pytest
from django.conf import settings
from django.utils import timezone

from gatekeeper.types import User
from programs.models import Initiative, StageTransition
from programs.stages import Stage
from tests.factories import InitiativeFactory, MilestoneFactory, SuccessMetricFactory, UserFactory
from tests.unguarded import unguarded

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _owner_initiative(stage: str = Stage.PILOT) -> Initiative:
    owner = UserFactory(username="carla", is_staff=True, groups=["business-owners"])
    initiative = InitiativeFactory(business_owner=owner, name="Claims triage assistant")
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(stage=stage)
    return initiative


def test_business_owner_puts_initiative_on_hold_with_a_reason(live_server, page, login):
    initiative = _owner_initiative()
    login("carla")
    page.goto(f"{live_server.url}/admin/programs/initiative/{initiative.pk}/change/")

    # The forward move needs an approved G2 review, so only hold and cancel are offered.
    buttons = page.locator("button[name=_fsm_transition_to]")
    assert sorted(buttons.all_inner_texts()) == ["Cancel (kill)", "Put on hold"]

    page.click("button[value=hold]")
    page.fill("#id_reason", "Waiting for the data-sharing agreement")
    page.click("#content input[type=submit][value=Apply]")
    page.wait_for_selector(".messagelist")
    assert "is now On hold" in page.inner_text(".messagelist")

    initiative.refresh_from_db()
    assert initiative.stage == Stage.ON_HOLD
    record = StageTransition.objects.get(initiative=initiative)
    assert cast(User, record.actor).username == "carla"
    assert record.reason == "Waiting for the data-sharing agreement"


def test_other_business_owner_cannot_open_the_initiative(live_server, page, login):
    initiative = _owner_initiative()
    UserFactory(username="sam", is_staff=True, groups=["business-owners"])
    login("sam")
    page.goto(f"{live_server.url}/admin/programs/initiative/")
    assert initiative.key not in page.content()
    page.goto(f"{live_server.url}/admin/programs/initiative/{initiative.pk}/change/")
    assert "exist" in page.inner_text(".messagelist")  # Django: the object doesn't exist


def test_initiative_page_shows_where_it_stands_and_what_the_next_gate_needs(
    live_server, page, login
):
    initiative = _owner_initiative(stage=Stage.PROPOSED)
    owner = initiative.business_owner
    SuccessMetricFactory(initiative=initiative, name="Adoption", unit="%", baseline=10, target=60)
    now = timezone.now()
    with unguarded():
        StageTransition.objects.create(
            initiative=initiative,
            transition="start_pilot",
            from_stage=Stage.PROPOSED,
            to_stage=Stage.PILOT,
            actor=owner,
            reason="G1 approved: go",
        )
        Initiative.objects.filter(pk=initiative.pk).update(
            stage=Stage.PILOT,
            stage_entered_at=now - dt.timedelta(days=99, hours=1),
            stall_at=now - dt.timedelta(days=9, hours=1),
        )
    MilestoneFactory(
        initiative=initiative,
        title="Pilot data extract",
        owner=owner,
        due_at=now - dt.timedelta(days=5),
    )
    login("carla")
    page.goto(f"{live_server.url}/admin/programs/initiative/{initiative.pk}/change/")

    current = page.locator("#gk-lifecycle [aria-current=step]")
    assert current.inner_text() == "Pilot"
    assert "stalled 9 days ago" in page.inner_text("#gk-clock")
    assert "1 overdue milestone" in page.inner_text("#gk-clock")
    assert page.locator(".gk-overdue", has_text="overdue 5 d").is_visible()
    gate = page.inner_text("#gk-next-gate")
    assert "G2 Integration" in gate and "Pilot results against the metrics" in gate
    assert "unmet" in gate
    assert "Proposed → Pilot" in page.inner_text("#transitions-group")

    shots = Path(settings.BASE_DIR) / "var" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "initiative_page.png"), full_page=True)
