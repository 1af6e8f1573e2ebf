"""Property-based run of every operation in the live OpenAPI schema (schemathesis).

The schema is served by the app itself and the calls go through its WSGI handler against the
real PostgreSQL test database, as a PMO caller (sees everything) with a real knox token. The
run is derandomized and bounded, so CI explores the same examples on every run: any 5xx, or a
documented response whose body does not match its schema, fails the build.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from gatekeeper.wsgi import application
from programs import services as programs_services
from programs.models import ExternalReference
from programs.roles import PMO
from tests.factories import InitiativeFactory, MilestoneFactory, SuccessMetricFactory, UserFactory
from tests.gates.helpers import pass_gate, submitted_review

AUTH: dict[str, str] = {}


@pytest.fixture
def api_schema(db, initiative, panel, settings_override) -> Iterator[Any]:
    # Django's test client detaches these for the same reason: closing "old" connections at
    # the end of a request would end the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        _seed(initiative, panel)
        _, token = AuthToken.objects.create(user=UserFactory(groups=[PMO]))
        AUTH["Authorization"] = f"Token {token}"
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _seed(initiative: Any, panel: Any) -> None:
    """Rows in every state the responses can describe: the nulls and blanks of an undecided
    approval, a held initiative, a completed milestone, a system-made transition."""
    pass_gate(initiative, panel)  # G1 decided: approvals, evidence, a transition, readings
    programs_services.initiative_hold(initiative=initiative, actor=None, reason="Budget")
    ExternalReference.objects.create(initiative=initiative, system="JIRA", key="AIOPS-1")
    other = InitiativeFactory(key="AI-002", delivery_lead=UserFactory(), sponsor=None)
    SuccessMetricFactory(initiative=other)
    submitted_review(other, other.delivery_lead)  # approvals still pending
    programs_services.milestone_complete(
        milestone=MilestoneFactory(initiative=other), actor=other.business_owner
    )
    MilestoneFactory(initiative=other)


@pytest.fixture
def settings_override(settings):
    # Throttling is tested on its own; here it would only turn examples into 429s.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"caller": None, "write": None},
    }


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case):
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error, response_schema_conformance])
