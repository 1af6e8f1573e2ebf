"""The admin's busiest lists cost the same number of queries for a few rows as for a page of them.

Each test opens a changelist as PMO (who sees every row) with a few rows, adds many more, and
opens it again: the two counts must be equal, so a column that reads a related row per line (an
N+1) fails here instead of slowing the page down as the portfolio grows. The budget is a ceiling
that also catches a constant but careless page.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from gates import services as gates
from gates.models import ApprovalStatus
from notifications.models import Channel, Delivery, Event, WebhookEndpoint
from programs import services as programs
from programs.models import MetricReading
from tests.factories import (
    InitiativeFactory,
    MilestoneFactory,
    SuccessMetricFactory,
    UserFactory,
)
from tests.gates.helpers import submitted_review

pytestmark = pytest.mark.django_db

FEW, MANY = 3, 30
# Reviews go through the services (open, evidence, submit), so fewer of them keep the test quick.
FEW_REVIEWS, MANY_REVIEWS = 2, 8
BUDGET = 25


@pytest.fixture
def ops_client(client):
    """Events and deliveries are operations' pages, outside PMO's permissions."""
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def pmo_client(client, panel):
    panel.pmo.is_staff = True
    panel.pmo.save(update_fields=["is_staff"])
    client.force_login(panel.pmo)
    return client


def _queries(client: Any, url: str, assert_max: Any) -> tuple[int, int]:
    """The queries of one page view, and how many rows the page listed."""
    with assert_max(BUDGET) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured), len(response.context["cl"].result_list)


def _constant(
    client: Any, assert_max: Any, url: str, add: Callable[[int], Any], few: int, many: int
) -> None:
    add(few)
    small, few_rows = _queries(client, url, assert_max)
    add(many - few)
    large, many_rows = _queries(client, url, assert_max)
    assert few_rows >= few and many_rows >= many  # the counts are of full pages, not empty ones
    assert small == large, f"{url}: {small} queries for {few_rows} rows, {large} for {many_rows}"


def _initiative() -> Any:
    initiative = InitiativeFactory(delivery_lead=UserFactory())
    SuccessMetricFactory(initiative=initiative)
    return initiative


def _initiatives(n: int) -> None:
    for _ in range(n):
        _initiative()


def _milestones(n: int) -> None:
    for _ in range(n):
        MilestoneFactory(initiative=_initiative())


def _readings(n: int) -> None:
    for _ in range(n):
        MetricReading.objects.create(
            metric=SuccessMetricFactory(initiative=_initiative()),
            value=Decimal("50"),
            measured_at=timezone.now(),
            recorded_by=UserFactory(),
        )


def _transitions(pmo: Any) -> Callable[[int], None]:
    def add(n: int) -> None:
        for _ in range(n):
            programs.initiative_hold(initiative=_initiative(), actor=pmo, reason="budget review")

    return add


def _reviews(n: int) -> None:
    for _ in range(n):
        initiative = _initiative()
        submitted_review(initiative, initiative.delivery_lead)


def _deliveries(n: int) -> None:
    endpoint = WebhookEndpoint.objects.create(
        name=f"hook-{timezone.now().timestamp()}", url="https://hooks.example.com/in"
    )
    with transaction.atomic():
        for i in range(n):
            event = Event.objects.create(
                type="test.event", key=f"test:{endpoint.pk}:{i}", payload={}
            )
            person = UserFactory()
            Delivery.objects.create(event=event, channel=Channel.IN_APP, recipient_user=person)
            Delivery.objects.create(event=event, channel=Channel.WEBHOOK, endpoint=endpoint)
            Delivery.objects.create(
                event=event, channel=Channel.EMAIL, recipient_email=person.email
            )


def test_initiative_list(pmo_client, django_assert_max_num_queries):
    url = reverse("admin:programs_initiative_changelist")
    _constant(pmo_client, django_assert_max_num_queries, url, _initiatives, FEW, MANY)


def test_milestone_list(pmo_client, django_assert_max_num_queries):
    url = reverse("admin:programs_milestone_changelist")
    _constant(pmo_client, django_assert_max_num_queries, url, _milestones, FEW, MANY)


def test_metric_reading_list(pmo_client, django_assert_max_num_queries):
    url = reverse("admin:programs_metricreading_changelist")
    _constant(pmo_client, django_assert_max_num_queries, url, _readings, FEW, MANY)


def test_stage_transition_list(pmo_client, panel, django_assert_max_num_queries):
    url = reverse("admin:programs_stagetransition_changelist")
    _constant(pmo_client, django_assert_max_num_queries, url, _transitions(panel.pmo), FEW, MANY)


def test_gate_review_list(pmo_client, django_assert_max_num_queries):
    url = reverse("admin:gates_gatereview_changelist")
    _constant(pmo_client, django_assert_max_num_queries, url, _reviews, FEW_REVIEWS, MANY_REVIEWS)


def test_approvals_inbox(pmo_client, django_assert_max_num_queries):
    url = reverse("admin:gates_approvalinbox_changelist")
    _constant(pmo_client, django_assert_max_num_queries, url, _reviews, FEW_REVIEWS, MANY_REVIEWS)


def test_approvals_decided_by_me(pmo_client, panel, django_assert_max_num_queries):
    def decide(n: int) -> None:
        _reviews(n)
        for approval in gates_pending_for(panel.pmo):
            gates.approval_decide(approval=approval, actor=panel.pmo, decision="approve")

    url = reverse("admin:gates_approvalinbox_changelist") + "?view=decided"
    _constant(pmo_client, django_assert_max_num_queries, url, decide, FEW_REVIEWS, MANY_REVIEWS)


def gates_pending_for(user: Any) -> list[Any]:
    from gates.models import Approval

    return list(Approval.objects.filter(approver=user, status=ApprovalStatus.PENDING))


def test_event_list(ops_client, django_assert_max_num_queries):
    url = reverse("admin:notifications_event_changelist")
    _constant(ops_client, django_assert_max_num_queries, url, _deliveries, FEW, MANY)


def test_delivery_list(ops_client, django_assert_max_num_queries):
    url = reverse("admin:notifications_delivery_changelist")
    _constant(ops_client, django_assert_max_num_queries, url, _deliveries, FEW, MANY)
