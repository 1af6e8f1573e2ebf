"""The admin shows the services' refusals: invalid input on the form's fields, the rest as one
message; it never re-implements a rule the service decides."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from gatekeeper.admin_utils import refusal_message
from gatekeeper.errors import Conflict, TransitionRefused, ValidationFailed
from programs.models import MetricReading
from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory

pytestmark = pytest.mark.django_db


def _reading(client, metric, when):
    local = timezone.localtime(when)
    return client.post(
        "/admin/programs/metricreading/add/",
        {
            "metric": metric.pk,
            "value": "3",
            "measured_at_0": local.strftime("%Y-%m-%d"),
            "measured_at_1": local.strftime("%H:%M:%S"),
        },
    )


def test_a_reading_is_judged_by_the_service_not_a_stricter_form(client):
    owner = UserFactory(is_staff=True, groups=["business-owners"])
    metric = SuccessMetricFactory(initiative=InitiativeFactory(business_owner=owner))
    client.force_login(owner)

    # The service allows a clock a little ahead; the form used to refuse it.
    response = _reading(client, metric, timezone.now() + dt.timedelta(minutes=2))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert MetricReading.objects.count() == 1

    response = _reading(client, metric, timezone.now() + dt.timedelta(hours=2))
    assert response.status_code == 200  # the form again, with the service's reason on the field
    form = response.context["adminform"].form
    assert "in the future" in " ".join(form.errors["measured_at"])
    assert "A measurement cannot be in the future." in form.non_field_errors()
    assert MetricReading.objects.count() == 1


def test_refusal_message_lists_every_reason():
    assert refusal_message(Conflict("Milestone 'x' is done; it can't be edited")) == (
        "Milestone 'x' is done; it can't be edited"
    )
    refused = TransitionRefused("INI-1 is cancelled", unmet=["the initiative is closed"])
    assert refusal_message(refused) == "INI-1 is cancelled — the initiative is closed"
    invalid = ValidationFailed("Bad.", errors={"due_at": ["in the past"], "title": ["required"]})
    assert refusal_message(invalid) == "Bad. — due_at: in the past; title: required"
