"""Admin: PMO and superusers manage integrations; the secret is shown once; dead letters retry."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations.models import InboundDelivery, InboundStatus, Integration
from programs.roles import PMO
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["superuser", "pmo"])
def manager(request):
    if request.param == "superuser":
        return UserFactory(is_staff=True, is_superuser=True)
    return UserFactory(is_staff=True, groups=[PMO])


def test_integration_admin_pages_load_and_never_show_the_secret(client, manager, jira):
    InboundDelivery.objects.create(integration=jira, delivery_id="x", body={})
    client.force_login(manager)
    pages = [
        reverse("admin:index"),
        reverse("admin:integrations_integration_changelist"),
        reverse("admin:integrations_integration_change", args=[jira.pk]),
        reverse("admin:integrations_integration_add"),
        reverse("admin:integrations_inbounddelivery_changelist"),
        reverse("admin:integrations_inbounddelivery_changelist") + "?status__exact=pending",
        reverse(
            "admin:integrations_inbounddelivery_change", args=[InboundDelivery.objects.get().pk]
        ),
        reverse("admin:integrations_ticketstate_changelist"),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert jira.secret not in response.content.decode(), url
    listing = client.get(reverse("admin:integrations_integration_changelist")).content.decode()
    assert jira.masked_secret in listing


def test_the_secret_is_shown_once_after_creation(client, manager, bot, milestone):
    client.force_login(manager)
    response = client.post(
        reverse("admin:integrations_integration_add"),
        {
            "name": "Jira cloud",
            "slug": "jira-cloud",
            "kind": "jira",
            "service_user": bot.pk,
            "business_units": [milestone.initiative.business_unit_id],
            "is_active": "on",
        },
        follow=True,
    )
    assert response.status_code == 200
    integration = Integration.objects.get(slug="jira-cloud")
    page = response.content.decode()
    assert integration.secret in page
    assert "will not be shown again" in page
    again = client.get(reverse("admin:integrations_integration_change", args=[integration.pk]))
    assert integration.secret not in again.content.decode()


def test_a_service_user_outside_the_integrations_group_is_refused(client, milestone):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    human = UserFactory()
    response = client.post(
        reverse("admin:integrations_integration_add"),
        {"name": "Jira", "slug": "jira", "kind": "jira", "service_user": human.pk},
    )
    assert response.status_code == 200  # the form again, with the error
    assert not Integration.objects.exists()


def test_rotating_the_secret_shows_the_new_one_once(client, manager, jira):
    old = jira.secret
    client.force_login(manager)
    response = client.post(
        reverse("admin:integrations_integration_changelist"),
        {"action": "rotate_secret", "_selected_action": [jira.pk]},
        follow=True,
    )
    jira.refresh_from_db()
    assert jira.secret != old
    assert jira.secret in response.content.decode()
    listing = client.get(reverse("admin:integrations_integration_changelist"))
    assert jira.secret not in listing.content.decode()


def test_the_retry_action_requeues_a_dead_delivery(
    client, manager, jira, django_capture_on_commit_callbacks
):
    dead = InboundDelivery.objects.create(
        integration=jira, delivery_id="d", body={}, status=InboundStatus.DEAD, attempts=8
    )
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            reverse("admin:integrations_inbounddelivery_changelist"),
            {"action": "retry", "_selected_action": [dead.pk]},
        )
    assert response.status_code == 302
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == (InboundStatus.PENDING, 0)
    assert len(callbacks) == 1


def test_other_staff_cannot_see_integrations(client, jira):
    client.force_login(UserFactory(is_staff=True))
    url = reverse("admin:integrations_integration_changelist")
    assert client.get(url).status_code == 403
    assert "Ticketing integrations" not in client.get(reverse("admin:index")).content.decode()


def test_the_milestone_admin_shows_a_deleted_ticket(client, milestone):
    from django.utils import timezone

    milestone.external_deleted_at = timezone.now()
    milestone.save()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(reverse("admin:programs_milestone_changelist"))
    assert response.status_code == 200
    assert "column-external_deleted_at" in response.content.decode()
