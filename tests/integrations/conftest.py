"""Fixtures for the inbound webhook tests: an integration, a linked milestone, signed posts."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse

from gatekeeper.celery import app as celery_app
from integrations.models import Integration, IntegrationKind
from programs.roles import INTEGRATIONS
from tests.factories import MilestoneFactory, UserFactory

# 2026-11-20T10:00:00Z in Jira's milliseconds.
T0 = 1_795_168_800_000


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Run enqueued tasks inline, so the on-commit apply is observable without a worker."""
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


@pytest.fixture
def bot(db: Any) -> Any:
    return UserFactory(username="jira-bot", groups=[INTEGRATIONS])


@pytest.fixture
def milestone(db: Any, bot: Any) -> Any:
    milestone = MilestoneFactory(
        external_system="JIRA", external_key="AIP-7", title="Pilot sign-off"
    )
    # The PMO scopes a service account by making it a member of the unit (on the business unit's
    # or the integration's admin page): the integration's scope is its account's.
    milestone.initiative.business_unit.members.add(bot)
    return milestone


@pytest.fixture
def jira(bot: Any, milestone: Any) -> Integration:
    return Integration.objects.create(
        name="Jira prod", slug="jira-prod", kind=IntegrationKind.JIRA, service_user=bot
    )


def sign(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def jira_body(
    key: str = "AIP-7", category: str = "done", *, ts: int = T0, event: str = "jira:issue_updated"
) -> dict[str, Any]:
    """A trimmed but faithful Jira Cloud issue webhook body."""
    names = {"new": "To Do", "indeterminate": "In Progress", "done": "Done"}
    return {
        "timestamp": ts,
        "webhookEvent": event,
        "issue_event_type_name": "issue_generic",
        "user": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Mia Krystof"},
        "issue": {
            "id": "10002",
            "self": "https://example.atlassian.net/rest/api/2/10002",
            "key": key,
            "fields": {
                "summary": "Pilot sign-off with claims team",
                "status": {
                    "name": names[category],
                    "id": "10001",
                    "statusCategory": {"id": 3, "key": category, "name": names[category]},
                },
            },
        },
        "changelog": {
            "id": "10001",
            "items": [{"field": "status", "fieldtype": "jira", "toString": names[category]}],
        },
    }


def post_jira(
    client: Any,
    integration: Integration,
    body: dict[str, Any] | bytes,
    *,
    identifier: str | None = "wh-1",
    signature: str | None = None,
    ref: str | None = None,
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers: dict[str, str] = {}
    if identifier is not None:
        headers["X-Atlassian-Webhook-Identifier"] = identifier
    headers["X-Hub-Signature"] = (
        signature if signature is not None else sign(integration.secret, raw)
    )
    if signature == "":
        del headers["X-Hub-Signature"]
    url = reverse("integrations:jira", args=[ref or integration.slug])
    return client.post(url, raw, content_type="application/json", headers=headers)
