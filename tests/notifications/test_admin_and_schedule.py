"""Admin: dead letters can be retried, each user sees only their own notifications.
Beat: the schedule in code lands in django-celery-beat's tables, and a pause survives."""

from __future__ import annotations

from io import StringIO
from typing import cast

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import override_settings
from django.urls import reverse
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from gatekeeper.celery import BEAT_SCHEDULE, _every
from gatekeeper.celery import app as celery_app
from notifications.checks import delivery_timing
from notifications.models import Channel, Delivery, DeliveryStatus, Event, Notification
from notifications.outbox import emit
from tests.factories import UserFactory
from tests.notifications.conftest import payload_with

pytestmark = pytest.mark.django_db


def test_admin_retry_action_gives_a_dead_delivery_a_fresh_round(
    client, django_capture_on_commit_callbacks
):
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    with transaction.atomic():
        event = emit(
            "review.decided", payload_with(recipients=[{"email": "a@example.com"}]), key="d"
        )
    dead = Delivery.objects.get(event=event, channel=Channel.EMAIL)
    Delivery.objects.filter(pk=dead.pk).update(
        status=DeliveryStatus.DEAD, attempts=8, next_attempt_at=None, last_error="boom"
    )
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            reverse("admin:notifications_delivery_changelist"),
            {"action": "retry_dead", "_selected_action": [dead.pk]},
        )
    assert response.status_code == 302
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == (DeliveryStatus.PENDING, 0)
    assert dead.next_attempt_at is not None
    assert len(callbacks) == 1  # its dispatch is queued once the retry commits


def test_staff_without_change_permission_cannot_retry_deliveries(client):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    with transaction.atomic():
        event = cast(
            Event,
            emit("review.decided", payload_with(recipients=[{"email": "a@example.com"}]), key="v"),
        )
    Delivery.objects.filter(event=event).update(status=DeliveryStatus.DEAD, next_attempt_at=None)
    client.force_login(viewer)
    client.post(
        reverse("admin:notifications_delivery_changelist"),
        {
            "action": "retry_dead",
            "_selected_action": list(event.deliveries.values_list("id", flat=True)),
        },
    )
    assert set(event.deliveries.values_list("status", flat=True)) == {DeliveryStatus.DEAD}


def test_each_user_sees_only_their_own_notifications(client):
    alice = UserFactory(is_staff=True)
    bob = UserFactory(is_staff=True)
    mine = Notification.objects.create(user=alice, event_type="x", title="For Alice")
    theirs = Notification.objects.create(user=bob, event_type="x", title="For Bob")
    client.force_login(alice)

    listing = client.get(reverse("admin:notifications_notification_changelist"))
    assert listing.status_code == 200
    assert "For Alice" in listing.content.decode()
    assert "For Bob" not in listing.content.decode()

    other = client.get(reverse("admin:notifications_notification_change", args=[theirs.pk]))
    assert other.status_code == 302  # "does not exist" for Alice
    client.get(reverse("admin:notifications_notification_change", args=[mine.pk]))
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.read_at is not None  # opening it reads it
    assert theirs.read_at is None


# Beat's scheduler closes "old" connections, which ends a test wrapped in a transaction.
@pytest.mark.django_db(transaction=True)
def test_code_schedule_is_synced_into_the_database_scheduler_and_a_pause_survives():
    DatabaseScheduler(app=celery_app)
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert set(BEAT_SCHEDULE) <= names
    assert {
        "notifications.redispatch",
        "programs.sweep_overdue_milestones",
        "gates.sweep_approval_deadlines",
    } <= names
    redispatch = PeriodicTask.objects.get(name="notifications.redispatch")
    assert redispatch.task == "notifications.redispatch"
    assert redispatch.interval.every == 30
    assert redispatch.expire_seconds == 30

    PeriodicTask.objects.filter(name="notifications.redispatch").update(enabled=False)
    DatabaseScheduler(app=celery_app)  # beat restarting
    assert not PeriodicTask.objects.get(name="notifications.redispatch").enabled


def test_schedule_intervals_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("GATEKEEPER_SCHEDULE_REDISPATCH_SECONDS", "7")
    assert _every("t", "GATEKEEPER_SCHEDULE_REDISPATCH_SECONDS", 30)["schedule"] == 7.0
    monkeypatch.setenv("GATEKEEPER_SCHEDULE_REDISPATCH_SECONDS", "soon")
    with pytest.raises(ImproperlyConfigured, match="GATEKEEPER_SCHEDULE_REDISPATCH_SECONDS"):
        _every("t", "GATEKEEPER_SCHEDULE_REDISPATCH_SECONDS", 30)


def test_settings_keep_the_visibility_timeout_above_every_retry_delay():
    assert delivery_timing() == []
    with override_settings(
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        CELERY_BROKER_TRANSPORT_OPTIONS={"visibility_timeout": 600},
    ):
        (error,) = delivery_timing()
    assert error.id == "notifications.E001"


@override_settings(NOTIFICATIONS={"REDISPATCH_GRACE_SECONDS": 0})
def test_redispatch_command_sends_due_deliveries_inline():
    from django.core.management import call_command

    with transaction.atomic():
        emit("review.decided", payload_with(recipients=[{"email": "a@example.com"}]), key="cmd")
    out = StringIO()
    call_command("redispatch_deliveries", "--inline", stdout=out)
    assert out.getvalue().strip() == "1 due deliveries attempted."
    assert Delivery.objects.get().status == DeliveryStatus.DELIVERED


def test_webhook_endpoints_accept_only_http_urls():
    from django.core.exceptions import ValidationError

    from notifications.models import WebhookEndpoint

    endpoint = WebhookEndpoint(name="x", url="ftp://files.example.com/hook")
    with pytest.raises(ValidationError, match="valid URL"):
        endpoint.full_clean()
    assert endpoint.secret.startswith("whsec_")


def _endpoint_form_data(endpoint, **overrides):
    data = {
        "name": endpoint.name,
        "url": endpoint.url,
        "event_types": '["review.submitted"]',
        "owner": endpoint.owner_id or "",
        "is_active": "on",
        "disabled_reason": "",
    }
    data.update(overrides)
    return data


def test_webhook_endpoint_change_form_cannot_flip_is_active(client):
    """Enabling/disabling goes through the services (owner told, reason kept), never the form."""
    from notifications.models import WebhookEndpoint
    from notifications.services import endpoint_disable

    owner = UserFactory(email="owner@example.com")
    endpoint = WebhookEndpoint.objects.create(
        name="hook", url="https://hooks.example.com/x", owner=owner
    )
    endpoint_disable(endpoint_id=endpoint.pk, reason="answered 410 Gone")
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = reverse("admin:notifications_webhookendpoint_change", args=[endpoint.pk])

    page = client.get(url).content.decode()
    assert 'name="is_active"' not in page and 'name="disabled_reason"' not in page

    response = client.post(url, _endpoint_form_data(endpoint, name="renamed"))
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.name == "renamed"  # the rest of the form still saves
    assert (endpoint.is_active, endpoint.disabled_reason) == (False, "answered 410 Gone")

    client.post(
        reverse("admin:notifications_webhookendpoint_changelist"),
        {"action": "enable", "_selected_action": [endpoint.pk]},
    )
    endpoint.refresh_from_db()
    assert (endpoint.is_active, endpoint.disabled_reason, endpoint.disabled_at) == (True, "", None)


def test_view_only_staff_cannot_enable_or_disable_endpoints(client):
    from notifications.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.create(name="hook", url="https://hooks.example.com/x")
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_webhookendpoint"))
    client.force_login(viewer)
    client.post(
        reverse("admin:notifications_webhookendpoint_changelist"),
        {"action": "disable", "_selected_action": [endpoint.pk]},
    )
    endpoint.refresh_from_db()
    assert endpoint.is_active


def test_webhook_endpoint_admin_refuses_event_types_that_are_not_a_list(client):
    from notifications.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.create(
        name="hook", url="https://hooks.example.com/x", event_types=["review.submitted"]
    )
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = reverse("admin:notifications_webhookendpoint_change", args=[endpoint.pk])
    for bad in ("5", '"review.submitted"', '["review.submitted", ""]'):
        response = client.post(url, _endpoint_form_data(endpoint, event_types=bad))
        assert response.status_code == 200, bad  # the form again, with the error
        assert "event_types" in response.context["adminform"].form.errors, bad
    endpoint.refresh_from_db()
    assert endpoint.event_types == ["review.submitted"]
