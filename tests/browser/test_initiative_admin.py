"""A business owner moves their initiative from the admin; outsiders don't see it."""

from __future__ import annotations

import pytest

from programs.models import Initiative, StageTransition
from programs.stages import Stage
from tests.factories import InitiativeFactory, UserFactory
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
    assert record.actor.username == "carla"
    assert record.reason == "Waiting for the data-sharing agreement"


def test_other_business_owner_cannot_open_the_initiative(live_server, page, login):
    initiative = _owner_initiative()
    UserFactory(username="sam", is_staff=True, groups=["business-owners"])
    login("sam")
    page.goto(f"{live_server.url}/admin/programs/initiative/")
    assert initiative.key not in page.content()
    page.goto(f"{live_server.url}/admin/programs/initiative/{initiative.pk}/change/")
    assert "exist" in page.inner_text(".messagelist")  # Django: the object doesn't exist
