"""An integration's scope is its service account's business units, set on the integration's page."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from integrations.models import InboundDelivery, InboundStatus, Integration, IntegrationKind
from programs.models import MilestoneStatus
from programs.roles import INTEGRATIONS, PMO
from tests.factories import BusinessUnitFactory, MilestoneFactory, UserFactory
from tests.integrations.conftest import jira_body, post_jira

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


@pytest.fixture
def pmo() -> Any:
    return UserFactory(is_staff=True, groups=[PMO])


@pytest.fixture
def ops_milestone(db: Any) -> Any:
    return MilestoneFactory(
        external_system="jira",
        external_key="OPS-1",
        initiative__business_unit=BusinessUnitFactory(code="ops"),
    )


def change_form(
    integration: Integration, units: list[Any], *, shown: list[Any], **overrides: Any
) -> dict[str, Any]:
    return {
        "name": integration.name,
        "service_user": integration.service_user_id,
        "business_units": [unit.pk for unit in units],
        "initial-business_units": [unit.pk for unit in shown],
        "is_active": "on",
        **overrides,
    }


def test_a_unit_the_account_is_not_a_member_of_is_ignored_not_dead_and_says_why(
    client, jira, ops_milestone, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_jira(client, jira, jira_body("OPS-1", "done"))
    delivery = InboundDelivery.objects.get()
    assert delivery.status == InboundStatus.IGNORED
    assert delivery.last_error == ""
    assert "business unit ops is outside this integration's scope" in delivery.result_note
    assert "service account jira-bot is not a member of it" in delivery.result_note
    ops_milestone.refresh_from_db()
    assert ops_milestone.status == MilestoneStatus.OPEN


def test_adding_the_unit_on_the_integration_page_brings_its_tickets_into_scope(
    client, pmo, jira, bot, milestone, ops_milestone, django_capture_on_commit_callbacks
):
    home = milestone.initiative.business_unit
    ops = ops_milestone.initiative.business_unit
    client.force_login(pmo)
    page = client.get(reverse("admin:integrations_integration_change", args=[jira.pk]))
    assert page.context["adminform"].form["business_units"].initial == [home.pk]
    response = client.post(
        reverse("admin:integrations_integration_change", args=[jira.pk]),
        change_form(jira, [home, ops], shown=[home]),
    )
    assert response.status_code == 302
    # Written where the API and the rules read it: the account's memberships.
    assert set(bot.business_units.all()) == {home, ops}
    assert ops.members.filter(pk=bot.pk).exists()
    client.logout()
    with django_capture_on_commit_callbacks(execute=True):
        post_jira(client, jira, jira_body("OPS-1", "done"))
    assert InboundDelivery.objects.get().status == InboundStatus.APPLIED
    ops_milestone.refresh_from_db()
    assert (ops_milestone.status, ops_milestone.completed_by) == (MilestoneStatus.DONE, bot)


def test_removing_a_unit_takes_it_out_of_scope_and_an_untouched_list_writes_nothing(
    client, pmo, jira, bot, milestone, django_capture_on_commit_callbacks
):
    home = milestone.initiative.business_unit
    url = reverse("admin:integrations_integration_change", args=[jira.pk])
    client.force_login(pmo)
    # Memberships changed meanwhile (on the business unit's page) are not undone by a save
    # that did not touch the list.
    stale = change_form(jira, [home], shown=[home], is_active="")
    extra = BusinessUnitFactory(code="extra")
    extra.members.add(bot)
    assert client.post(url, stale).status_code == 302
    jira.refresh_from_db()
    assert not jira.is_active
    assert set(bot.business_units.all()) == {home, extra}
    # Removing one unit removes that one only.
    assert client.post(url, change_form(jira, [extra], shown=[home, extra])).status_code == 302
    assert list(bot.business_units.all()) == [extra]
    client.logout()
    with django_capture_on_commit_callbacks(execute=True):
        post_jira(client, jira, jira_body("AIP-7", "done"))
    delivery = InboundDelivery.objects.get()
    assert delivery.status == InboundStatus.IGNORED
    assert "outside this integration's scope" in delivery.result_note


def test_a_new_integration_adds_its_units_to_those_its_account_already_has(client, pmo):
    bot = UserFactory(username="snow-bot", groups=[INTEGRATIONS])
    kept, added = BusinessUnitFactory(code="kept"), BusinessUnitFactory(code="added")
    kept.members.add(bot)
    Integration.objects.create(
        name="Jira", slug="jira", kind=IntegrationKind.JIRA, service_user=bot
    )
    client.force_login(pmo)
    response = client.post(
        reverse("admin:integrations_integration_add"),
        {
            "name": "ServiceNow",
            "slug": "snow",
            "kind": "servicenow",
            "service_user": bot.pk,
            "business_units": [added.pk],
            "is_active": "on",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert set(bot.business_units.all()) == {kept, added}
    page = response.content.decode()
    assert "also acts for Jira" in page
    listing = client.get(reverse("admin:integrations_integration_changelist")).content.decode()
    assert "added, kept" in listing


def test_staff_who_may_not_manage_integrations_cannot_change_a_scope(client, jira, bot):
    unit = BusinessUnitFactory(code="sneaky")
    client.force_login(UserFactory(is_staff=True))
    response = client.post(
        reverse("admin:integrations_integration_change", args=[jira.pk]),
        change_form(jira, [unit], shown=[]),
    )
    assert response.status_code == 403
    assert not unit.members.filter(pk=bot.pk).exists()
