from __future__ import annotations

from unittest import mock

import pytest
from django.core.cache import cache
from knox.models import AuthToken
from rest_framework.test import APIClient

from programs.roles import PMO
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def low_rates(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {"caller": "3/min", "write": "1/min"}
    settings.REST_FRAMEWORK = rest
    cache.clear()
    yield
    cache.clear()


def _api(user):
    _, token = AuthToken.objects.create(user=user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return api


def test_each_token_has_its_own_budget_and_429_says_when_to_retry(low_rates):
    user = UserFactory(groups=[PMO])
    first, second = _api(user), _api(user)
    for _ in range(3):
        assert first.get("/api/v1/initiatives/").status_code == 200
    refused = first.get("/api/v1/initiatives/")
    assert refused.status_code == 429
    assert refused["Content-Type"].startswith("application/problem+json")
    assert int(refused["Retry-After"]) > 0
    assert second.get("/api/v1/initiatives/").status_code == 200


def test_writes_have_a_tighter_budget(low_rates):
    api = _api(UserFactory(groups=[PMO]))
    assert api.post("/api/v1/milestones/1/complete/").status_code == 404
    assert api.post("/api/v1/milestones/1/complete/").status_code == 429


@pytest.fixture
def low_rates_on_redis(settings):
    """The configured cache (Redis in the test settings, as in production) with low rates."""
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {"caller": "3/min", "write": "1/min"}
    settings.REST_FRAMEWORK = rest
    return settings


def test_both_budgets_are_read_at_once_and_each_allowing_one_records_the_call(
    low_rates_on_redis,
):
    api = _api(UserFactory(groups=[PMO]))
    with (
        mock.patch.object(cache, "get_many", wraps=cache.get_many) as get_many,
        mock.patch.object(cache, "set_many", wraps=cache.set_many) as set_many,
    ):
        assert api.post("/api/v1/milestones/1/complete/").status_code == 404
        assert (get_many.call_count, set_many.call_count) == (1, 1)
        # Refused by the write budget: the caller budget still counts it, as in DRF.
        refused = api.post("/api/v1/milestones/1/complete/")
        assert refused.status_code == 429
        assert int(refused["Retry-After"]) > 0
        assert get_many.call_count == 2
        assert api.get("/api/v1/initiatives/").status_code == 200  # the caller's third call
        assert api.get("/api/v1/initiatives/").status_code == 429
        assert get_many.call_count == 2  # a read checks one budget: a plain get
