from __future__ import annotations

import datetime as dt
from typing import cast

import pytest
from django.urls import URLPattern, reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from api.urls import router
from gatekeeper.types import User
from gates import services as gates_services
from gates.models import Approval, ApprovalStatus, Evidence, ReviewState
from notifications.models import WebhookEndpoint
from programs import services as programs_services
from programs.models import ExternalReference, MetricReading, Milestone, StageTransition
from programs.roles import INTEGRATIONS, PMO
from programs.stages import Stage
from tests.factories import (
    InitiativeFactory,
    MilestoneFactory,
    UserFactory,
)
from tests.gates.helpers import pending, submitted_review

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def api_as(user) -> APIClient:
    _, token = AuthToken.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


# --- reads --------------------------------------------------------------------------------


def test_owner_sees_own_initiative_by_key_and_not_others(initiative):
    InitiativeFactory(key="AI-OTHER")
    api = api_as(initiative.business_owner)
    listing = api.get("/api/v1/initiatives/").json()
    assert [row["key"] for row in listing["results"]] == [initiative.key]
    detail = api.get(f"/api/v1/initiatives/{initiative.key}/").json()
    assert detail["business_owner"] == initiative.business_owner.username
    assert detail["stage"] == "proposed"
    assert api.get("/api/v1/initiatives/AI-OTHER/").status_code == 404


def test_initiative_filters(db):
    pmo = UserFactory(groups=[PMO])
    late = InitiativeFactory(key="AI-LATE", risk_tier="high")
    MilestoneFactory(initiative=late, due_at=timezone.now() - dt.timedelta(days=1))
    stalled = InitiativeFactory(key="AI-STALL", stall_at=timezone.now() - dt.timedelta(days=1))
    ExternalReference.objects.create(initiative=stalled, system="JIRA", key="AIOPS-12")
    api = api_as(pmo)

    def keys(query):
        response = api.get(f"/api/v1/initiatives/?{query}")
        assert response.status_code == 200, response.content
        return [r["key"] for r in response.json()["results"]]

    assert keys("overdue=true") == ["AI-LATE"]
    assert keys("stalled=true") == ["AI-STALL"]
    assert keys("external_ref=JIRA:AIOPS-12") == ["AI-STALL"]
    assert keys("risk_tier=high") == ["AI-LATE"]
    late_owner = cast(User, late.business_owner)
    assert keys(f"owner={late_owner.username}") == ["AI-LATE"]
    assert keys(f"owner={late_owner.pk}") == ["AI-LATE"]
    assert keys(f"business_unit={late.business_unit.code}") == ["AI-LATE"]
    assert keys("stage=proposed&ordering=-key") == ["AI-STALL", "AI-LATE"]
    future = (timezone.now() + dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert keys(f"updated_since={future}") == []
    page = api.get("/api/v1/initiatives/?limit=1&offset=1").json()
    assert page["count"] == 2 and len(page["results"]) == 1


def test_milestone_lookup_by_external_ref(initiative):
    milestone = MilestoneFactory(
        initiative=initiative, external_system="JIRA", external_key="AIOPS-7"
    )
    api = api_as(initiative.business_owner)
    rows = api.get("/api/v1/milestones/?external_ref=JIRA:AIOPS-7").json()["results"]
    assert [r["id"] for r in rows] == [milestone.pk]


def test_metrics_readings_history_templates(initiative):
    api = api_as(initiative.business_owner)
    metric = initiative.metrics.get()
    rows = api.get(f"/api/v1/metrics/?initiative={initiative.key}").json()["results"]
    assert [r["id"] for r in rows] == [metric.pk]
    created = api.post(f"/api/v1/metrics/{metric.pk}/readings/", {"value": "55.5"}, format="json")
    assert created.status_code == 201, created.content
    assert MetricReading.objects.filter(metric=metric).count() == 1
    readings = api.get(f"/api/v1/metrics/{metric.pk}/readings/").json()["results"]
    assert readings[0]["value"] == "55.5000"
    templates = api.get("/api/v1/gate-templates/").json()["results"]
    assert {t["gate"] for t in templates} >= {"G1", "G2", "G3", "G4"}
    assert api.get(f"/api/v1/initiatives/{initiative.key}/history/").json()["results"] == []


def test_metric_reading_rejects_huge_and_non_numbers(initiative):
    api = api_as(initiative.business_owner)
    metric = initiative.metrics.get()
    values: list[object] = ["1" * 40, "NaN", "Infinity", "abc", None, [], {"a": 1}]
    for value in values:
        response = api.post(
            f"/api/v1/metrics/{metric.pk}/readings/", {"value": value}, format="json"
        )
        assert response.status_code == 400, (value, response.content)


# --- transitions --------------------------------------------------------------------------


def test_transitions_list_what_this_caller_may_do(initiative, panel):
    owner_view = api_as(initiative.business_owner).get(
        f"/api/v1/initiatives/{initiative.key}/transitions/"
    )
    options = {o["name"]: o for o in owner_view.json()}
    assert set(options) == {"start_pilot", "hold", "cancel"}
    assert options["hold"]["allowed"] is True
    assert options["start_pilot"]["allowed"] is False
    assert options["start_pilot"]["unmet"]
    # A milestone owner sees the initiative but may not move it.
    helper = UserFactory()
    MilestoneFactory(initiative=initiative, owner=helper)
    seen = {
        o["name"]: o
        for o in api_as(helper).get(f"/api/v1/initiatives/{initiative.key}/transitions/").json()
    }
    assert seen["hold"]["permitted"] is False
    assert seen["hold"]["unmet"][0].startswith("you may not hold")
    refused = api_as(helper).post(
        f"/api/v1/initiatives/{initiative.key}/transitions/",
        {"transition": "hold", "reason": "no"},
        format="json",
    )
    assert refused.status_code == 403


def test_refused_transition_is_409_with_every_unmet_condition(initiative):
    initiative.business_owner = None
    initiative.save()
    initiative.metrics.all().delete()
    pmo = UserFactory(groups=[PMO])
    response = api_as(pmo).post(
        f"/api/v1/initiatives/{initiative.key}/transitions/",
        {"transition": "start_pilot"},
        format="json",
    )
    assert response.status_code == 409
    assert response["Content-Type"].startswith(PROBLEM)
    conditions = response.json()["errors"]["conditions"]
    assert any("business owner" in c for c in conditions)
    assert any("metric" in c for c in conditions)
    assert len(conditions) >= 3


def test_hold_and_resume_through_the_api_ignore_read_only_fields(initiative):
    api = api_as(initiative.business_owner)
    response = api.post(
        f"/api/v1/initiatives/{initiative.key}/transitions/",
        {"transition": "hold", "reason": "budget", "stage": "operations", "actor": "someone"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["to_stage"] == "on_hold"
    assert response.json()["actor"] == initiative.business_owner.username
    initiative.refresh_from_db()
    assert initiative.stage == Stage.ON_HOLD
    resumed = api.post(
        f"/api/v1/initiatives/{initiative.key}/transitions/",
        {"transition": "resume"},
        format="json",
    )
    assert resumed.status_code == 201
    assert StageTransition.objects.filter(initiative=initiative).count() == 2
    history = api.get(f"/api/v1/initiatives/{initiative.key}/history/").json()["results"]
    assert [h["transition"] for h in history] == ["hold", "resume"]


def test_stale_caller_gets_409_saying_so(initiative):
    api = api_as(initiative.business_owner)
    response = api.post(
        f"/api/v1/initiatives/{initiative.key}/transitions/",
        {"transition": "hold", "reason": "x", "expected_stage": "pilot"},
        format="json",
    )
    assert response.status_code == 409
    assert "moved by someone else" in response.json()["detail"]


# --- reviews, evidence, approvals -----------------------------------------------------------


def test_review_open_attach_submit_and_decide(initiative, panel):
    lead = initiative.delivery_lead
    api = api_as(lead)
    opened = api.post("/api/v1/reviews/", {"initiative": initiative.key}, format="json")
    assert opened.status_code == 201, opened.content
    review_id = opened.json()["id"]
    checklist = opened.json()["checklist"]
    evidence_codes = [c["code"] for c in checklist if c["kind"] == "evidence"]
    early = api.post(f"/api/v1/reviews/{review_id}/submit/")
    assert early.status_code == 409
    assert early.json()["errors"]["conditions"]
    for code in evidence_codes:
        attached = api.post(
            f"/api/v1/reviews/{review_id}/evidence/",
            {"criterion": code, "url": f"https://wiki.example.com/{code}"},
            format="json",
        )
        assert attached.status_code == 201, attached.content
    assert len(api.get(f"/api/v1/evidence/?review={review_id}").json()["results"]) == len(
        evidence_codes
    )
    submitted = api.post(f"/api/v1/reviews/{review_id}/submit/")
    assert submitted.status_code == 200, submitted.content
    assert submitted.json()["state"] == ReviewState.SUBMITTED

    for approval in Approval.objects.filter(review_id=review_id):
        approver = panel.for_role(approval.role, initiative)
        response = api_as(approver).post(
            f"/api/v1/approvals/{approval.pk}/decision/",
            {"decision": "approve", "comment": "fine", "status": "rejected"},
            format="json",
        )
        assert response.status_code == 200, response.content
        assert response.json()["status"] == ApprovalStatus.APPROVED
    initiative.refresh_from_db()
    assert initiative.stage == Stage.PILOT


def test_submitter_cannot_approve_through_the_api(initiative, panel):
    lead = initiative.delivery_lead
    review = submitted_review(initiative, lead)
    approval = pending(review)[0]
    principal = panel.for_role(approval.role, initiative)
    # The submitter becomes the approver's deputy afterwards: still may not decide.
    today = timezone.localdate()
    gates_services.delegation_create(
        actor=None, principal=principal, deputy=lead, starts_on=today, ends_on=today
    )
    response = api_as(lead).post(
        f"/api/v1/approvals/{approval.pk}/decision/",
        {"decision": "approve", "comment": "mine"},
        format="json",
    )
    assert response.status_code == 403
    assert "submitted" in response.json()["detail"]
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_service_account_cannot_approve_even_when_it_sees_the_approval(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    approval = pending(review)[0]
    panel_bot = UserFactory(username="bot-pmo", groups=[INTEGRATIONS, PMO])
    response = api_as(panel_bot).post(
        f"/api/v1/approvals/{approval.pk}/decision/",
        {"decision": "approve"},
        format="json",
    )
    assert response.status_code == 403
    assert "service account" in response.json()["detail"]
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_conditional_go_with_conditions_and_bad_condition_input(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    approval = pending(review)[0]
    approver = api_as(panel.for_role(approval.role, initiative))
    bad = approver.post(
        f"/api/v1/approvals/{approval.pk}/decision/",
        {
            "decision": "approve",
            "outcome": "conditional_go",
            "conditions": [{"title": "x", "owner": "nobody\x00", "due_at": "soon"}],
        },
        format="json",
    )
    assert bad.status_code == 400
    due = (timezone.now() + dt.timedelta(days=10)).isoformat()
    ok = approver.post(
        f"/api/v1/approvals/{approval.pk}/decision/",
        {
            "decision": "approve",
            "outcome": "conditional_go",
            "conditions": [
                {"title": "Runbook", "owner": initiative.delivery_lead.username, "due_at": due}
            ],
        },
        format="json",
    )
    assert ok.status_code == 200, ok.content
    assert review.conditions.count() == 1


def test_review_withdraw(initiative):
    api = api_as(initiative.business_owner)
    review_id = api.post("/api/v1/reviews/", {"initiative": initiative.key}, format="json").json()[
        "id"
    ]
    assert api.post(f"/api/v1/reviews/{review_id}/withdraw/", {}, format="json").status_code == 400
    response = api.post(
        f"/api/v1/reviews/{review_id}/withdraw/", {"reason": "scope changed"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["state"] == ReviewState.WITHDRAWN


def test_review_open_for_an_invisible_initiative_is_refused(initiative):
    stranger = UserFactory()
    response = api_as(stranger).post(
        "/api/v1/reviews/", {"initiative": initiative.key}, format="json"
    )
    assert response.status_code == 400
    assert initiative.gate_reviews.count() == 0


# --- milestones --------------------------------------------------------------------------------


def test_milestone_complete_and_waive(initiative):
    api = api_as(initiative.business_owner)
    done = MilestoneFactory(initiative=initiative)
    waived = MilestoneFactory(initiative=initiative)
    response = api.post(
        f"/api/v1/milestones/{done.pk}/complete/", {"status": "open"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "done"
    assert api.post(f"/api/v1/milestones/{waived.pk}/waive/", {}, format="json").status_code == 400
    response = api.post(
        f"/api/v1/milestones/{waived.pk}/waive/", {"reason": "descoped"}, format="json"
    )
    assert response.json()["status"] == "waived"
    again = api.post(f"/api/v1/milestones/{waived.pk}/complete/")
    assert again.status_code == 409


# --- scope: every object endpoint, as someone who can't see the object, is a 404 -------------


def _objects(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    return {
        "initiative": initiative.key,
        "metric": initiative.metrics.get().pk,
        "milestone": MilestoneFactory(initiative=initiative).pk,
        "review": review.pk,
        "approval": pending(review)[0].pk,
        "evidence": cast(Evidence, review.evidence.first()).pk,
        "webhookendpoint": WebhookEndpoint.objects.create(
            name="bot's", url="https://93.184.215.14/hook", owner=panel.bot
        ).pk,
    }


# Objects every signed-in caller may read (the published gate rules).
PUBLIC = {"gatetemplate"}


def _object_routes():
    routes = []
    for pattern in router.urls:
        assert isinstance(pattern, URLPattern)
        callback = pattern.callback
        if not any(k in pattern.pattern.regex.groupindex for k in ("pk", "key")):
            continue
        basename = cast(str, pattern.name).split("-")[0]
        for method in callback.actions:  # type: ignore[attr-defined]
            routes.append(
                pytest.param(pattern.name, basename, method, id=f"{method}-{pattern.name}")
            )
    return routes


@pytest.mark.parametrize(("name", "basename", "method"), _object_routes())
def test_out_of_scope_object_is_404(initiative, panel, name, basename, method):
    if basename in PUBLIC:
        pytest.skip("published to every signed-in caller")
    objects = _objects(initiative, panel)
    assert basename in objects, f"add {basename} to the cross-user test's objects"
    lookup = objects[basename]
    stranger = api_as(UserFactory(username="stranger"))
    url = reverse(f"api:{name}", args=[lookup])
    response = getattr(stranger, method)(url, {}, format="json")
    assert response.status_code == 404, (url, response.status_code, response.content)
    assert response["Content-Type"].startswith(PROBLEM)
    assert str(lookup) not in response.json()["detail"]


@pytest.mark.parametrize(("name", "basename", "method"), _object_routes())
def test_out_of_scope_object_is_404_for_a_service_account_too(
    initiative, panel, name, basename, method
):
    """A service account scoped to another business unit is a stranger here as well."""
    if basename in PUBLIC:
        pytest.skip("published to every signed-in caller")
    lookup = _objects(initiative, panel)[basename]
    other_bot = UserFactory(username="other-bot", groups=[INTEGRATIONS])
    InitiativeFactory().business_unit.members.add(other_bot)
    url = reverse(f"api:{name}", args=[lookup])
    response = getattr(api_as(other_bot), method)(url, {}, format="json")
    assert response.status_code == 404, (url, response.status_code, response.content)
    assert response["Content-Type"].startswith(PROBLEM)


def test_milestones_stay_unchanged_after_out_of_scope_posts(initiative):
    milestone = MilestoneFactory(initiative=initiative)
    api_as(UserFactory()).post(f"/api/v1/milestones/{milestone.pk}/complete/")
    assert Milestone.objects.get(pk=milestone.pk).status == "open"


def test_programs_services_still_own_the_write(initiative):
    # The API's hold is the service's hold: same record shape as a direct call.
    programs_services.initiative_hold(
        initiative=initiative, actor=initiative.business_owner, reason="direct"
    )
    row = StageTransition.objects.get(initiative=initiative)
    assert row.actor == initiative.business_owner
