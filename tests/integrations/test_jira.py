"""Jira Cloud webhooks: verified, stored once, answered 202, applied to the linked milestone."""

from __future__ import annotations

import pytest

from integrations.models import InboundDelivery, InboundStatus, TicketState
from notifications.models import Event
from programs import services as program_services
from programs.models import MilestoneStatus
from tests.factories import BusinessUnitFactory, MilestoneFactory
from tests.integrations.conftest import T0, jira_body, post_jira

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


def test_done_status_category_completes_the_linked_milestone_as_the_service_account(
    client, jira, milestone, bot, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_jira(client, jira, jira_body("AIP-7", "done"))
    assert response.status_code == 202
    delivery = InboundDelivery.objects.get()
    assert response.json() == {
        "delivery": delivery.pk,
        "delivery_id": "wh-1",
        "status": "pending",
        "duplicate": False,
    }
    delivery.refresh_from_db()
    assert delivery.status == InboundStatus.APPLIED
    assert delivery.applied_at is not None
    assert "completed" in delivery.result_note
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.DONE
    assert milestone.completed_by == bot
    assert TicketState.objects.get(integration=jira, issue_key="AIP-7").last_event_ts == T0


def test_in_progress_status_category_on_an_open_milestone_changes_nothing(
    client, jira, milestone, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_jira(client, jira, jira_body("AIP-7", "indeterminate"))
    assert response.status_code == 202
    delivery = InboundDelivery.objects.get()
    assert delivery.status == InboundStatus.IGNORED
    assert "already open" in delivery.result_note
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.OPEN


def test_a_ticket_moved_back_from_done_reopens_the_milestone_and_re_arms_its_alerts(
    client, jira, milestone, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_jira(client, jira, jira_body("AIP-7", "done", ts=T0), identifier="a")
        post_jira(client, jira, jira_body("AIP-7", "new", ts=T0 + 60_000), identifier="b")
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.OPEN
    assert milestone.completed_at is None and milestone.completed_by is None
    assert (milestone.next_alert_at, milestone.alert_level) == (milestone.due_at, 0)
    reopened = Event.objects.get(type="milestone.reopened")
    assert reopened.payload["recipients"][0]["user_id"] == milestone.owner_id
    assert InboundDelivery.objects.get(delivery_id="b").status == InboundStatus.APPLIED


def test_a_deleted_issue_flags_the_milestone_and_tells_its_owner(
    client, jira, milestone, django_capture_on_commit_callbacks
):
    body = jira_body("AIP-7", "indeterminate", event="jira:issue_deleted")
    with django_capture_on_commit_callbacks(execute=True):
        post_jira(client, jira, body)
    milestone.refresh_from_db()
    assert milestone.external_deleted_at is not None
    assert milestone.status == MilestoneStatus.OPEN  # a person decides what it means
    event = Event.objects.get(type="milestone.ticket_deleted")
    assert event.payload["recipients"] == [
        {"user_id": milestone.owner_id, "email": milestone.owner.email, "role": "milestone_owner"}
    ]
    assert InboundDelivery.objects.get().status == InboundStatus.APPLIED


def test_an_unknown_issue_key_is_ignored_with_a_note(
    client, jira, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_jira(client, jira, jira_body("NOPE-1", "done"))
    assert response.status_code == 202
    delivery = InboundDelivery.objects.get()
    assert delivery.status == InboundStatus.IGNORED
    assert delivery.result_note == "no milestone is linked to JIRA NOPE-1"


def test_an_unsupported_event_is_ignored_with_a_note(
    client, jira, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_jira(client, jira, jira_body(event="comment_created"))
    delivery = InboundDelivery.objects.get()
    assert delivery.status == InboundStatus.IGNORED
    assert "comment_created" in delivery.result_note


def test_a_milestone_outside_the_integrations_business_units_is_ignored(
    client, jira, django_capture_on_commit_callbacks
):
    other = MilestoneFactory(
        external_system="jira",
        external_key="OPS-1",
        initiative__business_unit=BusinessUnitFactory(code="elsewhere"),
    )
    with django_capture_on_commit_callbacks(execute=True):
        post_jira(client, jira, jira_body("OPS-1", "done"))
    delivery = InboundDelivery.objects.get()
    assert delivery.status == InboundStatus.IGNORED
    assert "outside this integration's scope" in delivery.result_note
    other.refresh_from_db()
    assert other.status == MilestoneStatus.OPEN


@pytest.mark.parametrize(
    "signature",
    ["", "sha256=" + "0" * 64, "sha1=abc", "not-a-signature"],
    ids=["missing", "wrong", "other-algorithm", "garbage"],
)
def test_a_missing_or_bad_signature_is_401_and_nothing_is_stored(client, jira, signature):
    response = post_jira(client, jira, jira_body(), signature=signature)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/not-authenticated")
    assert not InboundDelivery.objects.exists()


def test_a_body_signed_with_another_integrations_secret_is_refused(client, jira):
    from tests.integrations.conftest import sign

    raw = b'{"webhookEvent": "jira:issue_updated"}'
    response = post_jira(client, jira, raw, signature=sign("someone-elses-secret", raw))
    assert response.status_code == 401


def test_a_replay_of_the_same_identifier_is_accepted_and_applies_nothing_new(
    client, jira, milestone, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = post_jira(client, jira, jira_body("AIP-7", "done"), identifier="same")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = post_jira(client, jira, jira_body("AIP-7", "done"), identifier="same")
    assert again.status_code == 202
    assert again.json()["delivery"] == first.json()["delivery"]
    assert again.json()["duplicate"] is True
    assert callbacks == []  # nothing new enqueued
    assert InboundDelivery.objects.count() == 1
    assert Event.objects.filter(type="milestone.done").count() == 1


def test_an_older_event_delivered_late_is_ignored(
    client, jira, milestone, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_jira(client, jira, jira_body("AIP-7", "done", ts=T0 + 5_000), identifier="newer")
        post_jira(client, jira, jira_body("AIP-7", "new", ts=T0), identifier="older")
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.DONE
    late = InboundDelivery.objects.get(delivery_id="older")
    assert late.status == InboundStatus.IGNORED
    assert late.result_note.startswith("out of order")


def test_the_integration_can_be_addressed_by_id(
    client, jira, milestone, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_jira(client, jira, jira_body(), ref=str(jira.pk))
    assert response.status_code == 202
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.DONE


def test_an_inactive_or_unknown_integration_is_404(client, jira):
    assert post_jira(client, jira, jira_body(), ref="nope").status_code == 404
    jira.is_active = False
    jira.save()
    assert post_jira(client, jira, jira_body()).status_code == 404
    assert not InboundDelivery.objects.exists()


def test_bad_json_is_400_and_nothing_is_stored(client, jira):
    response = post_jira(client, jira, b"{not json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/invalid-json")
    assert not InboundDelivery.objects.exists()


def test_a_missing_webhook_identifier_is_400(client, jira):
    assert post_jira(client, jira, jira_body(), identifier=None).status_code == 400
    assert not InboundDelivery.objects.exists()


def test_a_body_over_one_megabyte_is_413(client, jira):
    raw = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = post_jira(client, jira, raw)
    assert response.status_code == 413
    assert not InboundDelivery.objects.exists()


def test_a_waived_milestone_is_left_alone(
    client, jira, milestone, django_capture_on_commit_callbacks
):
    program_services.milestone_waive(milestone=milestone, actor=None, reason="descoped")
    with django_capture_on_commit_callbacks(execute=True):
        post_jira(client, jira, jira_body("AIP-7", "done"))
    assert InboundDelivery.objects.get().status == InboundStatus.IGNORED
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.WAIVED


def test_get_is_not_allowed(client, jira):
    from django.urls import reverse

    assert client.get(reverse("integrations:jira", args=[jira.slug])).status_code == 405
