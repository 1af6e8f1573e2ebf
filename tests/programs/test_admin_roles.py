"""The programs admin per role: no Add button or action someone may not use, one sentence
instead of an empty table, and list filters that name only what the user may see."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from programs.models import MetricReading
from programs.roles import BUSINESS_OWNERS, INTEGRATIONS, PMO
from tests.factories import (
    BusinessUnitFactory,
    InitiativeFactory,
    MilestoneFactory,
    SuccessMetricFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

INITIATIVES = reverse("admin:programs_initiative_changelist")
MILESTONES = reverse("admin:programs_milestone_changelist")
READINGS = reverse("admin:programs_metricreading_changelist")
TRANSITIONS = reverse("admin:programs_stagetransition_changelist")
NOTIFICATIONS = reverse("admin:notifications_notification_changelist")
ADD_MILESTONE = reverse("admin:programs_milestone_add")
ADD_READING = reverse("admin:programs_metricreading_add")
ADD_INITIATIVE = reverse("admin:programs_initiative_add")


def _staff(**kwargs: Any) -> Any:
    return UserFactory(is_staff=True, **kwargs)


def _get(client: Any, user: Any, url: str) -> Any:
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    return response


def _actions(response: Any) -> set[str]:
    form = response.context.get("action_form")
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def _filter_choices(response: Any, title: str) -> set[str]:
    """The labels one list filter offers (its "All" entry left out)."""
    for spec in response.context["cl"].filter_specs:
        if str(spec.title) == title:
            return {str(c["display"]) for c in spec.choices(response.context["cl"])} - {"All"}
    raise AssertionError(f"no filter {title!r}")


@pytest.fixture
def mine(db) -> Any:
    """An initiative and the people around it; its business owner is in business-owners."""
    initiative = InitiativeFactory(
        business_owner=_staff(groups=[BUSINESS_OWNERS]),
        sponsor=_staff(),
        delivery_lead=_staff(),
    )
    SuccessMetricFactory(initiative=initiative)
    MilestoneFactory(initiative=initiative, owner=_staff())
    return initiative


@pytest.fixture
def theirs(db) -> Any:
    """Someone else's initiative, in another business unit."""
    initiative = InitiativeFactory(business_unit=BusinessUnitFactory(name="Elsewhere"))
    SuccessMetricFactory(initiative=initiative)
    MilestoneFactory(initiative=initiative)
    return initiative


# --- nothing to see ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "sentence"),
    [
        (INITIATIVES, "No initiative concerns you yet."),
        (MILESTONES, "No milestone concerns you yet."),
        (READINGS, "No metric reading has been recorded for an initiative you can see."),
        (TRANSITIONS, "No initiative you can see has moved stage yet."),
        (NOTIFICATIONS, "You have no notifications."),
    ],
)
def test_an_empty_list_says_so_in_one_sentence(client, mine, theirs, url, sentence):
    page = _get(client, _staff(), url)
    html = page.content.decode()
    assert sentence in html
    assert 'id="result_list"' not in html


def test_a_list_with_rows_shows_the_table_not_the_sentence(client, mine):
    html = _get(client, mine.business_owner, MILESTONES).content.decode()
    assert 'id="result_list"' in html
    assert "No milestone concerns you yet." not in html


def test_someone_with_nothing_gets_no_add_button_or_action(client, mine):
    nobody = _staff()
    for url, add in ((MILESTONES, ADD_MILESTONE), (READINGS, ADD_READING)):
        page = _get(client, nobody, url)
        assert not page.context["has_add_permission"]
        assert add not in page.content.decode()
        assert client.get(add).status_code == 403
    assert not _get(client, nobody, INITIATIVES).context["has_add_permission"]
    assert _actions(_get(client, nobody, MILESTONES)) <= {"mark_done"}


# --- who may add ------------------------------------------------------------------------------


@pytest.mark.parametrize("person", ["business_owner", "sponsor", "delivery_lead"])
def test_the_people_of_an_initiative_may_add_milestones_and_readings(client, mine, person):
    user = getattr(mine, person)
    for url, add in ((MILESTONES, ADD_MILESTONE), (READINGS, ADD_READING)):
        page = _get(client, user, url)
        assert page.context["has_add_permission"], (person, url)
        assert add in page.content.decode()


def test_a_milestone_owner_sees_it_but_may_not_add(client, mine):
    owner = mine.milestones.get().owner
    page = _get(client, owner, MILESTONES)
    assert page.context["cl"].result_count == 1
    assert not page.context["has_add_permission"]
    assert not _get(client, owner, READINGS).context["has_add_permission"]
    # Their own milestone they may close either way.
    assert _actions(page) == {"mark_done", "waive"}


def test_a_service_account_may_mark_done_but_not_waive_or_add(client, mine):
    bot = _staff(groups=[INTEGRATIONS])
    mine.business_unit.members.add(bot)
    page = _get(client, bot, MILESTONES)
    assert page.context["cl"].result_count == 1
    assert _actions(page) == {"mark_done"}
    assert not page.context["has_add_permission"]
    assert not _get(client, bot, READINGS).context["has_add_permission"]


def test_pmo_may_add_everything_and_use_every_action(client, mine):
    pmo = _staff(groups=[PMO])
    for url in (MILESTONES, READINGS, INITIATIVES):
        assert _get(client, pmo, url).context["has_add_permission"], url
    assert _actions(_get(client, pmo, MILESTONES)) == {"mark_done", "waive"}


def test_initiatives_add_follows_what_initiative_create_allows(client, mine):
    assert _get(client, mine.business_owner, INITIATIVES).context["has_add_permission"]
    # A sponsor outside business-owners may change this initiative but not propose one.
    page = _get(client, mine.sponsor, INITIATIVES)
    assert page.context["cl"].result_count == 1
    assert not page.context["has_add_permission"]
    assert ADD_INITIATIVE not in page.content.decode()


# --- what the forms and filters offer ---------------------------------------------------------


def test_filters_list_only_what_the_user_may_see(client, mine, theirs):
    owner = mine.business_owner
    # A second initiative of theirs, so each filter has a choice to offer (one is not shown).
    second = InitiativeFactory(business_owner=owner)
    for initiative in (mine, second):
        metric = SuccessMetricFactory(initiative=initiative)
        MetricReading.objects.create(metric=metric, value=Decimal("1"), measured_at=timezone.now())
        MilestoneFactory(initiative=initiative)
    units = _filter_choices(_get(client, owner, INITIATIVES), "business unit")
    assert units == {str(mine.business_unit), str(second.business_unit)}
    for url in (MILESTONES, READINGS):
        assert _filter_choices(_get(client, owner, url), "initiative") == {
            str(mine),
            str(second),
        }, url
    pmo = _staff(groups=[PMO])
    units = _filter_choices(_get(client, pmo, INITIATIVES), "business unit")
    assert str(theirs.business_unit) in units
