"""Metric values have 15 significant digits, 4 after the point: every value accepted is read
back exactly as written, on PostgreSQL and on SQLite (which keeps decimals as doubles), and a
longer one is refused with a clear error instead of failing on the way back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient

from gatekeeper.errors import ValidationFailed
from programs import services
from programs.models import MetricReading, SuccessMetric
from tests.factories import InitiativeFactory, SuccessMetricFactory
from tests.sqlite import assert_passes_on_sqlite

pytestmark = pytest.mark.django_db

LARGEST = Decimal("99999999999.9999")
EDGES = [LARGEST, -LARGEST, Decimal("12345678901.2345"), Decimal("0.0001"), Decimal("-0.0001")]


@pytest.mark.parametrize("value", EDGES)
def test_the_widest_values_are_read_back_exactly(value):
    initiative = InitiativeFactory()
    metric = services.metric_add(
        initiative=initiative, actor=None, name="Net savings", unit="EUR", baseline=value
    )
    services.metric_record_value(metric=metric, actor=None, value=value)
    stored = SuccessMetric.objects.get(pk=metric.pk)
    assert (stored.baseline, stored.current_value) == (value, value)
    assert MetricReading.objects.get(metric=metric).value == value


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("100000000000", "digits"),  # 12 before the point: 16 with the 4 after it
        ("999999999999999999", "digits"),  # what the old 18 digits allowed
        ("1.00001", "decimal places"),
    ],
)
def test_a_service_refuses_a_value_too_long_naming_the_field(value, says):
    metric = SuccessMetricFactory()
    with pytest.raises(ValidationFailed) as refused:
        services.metric_record_value(metric=metric, actor=None, value=value)
    assert list(refused.value.errors) == ["value"]
    assert says in " ".join(refused.value.errors["value"])
    assert not MetricReading.objects.filter(metric=metric).exists()


def test_the_api_refuses_a_value_too_long_with_a_clear_400():
    metric = SuccessMetricFactory()
    _, token = AuthToken.objects.create(user=metric.initiative.business_owner)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = api.post(
        f"/api/v1/metrics/{metric.pk}/readings/", {"value": "123456789012.5"}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert "value" in response.json()["errors"]
    assert not MetricReading.objects.filter(metric=metric).exists()


@pytest.mark.slow
def test_the_same_on_sqlite(tmp_path):
    """`make run`'s embedded database: the tests above, run again on SQLite."""
    assert_passes_on_sqlite(__file__, tmp_path)
