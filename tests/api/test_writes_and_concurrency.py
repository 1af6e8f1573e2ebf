"""Writes through the API (create/edit initiatives, metrics, milestones, webhook endpoints),
service-account scope, and optimistic concurrency with ETag / If-Match."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from gatekeeper.errors import PermissionDenied
from notifications.models import Event, WebhookEndpoint
from programs import services as programs_services
from programs.models import Initiative, Milestone, MilestoneStatus
from programs.roles import BUSINESS_OWNERS, INTEGRATIONS, PMO
from programs.stages import Stage
from tests.factories import (
    BusinessUnitFactory,
    InitiativeFactory,
    MilestoneFactory,
    UserFactory,
)
from tests.unguarded import unguarded

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
PUBLIC_URL = "https://93.184.215.14/hook"  # a public address literal: no DNS in tests


def api_as(user) -> APIClient:
    _, token = AuthToken.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def later(days: int = 10) -> str:
    return (timezone.now() + dt.timedelta(days=days)).isoformat()


# --- service accounts: what they created, and their units' initiatives ----------------------


@pytest.fixture
def scoped_bot(db):
    bot = UserFactory(username="jira-bot", groups=[INTEGRATIONS])
    unit = BusinessUnitFactory(code="claims")
    unit.members.add(bot)
    return bot


def test_service_account_sees_its_units_and_what_it_created_and_nothing_else(scoped_bot):
    unit = scoped_bot.business_units.get()
    in_unit = InitiativeFactory(business_unit=unit)
    outside = InitiativeFactory()
    api = api_as(scoped_bot)
    created = api.post(
        "/api/v1/initiatives/",
        {"name": "From a ticket", "business_unit": outside.business_unit.code},
        format="json",
    )
    assert created.status_code == 201, created.content
    mine = created.json()["key"]
    keys = {r["key"] for r in api.get("/api/v1/initiatives/").json()["results"]}
    assert keys == {in_unit.key, mine}
    assert api.get(f"/api/v1/initiatives/{outside.key}/").status_code == 404
    # The rules agree with the lists, object by object.
    assert scoped_bot.has_perm("programs.view_initiative", in_unit)
    assert scoped_bot.has_perm("programs.view_initiative", Initiative.objects.get(key=mine))
    assert not scoped_bot.has_perm("programs.view_initiative", outside)
    # A person's unit membership gives them nothing: it says where owners come from.
    person = UserFactory()
    unit.members.add(person)
    assert api_as(person).get("/api/v1/initiatives/").json()["results"] == []


def test_service_account_completes_milestones_only_in_scope(scoped_bot):
    unit = scoped_bot.business_units.get()
    inside = MilestoneFactory(initiative=InitiativeFactory(business_unit=unit))
    outside = MilestoneFactory()
    api = api_as(scoped_bot)
    ids = [r["id"] for r in api.get("/api/v1/milestones/").json()["results"]]
    assert ids == [inside.pk]
    assert api.post(f"/api/v1/milestones/{inside.pk}/complete/").json()["status"] == "done"
    assert (
        api.post(f"/api/v1/milestones/{inside.pk}/reopen/", {}, format="json").json()["status"]
        == "open"
    )
    response = api.post(f"/api/v1/milestones/{outside.pk}/complete/")
    assert response.status_code == 404
    # And not around the API either: the service refuses what the selectors hide.
    with pytest.raises(PermissionDenied):
        programs_services.milestone_complete(milestone=outside, actor=scoped_bot)
    assert Milestone.objects.get(pk=outside.pk).status == MilestoneStatus.OPEN
    # Seeing is not editing: it still may not waive, reschedule or edit the initiative.
    assert (
        api.post(
            f"/api/v1/milestones/{inside.pk}/waive/", {"reason": "x"}, format="json"
        ).status_code
        == 403
    )
    assert (
        api.patch(
            f"/api/v1/initiatives/{inside.initiative.key}/", {"summary": "x"}, format="json"
        ).status_code
        == 403
    )


# --- initiatives ------------------------------------------------------------------------------


def test_create_initiative_pmo_only_fields_are_refused_for_others(db):
    unit = BusinessUnitFactory(code="ops")
    owner_group_user = UserFactory(groups=[BUSINESS_OWNERS])
    pmo = UserFactory(groups=[PMO])
    api = api_as(owner_group_user)
    refused = api.post(
        "/api/v1/initiatives/",
        {"name": "X", "business_unit": "ops", "business_owner": owner_group_user.username},
        format="json",
    )
    assert refused.status_code == 403 and refused["Content-Type"].startswith(PROBLEM)
    assert not Initiative.objects.exists()
    created = api_as(pmo).post(
        "/api/v1/initiatives/",
        {
            "key": "AI-900",
            "name": "Claims triage",
            "business_unit": unit.code,
            "business_owner": owner_group_user.username,
            "risk_tier": "high",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created["Location"].endswith("/api/v1/initiatives/AI-900/")
    assert created["ETag"]
    body = created.json()
    assert (body["stage"], body["risk_tier"], body["business_owner"]) == (
        "proposed",
        "high",
        owner_group_user.username,
    )
    again = api_as(pmo).post(
        "/api/v1/initiatives/",
        {"key": "AI-900", "name": "Y", "business_unit": "ops"},
        format="json",
    )
    assert again.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "", "business_unit": "ops"},
        {"name": "x", "business_unit": "nope"},
        {"name": "x", "business_unit": "ops", "key": "bad key!"},
        {"name": "x", "business_unit": "ops", "key": "K" * 21},
        {"name": "x" * 201, "business_unit": "ops"},
        {"name": "x\x00", "business_unit": "ops"},
        {"name": "x", "business_unit": ["ops"]},
        {"name": "x", "business_unit": "ops", "risk_tier": "extreme"},
        {"name": "x", "business_unit": "ops", "sponsor": "nobody-here"},
    ],
)
def test_bad_create_bodies_are_400(db, body):
    BusinessUnitFactory(code="ops")
    response = api_as(UserFactory(groups=[PMO])).post("/api/v1/initiatives/", body, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith(PROBLEM)


def test_patch_descriptive_fields_refuses_read_only_and_pmo_only(initiative):
    api = api_as(initiative.business_owner)
    url = f"/api/v1/initiatives/{initiative.key}/"
    sponsor = initiative.sponsor_id
    ok = api.patch(url, {"summary": "Route by severity", "health": "amber"}, format="json")
    assert ok.status_code == 200, ok.content
    assert (ok.json()["summary"], ok.json()["health"]) == ("Route by severity", "amber")
    refused = api.patch(url, {"stage": "pilot", "key": "AI-1", "summary": "x"}, format="json")
    assert refused.status_code == 400
    assert set(refused.json()["errors"]) == {"stage", "key"}
    pmo_only = api.patch(url, {"sponsor": initiative.business_owner.username}, format="json")
    assert pmo_only.status_code == 403
    initiative.refresh_from_db()
    assert (initiative.stage, initiative.sponsor_id) == (Stage.PROPOSED, sponsor)
    bad: object
    for bad in ([], "x", {"health": "purple"}, {"name": None}, {"business_unit": 7}):
        assert api.patch(url, bad, format="json").status_code == 400, bad
    assert api.put(url, {"summary": "x"}, format="json").status_code == 405


# --- ETag / If-Match ----------------------------------------------------------------------------


def test_stale_if_match_is_412_and_changes_nothing(initiative):
    api = api_as(initiative.business_owner)
    url = f"/api/v1/initiatives/{initiative.key}/"
    read = api.get(url)
    etag = read["ETag"]
    assert etag.startswith('"') and api.get(url)["ETag"] == etag  # stable while unchanged
    changed = api.patch(url, {"summary": "first"}, format="json", HTTP_IF_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    stale = api.patch(url, {"summary": "second"}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412
    assert stale["Content-Type"].startswith(PROBLEM)
    assert "changed since you read it" in stale.json()["detail"]
    hold = api.post(
        f"{url}transitions/",
        {"transition": "hold", "reason": "x"},
        format="json",
        HTTP_IF_MATCH=etag,
    )
    assert hold.status_code == 412
    initiative.refresh_from_db()
    assert (initiative.summary, initiative.stage) == ("first", Stage.PROPOSED)

    # Weak tags never match; the current one, "*" and no header at all do.
    def patched(if_match):
        return api.patch(url, {"summary": "s"}, format="json", HTTP_IF_MATCH=if_match)

    assert patched(f"W/{changed['ETag']}").status_code == 412
    assert patched("garbage").status_code == 412
    assert patched(changed["ETag"]).status_code == 200
    assert patched("*").status_code == 200
    hold = api.post(
        f"{url}transitions/",
        {"transition": "hold", "reason": "x"},
        format="json",
        HTTP_IF_MATCH=api.get(url)["ETag"],
    )
    assert hold.status_code == 201, hold.content


def test_milestone_etag_guards_reschedule_and_complete(initiative):
    api = api_as(initiative.business_owner)
    milestone = MilestoneFactory(initiative=initiative)
    url = f"/api/v1/milestones/{milestone.pk}/"
    etag = api.get(url)["ETag"]
    moved = api.patch(url, {"due_at": later(30)}, format="json", HTTP_IF_MATCH=etag)
    assert moved.status_code == 200, moved.content
    assert moved.json()["title"] == milestone.title
    assert api.post(f"{url}complete/", HTTP_IF_MATCH=etag).status_code == 412
    assert (
        api.post(f"{url}waive/", {"reason": "x"}, format="json", HTTP_IF_MATCH=etag).status_code
        == 412
    )
    assert Milestone.objects.get(pk=milestone.pk).status == MilestoneStatus.OPEN
    assert api.post(f"{url}complete/", HTTP_IF_MATCH=moved["ETag"]).status_code == 200


# --- metrics and milestones ----------------------------------------------------------------------


def test_add_and_update_metric(initiative):
    api = api_as(initiative.business_owner)
    created = api.post(
        "/api/v1/metrics/",
        {
            "initiative": initiative.key,
            "name": "Rework",
            "unit": "%",
            "baseline": "20",
            "target": "5",
            "direction": "lower",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    metric_id = created.json()["id"]
    assert (
        api.post(
            "/api/v1/metrics/", {"initiative": initiative.key, "name": "Rework"}, format="json"
        ).status_code
        == 400
    )  # duplicate name
    url = f"/api/v1/metrics/{metric_id}/"
    updated = api.patch(url, {"target": "4"}, format="json")
    assert updated.json()["target"] == "4.0000"
    assert api.patch(url, {"current_value": "1"}, format="json").status_code == 400
    for bad in ({"baseline": "NaN"}, {"target": "1" * 40}, {"direction": "up"}, {"name": ""}):
        assert api.patch(url, bad, format="json").status_code == 400
    # After G1 the target is what the gate judged against: PMO's to move.
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.PILOT)
    assert api.patch(url, {"target": "3"}, format="json").status_code == 403
    other = InitiativeFactory()
    hidden = api.post("/api/v1/metrics/", {"initiative": other.key, "name": "m"}, format="json")
    assert hidden.status_code == 400 and not other.metrics.exists()


def test_add_milestone_linked_to_a_ticket_then_find_reschedule_and_reopen(initiative):
    api = api_as(initiative.business_owner)
    body = {
        "initiative": initiative.key,
        "title": "Pilot sign-off",
        "owner": initiative.delivery_lead.username,
        "due_at": later(),
        "external_system": "JIRA",
        "external_key": "AIOPS-12",
    }
    created = api.post("/api/v1/milestones/", body, format="json")
    assert created.status_code == 201, created.content
    milestone_id = created.json()["id"]
    assert created.json()["stage"] == Stage.PROPOSED
    assert api.post("/api/v1/milestones/", body, format="json").status_code == 400  # linked
    found = api.get("/api/v1/milestones/?external_ref=JIRA:AIOPS-12").json()["results"]
    assert [r["id"] for r in found] == [milestone_id]
    assert api.get("/api/v1/milestones/?external_ref=AIOPS-12").status_code == 400
    url = f"/api/v1/milestones/{milestone_id}/"
    assert api.patch(url, {"status": "done"}, format="json").status_code == 400
    assert api.patch(url, {"owner": "nobody-here"}, format="json").status_code == 400
    assert api.post(f"{url}complete/").json()["status"] == "done"
    reopened = api.post(f"{url}reopen/", {"reason": "ticket reopened"}, format="json")
    assert reopened.json()["status"] == "open"
    assert api.post(f"{url}waive/", {"reason": "descoped"}, format="json").status_code == 200
    assert api.post(f"{url}reopen/", {}, format="json").status_code == 409
    assert api.patch(url, {"due_at": later(20)}, format="json").status_code == 409
    for bad in (
        {**body, "external_key": "AIOPS-13", "due_at": "tomorrow"},
        {**body, "external_key": ""},
        {**body, "external_key": "K" * 101},
        {**body, "stage": "nowhere"},
        {**body, "initiative": "AI-NOPE"},
    ):
        assert api.post("/api/v1/milestones/", bad, format="json").status_code == 400, bad


# --- webhook endpoints ----------------------------------------------------------------------------


def test_webhook_endpoint_lifecycle_secret_once_and_scope(scoped_bot):
    api = api_as(scoped_bot)
    created = api.post(
        "/api/v1/webhook-endpoints/",
        {"name": "Jira", "url": PUBLIC_URL, "event_types": ["milestone.*"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["owner"] == "jira-bot"
    url = f"/api/v1/webhook-endpoints/{body['id']}/"
    assert "secret" not in api.get(url).json()
    assert all("secret" not in r for r in api.get("/api/v1/webhook-endpoints/").json()["results"])
    # Another service account doesn't see it; PMO sees every endpoint.
    other = UserFactory(groups=[INTEGRATIONS])
    assert api_as(other).get(url).status_code == 404
    assert api_as(other).get("/api/v1/webhook-endpoints/").json()["results"] == []
    pmo = api_as(UserFactory(groups=[PMO]))
    rows = pmo.get("/api/v1/webhook-endpoints/").json()["results"]
    assert [r["id"] for r in rows] == [body["id"]]
    # Disabling goes through the service: the owner is told.
    disabled = api.patch(url, {"is_active": False}, format="json")
    assert disabled.json()["is_active"] is False
    assert disabled.json()["disabled_reason"].startswith("was disabled by")
    assert Event.objects.filter(type="webhook.endpoint_disabled").count() == 1
    assert api.patch(url, {"is_active": True}, format="json").json()["is_active"] is True
    assert api.patch(url, {"secret": "whsec_x"}, format="json").status_code == 400
    renamed = api.patch(url, {"name": "Jira prod", "event_types": []}, format="json")
    assert renamed.json()["name"] == "Jira prod"
    assert api.delete(url).status_code == 204
    assert not WebhookEndpoint.objects.exists()


@override_settings(GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS=False)
@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "url": "http://127.0.0.1/hook"},
        {"name": "x", "url": "http://10.0.0.5/hook"},
        {"name": "x", "url": "ftp://93.184.215.14/hook"},
        {"name": "x", "url": "not a url"},
        {"name": "x", "url": "https://93.184.215.14\\@127.0.0.1/"},
        {"name": "x", "url": PUBLIC_URL, "event_types": ["Review"]},
        {"name": "x", "url": PUBLIC_URL, "event_types": "review.*"},
        {"name": "x", "url": PUBLIC_URL, "event_types": [1]},
        {"name": "", "url": PUBLIC_URL},
        {"name": "x", "url": "https://" + "a" * 600 + ".com/"},
    ],
)
def test_webhook_destinations_are_checked_as_in_the_admin(scoped_bot, body):
    response = api_as(scoped_bot).post("/api/v1/webhook-endpoints/", body, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith(PROBLEM)
    assert not WebhookEndpoint.objects.exists()


def test_people_without_the_role_cannot_register_webhooks(scoped_bot):
    person = UserFactory(groups=[BUSINESS_OWNERS])
    response = api_as(person).post(
        "/api/v1/webhook-endpoints/", {"name": "x", "url": PUBLIC_URL}, format="json"
    )
    assert response.status_code == 403
    endpoint = WebhookEndpoint.objects.create(name="theirs", url=PUBLIC_URL, owner=person)
    url = f"/api/v1/webhook-endpoints/{endpoint.pk}/"
    moved = api_as(person).patch(url, {"url": "https://93.184.215.15/"}, format="json")
    assert moved.status_code == 403
    assert api_as(person).delete(url).status_code == 204
