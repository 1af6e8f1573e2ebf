"""Idempotency-Key on POSTs under /api/v1/ (api.idempotency, api.services)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from api import services as api_services
from api.models import IdempotencyKey
from api.tasks import purge_idempotency_keys
from gatekeeper.celery import BEAT_SCHEDULE
from programs import services as programs_services
from programs.models import MetricReading
from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
PROBLEMS = "https://gatekeeper.dev/problems/"


def _readings_url(metric) -> str:
    return f"/api/v1/metrics/{metric.pk}/readings/"


def _post(api, url, body, key):
    return api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_same_key_and_request_replays_the_stored_response_without_running_again(
    initiative, client_for
):
    api = client_for(initiative.business_owner)
    metric = initiative.metrics.get()
    url = _readings_url(metric)
    first = _post(api, url, {"value": "55.5", "measured_at": "2026-11-20T09:00:00Z"}, "k-1")
    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first

    # The same JSON with its keys in another order is the same request.
    again = _post(api, url, {"measured_at": "2026-11-20T09:00:00Z", "value": "55.5"}, "k-1")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert again["Content-Type"] == first["Content-Type"]
    assert MetricReading.objects.filter(metric=metric).count() == 1

    # A new key is a new request.
    other = _post(api, url, {"value": "55.5", "measured_at": "2026-11-20T09:00:00Z"}, "k-2")
    assert other.status_code == 201
    assert "Idempotent-Replayed" not in other
    assert MetricReading.objects.filter(metric=metric).count() == 2


def test_quoted_key_as_the_draft_sends_it_is_the_same_key(initiative, client_for):
    api = client_for(initiative.business_owner)
    url = _readings_url(initiative.metrics.get())
    assert _post(api, url, {"value": "1"}, '"8e03978e"').status_code == 201
    replay = _post(api, url, {"value": "1"}, "8e03978e")
    assert replay["Idempotent-Replayed"] == "true"
    assert MetricReading.objects.count() == 1


def test_same_key_with_another_body_or_path_is_422(initiative, client_for):
    api = client_for(initiative.business_owner)
    metric = initiative.metrics.get()
    assert _post(api, _readings_url(metric), {"value": "1"}, "k").status_code == 201

    for url, body in [
        (_readings_url(metric), {"value": "2"}),
        (f"/api/v1/initiatives/{initiative.key}/transitions/", {"value": "1"}),
    ]:
        refused = _post(api, url, body, "k")
        assert refused.status_code == 422, refused.content
        assert refused["Content-Type"] == PROBLEM
        assert refused.json()["type"] == PROBLEMS + "idempotency-key-reuse"
    assert MetricReading.objects.count() == 1


def test_refusals_are_stored_and_replayed_but_server_errors_free_the_key(
    initiative, client_for, monkeypatch
):
    api = client_for(initiative.business_owner)
    url = _readings_url(initiative.metrics.get())
    invalid = _post(api, url, {"value": "abc"}, "bad")
    assert invalid.status_code == 400
    replayed = _post(api, url, {"value": "abc"}, "bad")
    assert (replayed.status_code, replayed["Idempotent-Replayed"]) == (400, "true")
    assert replayed.json() == invalid.json()

    def broken(**kwargs):
        raise RuntimeError("database fell over")

    monkeypatch.setattr(programs_services, "metric_record_value", broken)
    assert _post(api, url, {"value": "3"}, "retry-me").status_code == 500
    assert not IdempotencyKey.objects.filter(key="retry-me").exists()
    monkeypatch.undo()
    retried = _post(api, url, {"value": "3"}, "retry-me")
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert MetricReading.objects.count() == 1


def test_keys_belong_to_their_caller(initiative, client_for):
    owner_api = client_for(initiative.business_owner)
    metric = initiative.metrics.get()
    first = _post(owner_api, _readings_url(metric), {"value": "7"}, "shared")
    assert first.status_code == 201

    # Another caller's same key is theirs: it runs their own request (no 422, no replay).
    other = InitiativeFactory(key="AI-OTHER")
    theirs = SuccessMetricFactory(initiative=other)
    own = _post(client_for(other.business_owner), _readings_url(theirs), {"value": "8"}, "shared")
    assert own.status_code == 201
    assert "Idempotent-Replayed" not in own

    # A caller sending the owner's very request with the owner's key gets their own answer
    # (404: the metric is out of their scope), never the owner's stored one.
    stranger = _post(client_for(UserFactory()), _readings_url(metric), {"value": "7"}, "shared")
    assert stranger.status_code == 404
    assert "Idempotent-Replayed" not in stranger
    assert MetricReading.objects.filter(metric=theirs).count() == 1
    assert IdempotencyKey.objects.filter(key="shared").count() == 3


@pytest.mark.parametrize("key", ["", "   ", "x" * 256, "a\x01b", "tab\there", "caf\u00e9"])
def test_malformed_key_is_400_and_nothing_runs(initiative, client_for, key):
    api = client_for(initiative.business_owner)
    response = _post(api, _readings_url(initiative.metrics.get()), {"value": "1"}, key)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    assert response.json()["type"] == PROBLEMS + "idempotency-key-invalid"
    assert not MetricReading.objects.exists()
    assert not IdempotencyKey.objects.exists()


def test_longest_key_is_accepted_and_no_key_stores_nothing(initiative, client_for):
    api = client_for(initiative.business_owner)
    url = _readings_url(initiative.metrics.get())
    assert api.post(url, {"value": "1"}, format="json").status_code == 201
    assert not IdempotencyKey.objects.exists()
    assert _post(api, url, {"value": "1"}, "x" * 255).status_code == 201
    assert IdempotencyKey.objects.get().key == "x" * 255


def test_keys_live_a_day_and_the_beat_purge_deletes_expired_ones(initiative, client_for):
    api = client_for(initiative.business_owner)
    url = _readings_url(initiative.metrics.get())
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert _post(api, url, {"value": "1"}, "old").status_code == 201
    with time_machine.travel(start + dt.timedelta(hours=23), tick=False):
        assert _post(api, url, {"value": "1"}, "old")["Idempotent-Replayed"] == "true"
        assert _post(api, url, {"value": "2"}, "young").status_code == 201
    with time_machine.travel(start + dt.timedelta(hours=25), tick=False):
        assert purge_idempotency_keys() == 1
        assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["young"]
        # Expired: the key is free again and the request runs anew.
        again = _post(api, url, {"value": "1"}, "old")
        assert again.status_code == 201
        assert "Idempotent-Replayed" not in again
    assert MetricReading.objects.count() == 3
    assert BEAT_SCHEDULE["api.purge_idempotency_keys"]["task"] == "api.purge_idempotency_keys"


def test_a_claim_abandoned_by_a_dead_process_can_be_taken_over(initiative):
    owner = initiative.business_owner
    claim = {"owner": owner, "key": "k", "fingerprint": "f", "method": "POST", "path": "/p"}
    start = timezone.now()
    outcome, _ = api_services.idempotency_key_claim(**claim, now=start)
    assert outcome is api_services.ClaimOutcome.CLAIMED
    later = start + dt.timedelta(seconds=10)
    assert api_services.idempotency_key_claim(**claim, now=later)[0].name == "IN_FLIGHT"
    much_later = start + api_services.IDEMPOTENCY_ABANDONED_AFTER + dt.timedelta(seconds=1)
    outcome, record = api_services.idempotency_key_claim(**claim, now=much_later)
    assert outcome is api_services.ClaimOutcome.CLAIMED
    assert record is not None
    assert record.claimed_at == much_later


@pytest.mark.django_db(transaction=True)
def test_same_key_while_the_first_is_in_flight_is_409_then_replayed(
    initiative, client_for, monkeypatch
):
    api = client_for(initiative.business_owner)
    metric = initiative.metrics.get()
    url = _readings_url(metric)
    entered, release = threading.Event(), threading.Event()
    real = programs_services.metric_record_value

    def slow(**kwargs):
        entered.set()
        assert release.wait(timeout=30)
        return real(**kwargs)

    monkeypatch.setattr(programs_services, "metric_record_value", slow)
    results = {}

    def first_request():
        try:
            results["first"] = _post(api, url, {"value": "9"}, "in-flight")
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    thread.start()
    try:
        assert entered.wait(timeout=30), "the first request never reached the service"
        # The claim is committed before the action runs, so this connection sees it.
        second = _post(api, url, {"value": "9"}, "in-flight")
        assert second.status_code == 409, second.content
        assert second["Content-Type"] == PROBLEM
        assert second.json()["type"] == PROBLEMS + "idempotency-key-in-flight"
        assert int(second["Retry-After"]) >= 1
    finally:
        release.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert results["first"].status_code == 201, results["first"].content

    third = _post(api, url, {"value": "9"}, "in-flight")
    assert third.status_code == 201
    assert third["Idempotent-Replayed"] == "true"
    assert third.content == results["first"].content
    assert MetricReading.objects.filter(metric=metric).count() == 1
