"""JSON log lines carry the request id, and an emitted event its type and initiative key."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
import structlog
from django.db import transaction

from gatekeeper.logs import logging_config
from notifications.outbox import emit
from notifications.services import delivery_attempt


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The production formatter (JSON) on a handler of the root logger."""
    stream = io.StringIO()
    config = logging_config(json=True, level="INFO")
    formatter = logging.config.dictConfigClass(config).configure_custom(  # type: ignore[attr-defined]
        dict(config["formatters"]["structured"])
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    structlog.contextvars.clear_contextvars()
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        structlog.contextvars.clear_contextvars()


def _records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.django_db
def test_a_request_logs_json_with_its_request_id(client, json_lines, django_user_model):
    user = django_user_model.objects.create_user("logged", password="pw")
    client.force_login(user)
    client.get("/healthz")
    records = [r for r in _records(json_lines) if r.get("event") == "request_finished"]
    assert records, json_lines.getvalue()
    assert records[-1]["request_id"]
    assert records[-1]["user_id"] == user.pk
    assert records[-1]["level"] == "info"
    assert "timestamp" in records[-1]


@pytest.mark.django_db
def test_an_emitted_event_logs_its_type_and_initiative(json_lines):
    with transaction.atomic():
        emit(
            "initiative.updated",
            {"title": "t", "initiative": {"key": "AI-0042"}, "recipients": []},
            key="log-test:1",
        )
    emitted = [r for r in _records(json_lines) if r.get("event") == "event emitted"]
    assert emitted, json_lines.getvalue()
    assert emitted[0]["event_type"] == "initiative.updated"
    assert emitted[0]["initiative"] == "AI-0042"
    assert emitted[0]["event_key"] == "log-test:1"
    assert emitted[0]["logger"] == "notifications.outbox"


def test_celerys_own_per_task_info_lines_are_left_to_django_structlogs(json_lines):
    # Received / succeeded: django-structlog's task_started and task_succeeded say the same,
    # with the task's context.
    for name in ("celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(name).info("Task x[1] succeeded in 0.002s: None")
        logging.getLogger(name).error("Task x[2] raised unexpected: boom")
    events = [r["event"] for r in _records(json_lines)]
    assert events == ["Task x[2] raised unexpected: boom"] * 2


@pytest.mark.django_db
def test_a_delivery_logs_under_its_own_event_key(json_lines):
    with transaction.atomic():
        event = emit(
            "initiative.updated",
            {"title": "t", "initiative": {"key": "AI-0042"}, "recipients": [{"email": "a@x.test"}]},
            key="log-test:mine",
        )
        # The message was queued with the context of the transaction's last event.
        emit("initiative.updated", {"title": "u", "recipients": []}, key="log-test:last")
    assert event is not None
    delivery = event.deliveries.get()

    delivery_attempt(delivery_id=delivery.pk)

    context = structlog.contextvars.get_contextvars()
    assert context["event_key"] == "log-test:mine"
    assert context["delivery"] == delivery.pk
    assert context["initiative"] == "AI-0042"
