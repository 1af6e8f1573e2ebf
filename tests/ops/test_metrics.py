"""/metrics: django-prometheus' metrics plus ours, and who may read them."""

from __future__ import annotations

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

from gatekeeper import metrics
from notifications.models import Delivery, DeliveryStatus
from notifications.outbox import emit

pytestmark = pytest.mark.django_db

OUTSIDE = "203.0.113.9"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.GATEKEEPER_METRICS_ALLOW = ["127.0.0.0/8", "10.0.0.0/8"]
    settings.GATEKEEPER_METRICS_TOKEN = "s3cret-scrape-token"
    return settings


def test_metrics_served_to_loopback_and_allowed_networks(client, production):
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    production.GATEKEEPER_METRICS_ALLOW = []
    assert client.get("/metrics").status_code == 404


def test_metrics_refused_outside_unless_the_bearer_token_is_sent(client, production):
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDE).status_code == 404
    wrong = client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 404
    right = client.get(
        "/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer s3cret-scrape-token"
    )
    assert right.status_code == 200
    assert b"django_http_requests_total_by_method_total" in right.content
    production.GATEKEEPER_METRICS_TOKEN = ""
    assert (
        client.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Bearer ").status_code == 404
    )


def test_events_transitions_and_decisions_are_counted_on_commit(
    django_capture_on_commit_callbacks,
):
    before = {
        "events": _value("gatekeeper_events_total", type="initiative.stage_changed"),
        "moves": _value(
            "gatekeeper_stage_transitions_total", from_stage="proposed", to_stage="discovery"
        ),
        "decisions": _value("gatekeeper_gate_decisions_total", gate="G1", outcome="approved"),
    }
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        emit(
            "initiative.stage_changed",
            {"from_stage": "proposed", "to_stage": "discovery", "recipients": []},
            key="metrics-test:move",
        )
        emit(
            "review.decided",
            {"review": {"gate": "G1"}, "outcome": "approved", "recipients": []},
            key="metrics-test:decision",
        )
    assert _value("gatekeeper_events_total", type="initiative.stage_changed") == (
        before["events"] + 1
    )
    assert (
        _value("gatekeeper_stage_transitions_total", from_stage="proposed", to_stage="discovery")
        == before["moves"] + 1
    )
    assert (
        _value("gatekeeper_gate_decisions_total", gate="G1", outcome="approved")
        == before["decisions"] + 1
    )


def test_a_rolled_back_event_is_not_counted(django_capture_on_commit_callbacks):
    before = _value("gatekeeper_events_total", type="initiative.updated")
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                emit("initiative.updated", {"recipients": []}, key="metrics-test:rollback")
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    assert _value("gatekeeper_events_total", type="initiative.updated") == before


def test_delivery_backlog_is_read_from_the_database_on_scrape(client):
    with transaction.atomic():
        event = emit(
            "initiative.updated",
            {"recipients": [{"email": "a@example.com"}, {"email": "b@example.com"}]},
            key="metrics-test:backlog",
        )
    Delivery.objects.filter(event=event, recipient_email="b@example.com").update(
        status=DeliveryStatus.DEAD
    )
    body = client.get("/metrics").content.decode()
    pending = Delivery.objects.filter(status=DeliveryStatus.PENDING).count()
    dead = Delivery.objects.filter(status=DeliveryStatus.DEAD).count()
    assert f'gatekeeper_deliveries{{status="pending"}} {float(pending)}' in body
    assert f'gatekeeper_deliveries{{status="dead"}} {float(dead)}' in body
    assert 'gatekeeper_deliveries{status="sending"} 0.0' in body


def test_sweep_duration_and_rows_are_observed_from_celery_signals():
    from programs.tasks import sweep_stalled_initiatives

    metrics.connect_task_signals()
    task = "programs.sweep_stalled_initiatives"
    runs = _value("gatekeeper_sweep_duration_seconds_count", task=task)
    sweep_stalled_initiatives.apply()
    assert _value("gatekeeper_sweep_duration_seconds_count", task=task) == runs + 1
    assert REGISTRY.get_sample_value("gatekeeper_sweep_rows_total", {"task": task}) is not None
