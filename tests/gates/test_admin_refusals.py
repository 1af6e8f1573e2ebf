"""The gates admin reads its rules from selectors and shows the services' refusals on forms."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from gates import selectors, services
from gates.models import Delegation
from programs.roles import PMO
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_refused_delegation_is_shown_on_its_field(client, panel):
    pmo = panel.pmo
    pmo.is_staff = True
    pmo.save(update_fields=["is_staff"])
    client.force_login(pmo)
    today = timezone.localdate().isoformat()
    response = client.post(
        reverse("admin:gates_delegation_add"),
        {
            "principal": panel.risk.pk,
            "deputy": panel.bot.pk,
            "starts_on": today,
            "ends_on": today,
            "reason": "leave",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "service account" in " ".join(errors["deputy"])
    assert not Delegation.objects.exists()


def test_delegations_visible_to(panel):
    today = timezone.localdate()
    deputy = UserFactory()
    services.delegation_create(
        actor=None, principal=panel.risk, deputy=deputy, starts_on=today, ends_on=today
    )
    assert selectors.delegations_visible_to(user=deputy).count() == 1
    assert selectors.delegations_visible_to(user=panel.risk).count() == 1
    assert selectors.delegations_visible_to(user=UserFactory()).count() == 0
    assert selectors.delegations_visible_to(user=UserFactory(groups=[PMO])).count() == 1


def test_condition_owners_are_people_who_can_sign_in(panel):
    gone = UserFactory(is_active=False)
    owners = set(selectors.condition_owner_candidates())
    assert panel.risk in owners
    assert panel.bot not in owners and gone not in owners
