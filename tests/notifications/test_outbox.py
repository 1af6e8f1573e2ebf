"""emit(): the event and its deliveries live and die with the caller's transaction."""

from __future__ import annotations

from typing import cast

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.test import override_settings

from notifications.models import Channel, Delivery, DeliveryStatus, Event, Notification
from notifications.outbox import emit
from tests.factories import UserFactory
from tests.notifications.conftest import payload_with

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


def test_rolled_back_transaction_leaves_no_event_and_sends_nothing(
    eager_celery, django_capture_on_commit_callbacks
):
    user = UserFactory()
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Boom),
        transaction.atomic(),
    ):
        emit("review.submitted", payload_with(recipients=[{"user_id": user.pk}]), key="k1")
        raise Boom
    assert callbacks == []
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()
    assert mail.outbox == []


def test_committed_event_is_recorded_once_and_delivered(
    eager_celery, django_capture_on_commit_callbacks
):
    user = UserFactory(email="approver@example.com")
    payload = payload_with(recipients=[{"user_id": user.pk, "role": "approver"}])
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        first = emit("review.submitted", payload, key="review.submitted:7")
        again = emit("review.submitted", payload, key="review.submitted:7")
    assert first is not None
    assert again is None
    assert Event.objects.count() == 1
    statuses = dict(Delivery.objects.values_list("channel", "status"))
    assert statuses == {Channel.EMAIL: DeliveryStatus.DELIVERED, Channel.IN_APP: "delivered"}
    assert [m.to for m in mail.outbox] == [["approver@example.com"]]
    assert Notification.objects.filter(user=user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_emit_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match=r"inside transaction\.atomic"):
        emit("review.submitted", payload_with(), key="k")


def test_recipients_resolve_to_one_email_per_address_and_one_in_app_per_active_user():
    approver = UserFactory(email="Approver@example.com")
    gone = UserFactory(is_active=False)
    no_email = UserFactory(email="")
    with transaction.atomic():
        event = emit(
            "approval.reminder",
            payload_with(
                recipients=[
                    {"user_id": approver.pk, "role": "business"},
                    {"user_id": approver.pk, "email": "approver@example.com", "role": "risk"},
                    {"user_id": gone.pk},
                    {"user_id": no_email.pk},
                    {"email": "pmo-list@example.com", "role": "pmo"},
                ]
            ),
            key="r1",
        )
    assert event is not None
    rows = set(
        Delivery.objects.filter(event=event).values_list(
            "channel", "recipient_email", "recipient_user_id"
        )
    )
    assert rows == {
        (Channel.EMAIL, "Approver@example.com", approver.pk),
        (Channel.IN_APP, "", approver.pk),
        (Channel.IN_APP, "", no_email.pk),
        (Channel.EMAIL, "pmo-list@example.com", None),
    }


def test_webhook_deliveries_only_for_active_subscribed_endpoints(endpoint):
    from notifications.models import WebhookEndpoint

    narrow = WebhookEndpoint.objects.create(
        name="narrow", url="http://127.0.0.1:9/x", event_types=["milestone.overdue"]
    )
    WebhookEndpoint.objects.create(name="off", url="http://127.0.0.1:9/y", is_active=False)
    with transaction.atomic():
        stalled = emit("initiative.stalled", payload_with(), key="s1")
        overdue = emit("milestone.overdue", payload_with(), key="o1")
    assert set(Delivery.objects.filter(event=stalled).values_list("endpoint", flat=True)) == {
        endpoint.pk
    }
    assert set(Delivery.objects.filter(event=overdue).values_list("endpoint", flat=True)) == {
        endpoint.pk,
        narrow.pk,
    }


def test_unknown_event_types_from_other_apps_are_delivered_too(
    eager_celery, django_capture_on_commit_callbacks
):
    user = UserFactory()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        recipients = [{"user_id": user.pk}]
        emit("initiative.owner_assigned_v2", payload_with(recipients=recipients), key="u")
    assert mail.outbox[0].subject == "[Gatekeeper] Initiative: owner assigned v2"
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}


@override_settings(SITE_URL="https://gatekeeper.example.com")
def test_email_has_text_and_html_with_the_admin_link(
    eager_celery, django_capture_on_commit_callbacks
):
    user = UserFactory(email="owner@example.com")
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        emit(
            "review.submitted",
            payload_with(
                recipients=[{"user_id": user.pk}],
                title="Approval requested: AI-001 Claims triage",
                summary="G1 review of AI-001 <needs> your decision.",
                admin_url="/admin/gates/approval/5/change/",
            ),
            key="e1",
        )
    (message,) = mail.outbox
    link = "https://gatekeeper.example.com/admin/gates/approval/5/change/"
    assert message.subject == "[Gatekeeper] Approval requested: AI-001 Claims triage"
    assert link in message.body
    assert "<needs>" in message.body  # plain text is not HTML-escaped
    content, mimetype = cast(EmailMultiAlternatives, message).alternatives[0]
    html = cast(str, content)
    assert mimetype == "text/html"
    assert f'href="{link}"' in html
    assert "&lt;needs&gt;" in html  # and the HTML part is


def test_a_non_path_admin_url_is_not_linked(eager_celery, django_capture_on_commit_callbacks):
    user = UserFactory()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        emit(
            "review.decided",
            payload_with(recipients=[{"user_id": user.pk}], admin_url="//evil.example.com/x"),
            key="e2",
        )
    assert "evil.example.com" not in mail.outbox[0].body
    assert Notification.objects.get(user=user).link == ""


def test_in_app_notification_is_created_once_even_if_the_delivery_is_sent_again(
    eager_celery, django_capture_on_commit_callbacks
):
    from notifications.transports import InAppTransport

    user = UserFactory()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        emit(
            "milestone.overdue",
            payload_with(
                recipients=[{"user_id": user.pk}],
                milestone={"id": 3, "title": "Runbook"},
                title="Overdue milestone: Runbook (AI-001 Claims triage)",
            ),
            key="m1",
        )
    delivery = Delivery.objects.get(channel=Channel.IN_APP)
    InAppTransport().send(delivery)  # a worker that died after sending, before recording
    (note,) = Notification.objects.filter(user=user)
    assert note.title == "Overdue milestone: Runbook (AI-001 Claims triage)"


def test_enqueue_failure_after_commit_does_not_reach_the_caller(
    django_capture_on_commit_callbacks, monkeypatch
):
    from notifications import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(tasks.dispatch, "apply_async", broker_down)
    user = UserFactory()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        emit("review.submitted", payload_with(recipients=[{"user_id": user.pk}]), key="b1")
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.PENDING}


# --- webhook subscriptions -------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_types",
    [5, "review.submitted", {"review.submitted": True}, [""], ["  "], [5], ["Review Submitted"]],
)
def test_endpoint_event_types_must_be_a_list_of_type_names(event_types):
    from django.core.exceptions import ValidationError

    from notifications.models import WebhookEndpoint

    endpoint = WebhookEndpoint(name="x", url="https://hooks.example.com/x", event_types=event_types)
    with pytest.raises(ValidationError) as excinfo:
        endpoint.full_clean()
    assert "event_types" in excinfo.value.message_dict


@pytest.mark.parametrize("event_types", [[], ["review.submitted", "milestone.*"]])
def test_endpoint_event_types_accepts_names_and_prefix_wildcards(event_types):
    from notifications.models import WebhookEndpoint

    WebhookEndpoint(
        name="x", url="https://hooks.example.com/x", event_types=event_types
    ).full_clean()


def test_a_prefix_wildcard_subscribes_to_that_family_only():
    from notifications.models import WebhookEndpoint

    endpoint = WebhookEndpoint(event_types=["review.*"])
    assert endpoint.subscribes_to("review.submitted")
    assert endpoint.subscribes_to("review.withdrawn")
    assert not endpoint.subscribes_to("reviewer.added")
    assert not endpoint.subscribes_to("approval.decided")


def test_a_malformed_endpoint_is_skipped_and_logged_not_raised(endpoint, caplog):
    """Rows written around clean() (shell, update()) must not break every service's emit."""
    from notifications.models import WebhookEndpoint

    broken = WebhookEndpoint.objects.create(name="broken", url="http://127.0.0.1:9/b")
    WebhookEndpoint.objects.filter(pk=broken.pk).update(event_types=5)
    substring = WebhookEndpoint.objects.create(name="substring", url="http://127.0.0.1:9/s")
    WebhookEndpoint.objects.filter(pk=substring.pk).update(event_types="milestone.overdue")
    with caplog.at_level("ERROR", logger="notifications.outbox"), transaction.atomic():
        event = emit("milestone.overdue", payload_with(), key="m1")
    assert set(Delivery.objects.filter(event=event).values_list("endpoint", flat=True)) == {
        endpoint.pk
    }
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert f"webhook endpoint {broken.pk} " in logged
    assert f"webhook endpoint {substring.pk} " in logged
