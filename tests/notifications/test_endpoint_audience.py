"""A webhook endpoint is sent the events about the initiatives its owner may see through the API
(notifications.audience, answered by programs): an integration account scoped to its business
units gets its units' events only, the PMO's and an admin's endpoints get every event."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import transaction

from notifications.models import Channel, Delivery, WebhookEndpoint
from notifications.outbox import emit
from programs.roles import INTEGRATIONS, PMO
from tests.factories import BusinessUnitFactory, InitiativeFactory, UserFactory
from tests.notifications.conftest import payload_with
from tests.sqlite import assert_passes_on_sqlite

pytestmark = pytest.mark.django_db

URL = "https://93.184.215.14/hook"


def _about(initiative, key: str) -> set[int]:
    """The endpoints sent an event about ``initiative`` (emitted in its own transaction)."""
    summary = {"id": initiative.pk, "key": initiative.key, "name": "x", "stage": "pilot"}
    with transaction.atomic():
        event = emit("initiative.updated", payload_with(initiative=summary), key=key)
    assert event is not None
    return set(
        Delivery.objects.filter(event=event, channel=Channel.WEBHOOK).values_list(
            "endpoint_id", flat=True
        )
    )


@pytest.fixture
def bot():
    account = UserFactory(username="jira-bot", groups=[INTEGRATIONS])
    BusinessUnitFactory(code="claims").members.add(account)
    return account


def test_an_integration_accounts_endpoint_is_sent_its_units_initiatives_only(bot):
    hook = WebhookEndpoint.objects.create(name="jira", url=URL, owner=bot)
    everything = WebhookEndpoint.objects.create(name="admin's", url=URL, owner=None)
    claims = bot.business_units.get()
    mine = InitiativeFactory(business_unit=claims)
    other = InitiativeFactory()
    assert _about(mine, "1") == {hook.pk, everything.pk}
    assert _about(other, "2") == {everything.pk}
    assert _about(other, "3") == {everything.pk}  # the endpoints as cached, same answer
    # Scoped to a second unit: its membership is read at each event, not cached.
    other.business_unit.members.add(bot)
    assert _about(other, "4") == {hook.pk, everything.pk}


def test_what_an_integration_account_created_is_its_own(bot):
    hook = WebhookEndpoint.objects.create(name="jira", url=URL, owner=bot)
    created = InitiativeFactory(created_by=bot)
    assert _about(created, "1") == {hook.pk}


def test_a_pmo_endpoint_gets_every_initiative_until_its_owner_leaves_the_pmo():
    pmo = UserFactory(username="pmo", groups=[PMO])
    hook = WebhookEndpoint.objects.create(name="pmo tool", url=URL, owner=pmo)
    elsewhere = InitiativeFactory()
    assert _about(elsewhere, "1") == {hook.pk}
    assert _about(elsewhere, "2") == {hook.pk}  # cached with the owner's standing
    pmo.groups.remove(Group.objects.get(name=PMO))
    assert _about(elsewhere, "3") == set()
    pmo.is_superuser = True
    pmo.save(update_fields=["is_superuser"])
    assert _about(elsewhere, "4") == {hook.pk}


def test_a_deactivated_owners_endpoint_is_sent_nothing_about_initiatives(bot):
    pmo = UserFactory(username="pmo", groups=[PMO])
    theirs = WebhookEndpoint.objects.create(name="pmo tool", url=URL, owner=pmo)
    jira = WebhookEndpoint.objects.create(name="jira", url=URL, owner=bot)
    mine = InitiativeFactory(business_unit=bot.business_units.get())
    assert _about(mine, "1") == {theirs.pk, jira.pk}
    assert _about(mine, "2") == {theirs.pk, jira.pk}  # cached with the owners' standing
    for account in (pmo, bot):
        account.is_active = False
        account.save(update_fields=["is_active"])
    assert _about(mine, "3") == set()
    pmo.is_active = True
    pmo.save(update_fields=["is_active"])
    assert _about(mine, "4") == {theirs.pk}


def test_an_event_about_no_initiative_goes_to_every_subscriber(bot):
    hook = WebhookEndpoint.objects.create(name="jira", url=URL, owner=bot)
    with transaction.atomic():
        event = emit("gate_template.revised", {"title": "G2 revised", "recipients": []}, key="t")
    assert event is not None
    sent = Delivery.objects.filter(event=event, channel=Channel.WEBHOOK)
    assert list(sent.values_list("endpoint_id", flat=True)) == [hook.pk]


def test_a_person_who_sees_nothing_is_sent_nothing_about_initiatives():
    person = UserFactory(username="someone")
    hook = WebhookEndpoint.objects.create(name="theirs", url=URL, owner=person)
    mine = InitiativeFactory(business_owner=person)
    assert _about(InitiativeFactory(), "1") == set()
    assert _about(mine, "2") == {hook.pk}


@pytest.mark.slow
def test_the_same_on_sqlite(tmp_path):
    """`make run`'s embedded database reads the endpoints and their owners' standing with the
    same statement (no fingerprint there: the endpoints are read at every event)."""
    assert_passes_on_sqlite(__file__, tmp_path)
