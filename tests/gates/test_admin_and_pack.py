"""The admin (approvals inbox, review checklist, template revisions) and the evidence pack."""

from __future__ import annotations

import datetime as dt
import json
from typing import cast

import pytest
from django.urls import reverse
from django.utils import timezone

from gates import evidence_pack, selectors, services
from gates.models import (
    ApprovalStatus,
    ApproverRule,
    GateReview,
    GateTemplate,
    Outcome,
    ReviewEvent,
    ReviewState,
)
from programs.models import Milestone
from programs.ports import gate_verdict
from programs.stages import Stage
from tests.factories import UserFactory
from tests.gates.helpers import approve_all, attach_all_evidence, submitted_review

pytestmark = pytest.mark.django_db


def _staff(user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


# --- approvals inbox -------------------------------------------------------------------------


def test_inbox_lists_own_and_deputised_pending_approvals_only(client, initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    deputy = _staff(UserFactory(username="pmo.deputy", groups=["pmo"]))
    services.delegation_create(
        actor=None,
        principal=panel.pmo,
        deputy=deputy,
        starts_on=timezone.localdate(),
        ends_on=timezone.localdate(),
    )
    url = reverse("admin:gates_approvalinbox_changelist")
    for user, sees in ((_staff(panel.pmo), True), (deputy, True), (_staff(panel.risk), False)):
        client.force_login(user)
        response = client.get(url)
        assert response.status_code == 200
        assert (initiative.key in response.content.decode()) is sees
    approval = review.approvals.get(role="pmo")
    client.force_login(_staff(panel.risk))
    assert (
        client.get(reverse("admin:gates_approvalinbox_decide", args=[approval.pk])).status_code
        == 404
    )


def test_approve_and_reject_from_the_inbox(client, initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    owner = _staff(initiative.business_owner)
    client.force_login(owner)
    owner_approval = review.approvals.get(role="business_owner")
    page = client.get(reverse("admin:gates_approvalinbox_decide", args=[owner_approval.pk]))
    assert page.status_code == 200 and "Pilot scope and exit criteria" in page.content.decode()

    response = client.post(
        reverse("admin:gates_approvalinbox_decide", args=[owner_approval.pk]),
        {"decision": "approve", "comment": "Scope is tight", "outcome": ""},
    )
    assert response.status_code == 302
    owner_approval.refresh_from_db()
    assert (owner_approval.status, owner_approval.comment) == ("approved", "Scope is tight")

    # A rejection without a comment is refused and shown, nothing recorded.
    client.force_login(_staff(panel.pmo))
    pmo_approval = review.approvals.get(role="pmo")
    decide_url = reverse("admin:gates_approvalinbox_decide", args=[pmo_approval.pk])
    refused = client.post(decide_url, {"decision": "reject", "comment": "", "outcome": "kill"})
    assert refused.status_code == 200 and "needs a comment" in refused.content.decode()
    pmo_approval.refresh_from_db()
    assert pmo_approval.status == ApprovalStatus.PENDING

    client.post(decide_url, {"decision": "reject", "comment": "No budget", "outcome": "hold"})
    review.refresh_from_db()
    initiative.refresh_from_db()
    assert (review.outcome, initiative.stage) == ("hold", Stage.ON_HOLD)


def _when(delta: dt.timedelta) -> str:
    """A datetime-local input's value, in the site's time zone, ``delta`` from now."""
    return timezone.localtime(timezone.now() + delta).strftime("%Y-%m-%dT%H:%M")


def _conditions(*rows: dict) -> dict:
    data = {
        "conditions-TOTAL_FORMS": 3,
        "conditions-INITIAL_FORMS": 0,
        "conditions-MIN_NUM_FORMS": 0,
        "conditions-MAX_NUM_FORMS": 20,
    }
    for i, row in enumerate(rows):
        data.update({f"conditions-{i}-{k}": v for k, v in row.items()})
    return data


def test_conditional_go_from_the_inbox_becomes_gate_condition_milestones(client, initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    owner = _staff(initiative.business_owner)
    client.force_login(owner)
    owner_approval = review.approvals.get(role="business_owner")
    decide_url = reverse("admin:gates_approvalinbox_decide", args=[owner_approval.pk])
    assert 'name="conditions-0-title"' in client.get(decide_url).content.decode()

    response = client.post(
        decide_url,
        {
            "decision": "approve",
            "comment": "Go, with two things fixed",
            "outcome": "",
            **_conditions(
                {
                    "title": "DPIA signed off",
                    "owner": panel.risk.pk,
                    "due_at": _when(dt.timedelta(days=14)),
                },
                {
                    "title": "Runbook reviewed by ops",
                    "owner": initiative.delivery_lead.pk,
                    "due_at": _when(dt.timedelta(days=30)),
                },
            ),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert review.conditions.count() == 2
    assert not Milestone.objects.filter(initiative=initiative).exists()  # not before the Go

    # The last approver decides the review; the gate opens with the conditions as milestones.
    client.force_login(_staff(panel.pmo))
    pmo_approval = review.approvals.get(role="pmo")
    client.post(
        reverse("admin:gates_approvalinbox_decide", args=[pmo_approval.pk]),
        {"decision": "approve", "comment": "ok", "outcome": "", **_conditions()},
    )
    review.refresh_from_db()
    initiative.refresh_from_db()
    assert (review.state, review.outcome) == (ReviewState.APPROVED, Outcome.CONDITIONAL_GO)
    assert initiative.stage == Stage.PILOT
    milestones = Milestone.objects.filter(initiative=initiative, is_gate_condition=True)
    assert {(m.title, m.owner_id, m.stage) for m in milestones} == {
        ("DPIA signed off", panel.risk.pk, Stage.PILOT),
        ("Runbook reviewed by ops", initiative.delivery_lead_id, Stage.PILOT),
    }


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"title": "  ", "owner": "OWNER", "due_at": "+7"}, "title", "title"),
        ({"title": "DPIA", "owner": "", "due_at": "+7"}, "owner", "owns this condition"),
        ({"title": "DPIA", "owner": "OWNER", "due_at": "-1"}, "due_at", "in the future"),
        ({"title": "DPIA", "owner": "OWNER", "due_at": ""}, "due_at", "due date"),
        ({"title": "DPIA", "owner": "BOT", "due_at": "+7"}, "owner", "valid choice"),
    ],
)
def test_invalid_condition_rows_are_form_errors_and_write_nothing(
    client, initiative, panel, row, field, message
):
    review = submitted_review(initiative, initiative.delivery_lead)
    client.force_login(_staff(initiative.business_owner))
    approval = review.approvals.get(role="business_owner")
    people = {"OWNER": panel.risk.pk, "BOT": panel.bot.pk, "": ""}
    days = {"+7": dt.timedelta(days=7), "-1": dt.timedelta(days=-1)}
    posted = {
        **row,
        "owner": people[row["owner"]],
        "due_at": _when(days[row["due_at"]]) if row["due_at"] else "",
    }
    response = client.post(
        reverse("admin:gates_approvalinbox_decide", args=[approval.pk]),
        {"decision": "approve", "comment": "ok", "outcome": "", **_conditions(posted)},
    )
    assert response.status_code == 200
    errors = response.context["conditions"].forms[0].errors
    assert field in errors and message in " ".join(errors[field])
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert not review.conditions.exists()
    assert not ReviewEvent.objects.filter(review=review, kind="approval_decided").exists()


def test_conditions_on_a_rejection_are_a_form_error_not_dropped(client, initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    client.force_login(_staff(panel.pmo))
    approval = review.approvals.get(role="pmo")
    response = client.post(
        reverse("admin:gates_approvalinbox_decide", args=[approval.pk]),
        {
            "decision": "reject",
            "comment": "Not yet",
            "outcome": "recycle",
            **_conditions(
                {"title": "DPIA", "owner": panel.risk.pk, "due_at": _when(dt.timedelta(days=7))}
            ),
        },
    )
    assert response.status_code == 200
    assert "Conditions go with an approval" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_a_refusal_from_the_service_is_shown_on_the_decide_page(client, initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    owner = _staff(initiative.business_owner)
    services.approval_decide(
        approval=review.approvals.get(role="business_owner"), actor=owner, decision="approve"
    )
    # Deputy for the PMO approver today, so the PMO approval is in the owner's inbox.
    services.delegation_create(
        actor=None,
        principal=panel.pmo,
        deputy=owner,
        starts_on=timezone.localdate(),
        ends_on=timezone.localdate(),
    )
    pmo_approval = review.approvals.get(role="pmo")
    client.force_login(owner)
    response = client.post(
        reverse("admin:gates_approvalinbox_decide", args=[pmo_approval.pk]),
        {
            "decision": "approve",
            "comment": "ok",
            "outcome": "",
            **_conditions(
                {"title": "DPIA", "owner": panel.risk.pk, "due_at": _when(dt.timedelta(days=7))}
            ),
        },
    )
    assert response.status_code == 200
    assert "nobody decides twice" in response.content.decode()
    pmo_approval.refresh_from_db()
    assert pmo_approval.status == ApprovalStatus.PENDING
    assert not review.conditions.exists()


# --- review admin ----------------------------------------------------------------------------


def test_review_admin_opens_attaches_and_submits(client, initiative, panel):
    lead = _staff(initiative.delivery_lead)
    client.force_login(lead)
    response = client.post(reverse("admin:gates_gatereview_add"), {"initiative": initiative.pk})
    review = GateReview.objects.get(initiative=initiative)
    assert response.status_code == 302 and review.state == ReviewState.DRAFT

    page = client.get(reverse("admin:gates_gatereview_change", args=[review.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "Pilot scope and exit criteria" in body and "evidence needed" in body

    client.post(
        reverse("admin:gates_gatereview_attach", args=[review.pk]),
        {"criterion": "pilot-scope-exit-criteria", "url": "https://wiki.example.com/scope"},
    )
    assert review.evidence.get().url == "https://wiki.example.com/scope"

    client.post(
        reverse("admin:gates_gatereview_changelist"),
        {"action": "submit_reviews", "_selected_action": [review.pk]},
    )
    review.refresh_from_db()
    assert review.state == ReviewState.SUBMITTED


def test_review_admin_hides_other_peoples_reviews(client, initiative, panel):
    submitted_review(initiative, initiative.delivery_lead)
    client.force_login(_staff(UserFactory()))
    response = client.get(reverse("admin:gates_gatereview_changelist"))
    assert initiative.key not in response.content.decode()


def _template_post_data(template: GateTemplate, **overrides) -> dict:
    data = {
        "quorum_policy": template.quorum_policy,
        "quorum_n": template.quorum_n or "",
        "decision_sla_business_days": template.decision_sla_business_days,
        "expected_stage_days": template.expected_stage_days or "",
        "note": "",
    }
    criteria = list(template.criteria.all())
    data.update(
        {
            "criteria-TOTAL_FORMS": len(criteria),
            "criteria-INITIAL_FORMS": len(criteria),
            "criteria-MIN_NUM_FORMS": 0,
            "criteria-MAX_NUM_FORMS": 1000,
        }
    )
    for i, c in enumerate(criteria):
        data.update(
            {
                f"criteria-{i}-id": c.pk,
                f"criteria-{i}-template": template.pk,
                f"criteria-{i}-position": c.position,
                f"criteria-{i}-code": c.code,
                f"criteria-{i}-text": c.text,
                f"criteria-{i}-kind": c.kind,
                f"criteria-{i}-check_name": c.check_name,
                f"criteria-{i}-risk_tiers": json.dumps(c.risk_tiers),
            }
        )
        if c.required:
            data[f"criteria-{i}-required"] = "on"
    rules = list(template.approvers.all())
    data.update(
        {
            "approvers-TOTAL_FORMS": len(rules),
            "approvers-INITIAL_FORMS": len(rules),
            "approvers-MIN_NUM_FORMS": 0,
            "approvers-MAX_NUM_FORMS": 1000,
        }
    )
    for i, r in enumerate(rules):
        data.update(
            {
                f"approvers-{i}-id": r.pk,
                f"approvers-{i}-template": template.pk,
                f"approvers-{i}-role": r.role,
                f"approvers-{i}-risk_tiers": json.dumps(r.risk_tiers),
            }
        )
    data.update(overrides)
    return data


def test_saving_a_template_in_admin_writes_a_new_version(client, panel):
    client.force_login(_staff(panel.pmo))
    v1 = GateTemplate.objects.get(gate__code="G1", version=1)
    data = _template_post_data(v1, **{"criteria-0-text": "Business owner named", "note": "wording"})
    response = client.post(reverse("admin:gates_gatetemplate_change", args=[v1.pk]), data)
    v2 = GateTemplate.objects.get(gate__code="G1", version=2)
    assert response.status_code == 302 and response.url.endswith(f"/{v2.pk}/change/")
    assert v2.criteria.get(position=1).text == "Business owner named"
    assert v2.created_by == panel.pmo and v2.note == "wording"
    v1.refresh_from_db()
    assert v1.criteria.get(position=1).text.startswith("A business owner from the business line")


def test_template_admin_is_closed_to_business_owners(client, initiative):
    client.force_login(_staff(initiative.business_owner))
    v1 = GateTemplate.objects.get(gate__code="G1", version=1)
    client.post(reverse("admin:gates_gatetemplate_change", args=[v1.pk]), _template_post_data(v1))
    assert not GateTemplate.objects.filter(gate__code="G1", version=2).exists()


# --- evidence pack ---------------------------------------------------------------------------


@pytest.fixture
def decided_review(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    approve_all(review, panel)
    return review


def test_evidence_pack_json(client, decided_review, initiative, panel):
    client.force_login(initiative.business_owner)
    response = client.get(reverse("gates:evidence-pack-json", args=[decided_review.pk]))
    assert response.status_code == 200
    pack = response.json()
    assert pack["review"]["gate"] == "G1" and pack["review"]["outcome"] == "go"
    assert pack["review"]["submitted_by"]["id"] == initiative.delivery_lead_id
    assert {c["code"] for c in pack["criteria"]} >= {"pilot-scope-exit-criteria"}
    scope = next(c for c in pack["criteria"] if c["code"] == "pilot-scope-exit-criteria")
    assert scope["satisfied"] and scope["evidence"][0]["attached_by"]["id"] == (
        initiative.delivery_lead_id
    )
    assert len(pack["criteria_at_submission"]) == len(pack["criteria"])
    assert {(a["role"], a["status"], a["comment"]) for a in pack["approvals"]} == {
        ("business_owner", "approved", "looks good"),
        ("pmo", "approved", "looks good"),
    }
    assert [e["kind"] for e in pack["events"]][-1] == "review_decided"
    assert all(a["decided_at"] for a in pack["approvals"])


def test_evidence_pack_html_is_readable(client, decided_review, initiative, panel):
    client.force_login(panel.pmo)
    response = client.get(reverse("gates:evidence-pack-html", args=[decided_review.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert initiative.key in body and "Pilot scope and exit criteria" in body
    assert "looks good" in body and "https://wiki.example.com/" in body


def test_evidence_pack_access(client, decided_review):
    url = reverse("gates:evidence-pack-json", args=[decided_review.pk])
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(UserFactory())
    assert client.get(url).status_code == 403
    assert client.get(reverse("gates:evidence-pack-json", args=[999999])).status_code == 404


# --- query counts ----------------------------------------------------------------------------


def test_inbox_is_two_queries_however_many_approvals(django_assert_num_queries, panel):
    from tests.factories import InitiativeFactory, SuccessMetricFactory

    for _ in range(4):
        initiative = InitiativeFactory(delivery_lead=UserFactory())
        SuccessMetricFactory(initiative=initiative)
        submitted_review(initiative, initiative.delivery_lead)
    with django_assert_num_queries(2):  # delegations, then the joined inbox
        rows = list(selectors.approvals_inbox(user=panel.pmo))
        assert len(rows) == 4
        assert all(r.review.initiative.business_unit.code for r in rows)


def test_evidence_pack_query_count_does_not_grow_with_approvals(
    django_assert_max_num_queries, decided_review
):
    with django_assert_max_num_queries(20):
        review = evidence_pack.review_for_pack(decided_review.pk)
        evidence_pack.evidence_pack(review=review)


def test_gate_verdict_is_cheap(django_assert_max_num_queries, decided_review, initiative):
    with django_assert_max_num_queries(3):
        verdict = gate_verdict(initiative, Stage.PILOT)
    assert verdict.approved and verdict.review_id == decided_review.pk


def test_checklist_reads_evidence_in_one_query(django_assert_max_num_queries, initiative, panel):
    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    attach_all_evidence(review, initiative.delivery_lead)
    review = GateReview.objects.select_related("initiative", "template").get(pk=review.pk)
    # criteria + evidence + one per automatic check (G1 has five).
    with django_assert_max_num_queries(2 + 5 + 1):
        selectors.review_checklist(review=review)


def test_every_gates_admin_page_renders(admin_client, decided_review):
    template = decided_review.template
    urls = [
        reverse(f"admin:gates_{name}_changelist")
        for name in (
            "gate",
            "gatetemplate",
            "gatereview",
            "approvalinbox",
            "gateapprover",
            "delegation",
        )
    ] + [
        reverse("admin:gates_gate_change", args=[template.gate_id]),
        reverse("admin:gates_gatetemplate_change", args=[template.pk]),
        reverse("admin:gates_gatereview_change", args=[decided_review.pk]),
        reverse("admin:gates_gatereview_add"),
        reverse("admin:gates_gateapprover_add"),
        reverse("admin:gates_delegation_add"),
        reverse("admin:gates_gatereview_attach", args=[decided_review.pk]),
    ]
    for url in urls:
        assert admin_client.get(url).status_code == 200, url


def test_delegation_and_approver_roles_from_admin_go_through_services(client, panel):
    client.force_login(_staff(panel.pmo))
    today = timezone.localdate().isoformat()
    client.post(
        reverse("admin:gates_delegation_add"),
        {
            "principal": panel.risk.pk,
            "deputy": panel.bot.pk,
            "starts_on": today,
            "ends_on": today,
            "reason": "leave",
        },
    )
    from gates.models import Delegation, GateApprover

    assert not Delegation.objects.exists()  # a service account can't be a deputy
    client.post(
        reverse("admin:gates_delegation_add"),
        {
            "principal": panel.risk.pk,
            "deputy": panel.platform.pk,
            "starts_on": today,
            "ends_on": today,
            "reason": "leave",
        },
    )
    assert Delegation.objects.get().deputy == panel.platform

    newcomer = UserFactory(groups=["approvers"])
    client.post(reverse("admin:gates_gateapprover_add"), {"user": newcomer.pk, "role": "risk"})
    assert GateApprover.objects.get(role="risk", business_unit=None).user == newcomer


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("criteria-0-risk_tiers", "5"),
        ("criteria-0-risk_tiers", '"high"'),
        ("criteria-0-risk_tiers", '["extreme"]'),
        ("approvers-0-risk_tiers", "5"),
        ("approvers-0-risk_tiers", '{"high": true}'),
    ],
)
def test_template_admin_refuses_risk_tiers_that_are_not_a_list_of_tiers(
    client, panel, field, value
):
    client.force_login(_staff(panel.pmo))
    v1 = GateTemplate.objects.get(gate__code="G1", version=1)
    response = client.post(
        reverse("admin:gates_gatetemplate_change", args=[v1.pk]),
        _template_post_data(v1, **{field: value}),
    )
    assert response.status_code == 200  # the form again, not a crash or a redirect
    prefix, index, _ = field.split("-")
    formset = next(
        f for f in response.context["inline_admin_formsets"] if f.formset.prefix == prefix
    )
    assert "risk_tiers" in formset.formset.forms[int(index)].errors
    assert not GateTemplate.objects.filter(gate__code="G1", version=2).exists()


def test_template_admin_accepts_a_list_of_known_risk_tiers(client, panel):
    client.force_login(_staff(panel.pmo))
    v1 = GateTemplate.objects.get(gate__code="G1", version=1)
    client.post(
        reverse("admin:gates_gatetemplate_change", args=[v1.pk]),
        _template_post_data(v1, **{"approvers-0-risk_tiers": '["high", "medium"]'}),
    )
    v2 = GateTemplate.objects.get(gate__code="G1", version=2)
    assert cast(ApproverRule, v2.approvers.order_by("id").first()).risk_tiers == ["high", "medium"]
