"""ServiceNow business-rule messages: the documented shape, secret or HMAC, deduped by change."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from integrations.models import InboundDelivery, InboundStatus, Integration, IntegrationKind
from programs.models import MilestoneStatus
from tests.factories import MilestoneFactory
from tests.integrations.conftest import sign

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


@pytest.fixture
def snow_milestone(db, bot):
    milestone = MilestoneFactory(external_system="ServiceNow", external_key="CHG0031")
    milestone.initiative.business_unit.members.add(bot)  # the service account's scope
    return milestone


@pytest.fixture
def snow(bot, snow_milestone):
    return Integration.objects.create(
        name="ServiceNow", slug="snow", kind=IntegrationKind.SERVICENOW, service_user=bot
    )


def body(state_category="closed", updated_on="2026-11-20T10:00:00Z", number="CHG0031"):
    return {
        "sys_id": "9d385017c611228701d22104cc95c371",
        "table": "change_request",
        "number": number,
        "state": "Closed" if state_category == "closed" else "Implement",
        "state_category": state_category,
        "updated_on": updated_on,
    }


def post(client, integration, data, *, secret=None, hmac_signed=False):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    headers = {}
    if hmac_signed:
        headers["X-Gatekeeper-Signature"] = sign(integration.secret, raw)
    else:
        headers["X-Gatekeeper-Secret"] = integration.secret if secret is None else secret
    url = reverse("integrations:servicenow", args=[integration.slug])
    return client.post(url, raw, content_type="application/json", headers=headers)


def test_a_closed_change_completes_the_linked_milestone(
    client, snow, snow_milestone, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, snow, body("closed"))
    assert response.status_code == 202
    delivery = InboundDelivery.objects.get()
    assert delivery.delivery_id == "9d385017c611228701d22104cc95c371:2026-11-20T10:00:00Z"
    assert delivery.status == InboundStatus.APPLIED
    snow_milestone.refresh_from_db()
    assert snow_milestone.status == MilestoneStatus.DONE


def test_open_again_reopens_and_the_hmac_header_is_accepted_too(
    client, snow, snow_milestone, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(client, snow, body("closed", "2026-11-20T10:00:00Z"))
        post(client, snow, body("open", "2026-11-20T11:00:00Z"), hmac_signed=True)
    snow_milestone.refresh_from_db()
    assert snow_milestone.status == MilestoneStatus.OPEN
    assert InboundDelivery.objects.filter(status=InboundStatus.APPLIED).count() == 2


def test_the_same_change_sent_twice_is_stored_once(
    client, snow, snow_milestone, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(client, snow, body("closed"))
        again = post(client, snow, body("closed"))
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert InboundDelivery.objects.count() == 1


def test_an_older_change_delivered_late_is_ignored(
    client, snow, snow_milestone, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(client, snow, body("closed", "2026-11-20T11:00:00Z"))
        post(client, snow, body("open", "2026-11-20T10:00:00Z"))
    snow_milestone.refresh_from_db()
    assert snow_milestone.status == MilestoneStatus.DONE
    late = InboundDelivery.objects.get(delivery_id__endswith="10:00:00Z")
    assert late.status == InboundStatus.IGNORED


def test_an_unknown_number_is_ignored(client, snow, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post(client, snow, body(number="INC0000001"))
    delivery = InboundDelivery.objects.get()
    assert delivery.status == InboundStatus.IGNORED
    assert delivery.result_note == "no milestone is linked to SERVICENOW INC0000001"


@pytest.mark.parametrize("secret", ["", "wrong"])
def test_a_missing_or_wrong_secret_is_401(client, snow, secret):
    response = post(client, snow, body(), secret=secret)
    assert response.status_code == 401
    assert not InboundDelivery.objects.exists()


def test_a_body_without_sys_id_or_updated_on_is_400(client, snow):
    response = post(client, snow, {"number": "CHG0031", "state_category": "closed"})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"sys_id", "updated_on"}
    assert not InboundDelivery.objects.exists()


def test_bad_json_is_400(client, snow):
    assert post(client, snow, b"[1, 2").status_code == 400
    assert not InboundDelivery.objects.exists()


def test_a_jira_integration_does_not_answer_on_the_servicenow_url(client, jira):
    url = reverse("integrations:servicenow", args=[jira.slug])
    response = client.post(url, b"{}", content_type="application/json")
    assert response.status_code == 404
