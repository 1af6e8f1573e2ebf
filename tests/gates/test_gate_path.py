"""An initiative goes proposed → operations only through four approved reviews."""

from __future__ import annotations

import datetime as dt
from typing import cast

import pytest

from gatekeeper.errors import Conflict, TransitionRefused
from gates import selectors, services
from gates.models import Approval, ApprovalStatus, GateReview, ReviewState
from notifications.models import Event
from programs import services as programs
from programs.models import Initiative, StageTransition
from programs.stages import Stage
from tests.factories import MilestoneFactory
from tests.gates.helpers import approve_all, attach_all_evidence, measure_pilot, pass_gate
from tests.unguarded import unguarded

pytestmark = pytest.mark.django_db


def test_full_path_through_four_approved_reviews_with_each_refusal(initiative, panel):
    lead = initiative.delivery_lead
    expected_unmet = {
        "G1": ["Pilot scope and exit criteria: evidence needed: Pilot scope and exit criteria"],
        "G2": [
            "Workflow redesign documented (handoffs, edge cases, human review): evidence needed: "
            "Workflow redesign documented (handoffs, edge cases, human review)",
            "Integration plan (data sources, approval flows, downstream systems): evidence "
            "needed: Integration plan (data sources, approval flows, downstream systems)",
            "Business line accepts ownership: evidence needed: Business line accepts ownership",
        ],
        "G3": [
            "Integrated end to end in staging: evidence needed: Integrated end to end in staging",
            "Tested with real users: evidence needed: Tested with real users",
            "Runbook drafted: evidence needed: Runbook drafted",
        ],
        "G4": [
            f"{text}: evidence needed: {text}"
            for text in (
                "Deployment pipeline",
                "Monitoring and alerting",
                "Model, data and config under version control",
                "Rollback rehearsed",
                "Security review passed",
                "Support owner named",
                "Success metrics tracked in production",
            )
        ],
    }
    path = [
        ("G1", Stage.PROPOSED, Stage.PILOT),
        ("G2", Stage.PILOT, Stage.INTEGRATION),
        ("G3", Stage.INTEGRATION, Stage.HARDENING),
        ("G4", Stage.HARDENING, Stage.OPERATIONS),
    ]
    for code, source, target in path:
        initiative.refresh_from_db()
        assert initiative.stage == source

        # No approved review: the lifecycle refuses to move, whoever asks.
        with pytest.raises(TransitionRefused) as no_review:
            programs.initiative_advance(initiative=initiative, actor=None)
        assert f"gate {code} has no review; open and submit one" in no_review.value.unmet

        if source == Stage.PILOT:
            measure_pilot(initiative)
        review = services.gate_review_open(initiative=initiative, actor=lead)
        assert review.gate.code == code and review.template.version == 1

        with pytest.raises(TransitionRefused) as refused:
            services.gate_review_submit(review=review, actor=lead)
        assert refused.value.unmet == expected_unmet[code]
        review.refresh_from_db()
        assert review.state == ReviewState.DRAFT and not review.approvals.exists()

        attach_all_evidence(review, lead)
        services.gate_review_submit(review=review, actor=lead)
        assert review.state == ReviewState.SUBMITTED

        # Submitted but undecided still opens nothing.
        with pytest.raises(TransitionRefused) as undecided:
            programs.initiative_advance(initiative=initiative, actor=None)
        assert any("latest" in r and "submitted" in r for r in undecided.value.unmet)

        approve_all(review, panel)
        assert review.state == ReviewState.APPROVED and review.outcome == "go"
        initiative.refresh_from_db()
        assert initiative.stage == target
        moved = StageTransition.objects.get(initiative=initiative, to_stage=target)
        assert moved.gate_review_id == review.pk and moved.from_stage == source

    assert GateReview.objects.filter(initiative=initiative, state=ReviewState.APPROVED).count() == 4
    assert StageTransition.objects.filter(initiative=initiative).count() == 4


def test_approver_roles_per_gate_and_business_owner_at_g1_and_g2(initiative, panel):
    g1 = pass_gate(initiative, panel)
    assert sorted(g1.approvals.values_list("role", flat=True)) == ["business_owner", "pmo"]
    g2 = pass_gate(initiative, panel)
    assert sorted(g2.approvals.values_list("role", flat=True)) == [
        "business_owner",
        "platform",
        "risk",
    ]
    owner_approval = g2.approvals.get(role="business_owner")
    assert owner_approval.approver == initiative.business_owner


def test_high_risk_adds_security_approver_and_criterion_at_g2_and_g4(initiative, panel):
    initiative.risk_tier = "high"
    initiative.save()
    pass_gate(initiative, panel)
    measure_pilot(initiative)
    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    codes = [s.criterion.code for s in selectors.review_checklist(review=review)]
    assert "security-review" in codes
    attach_all_evidence(review, initiative.delivery_lead)
    services.gate_review_submit(review=review, actor=initiative.delivery_lead)
    assert "security" in set(review.approvals.values_list("role", flat=True))
    assert review.risk_tier == "high"


def test_medium_risk_g2_has_no_security_criterion(initiative, panel):
    pass_gate(initiative, panel)
    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    codes = [s.criterion.code for s in selectors.review_checklist(review=review)]
    assert "security-review" not in codes


def test_g1_refusal_lists_automatic_criteria_from_live_data(panel):
    from tests.factories import InitiativeFactory, UserFactory

    outsider = UserFactory()
    initiative = InitiativeFactory(
        target_workflow="  ", delivery_lead=UserFactory(), business_owner=outsider
    )
    initiative.business_unit.members.remove(outsider)
    MilestoneFactory(initiative=initiative, title="Data access agreed")
    lead = initiative.delivery_lead
    review = services.gate_review_open(initiative=initiative, actor=lead)
    attach_all_evidence(review, lead)
    with pytest.raises(TransitionRefused) as refused:
        services.gate_review_submit(review=review, actor=lead)
    unmet = refused.value.unmet
    assert any("must be a member of business unit" in r for r in unmet)
    assert any("baseline and a target" in r for r in unmet)
    assert any("target workflow" in r for r in unmet)
    assert any("milestone 'Data access agreed' of stage proposed is still open" in r for r in unmet)


def test_submit_refuses_when_an_approver_role_is_unfilled(initiative, panel):
    from gates.models import GateApprover

    GateApprover.objects.filter(role="pmo").delete()
    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    attach_all_evidence(review, initiative.delivery_lead)
    with pytest.raises(TransitionRefused) as refused:
        services.gate_review_submit(review=review, actor=initiative.delivery_lead)
    assert any("approver PMO: nobody holds this gate role" in r for r in refused.value.unmet)


def test_business_owner_cannot_submit_a_review_they_must_approve(initiative, panel):
    owner = initiative.business_owner
    review = services.gate_review_open(initiative=initiative, actor=owner)
    attach_all_evidence(review, owner)
    with pytest.raises(TransitionRefused) as refused:
        services.gate_review_submit(review=review, actor=owner)
    assert any("cannot also approve it" in r for r in refused.value.unmet)


def test_submission_creates_approvals_with_sla_due_date_and_emits_recipients(initiative, panel):
    from gates.business_days import add_business_days

    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    attach_all_evidence(review, initiative.delivery_lead)
    services.gate_review_submit(review=review, actor=initiative.delivery_lead)
    approvals = list(review.approvals.order_by("id"))
    expected_due = add_business_days(
        cast(dt.datetime, review.submitted_at), review.template.decision_sla_business_days
    )
    assert {a.due_at for a in approvals} == {expected_due}
    assert all(
        a.status == ApprovalStatus.PENDING and cast(dt.datetime, a.remind_at) <= a.due_at
        for a in approvals
    )

    event = Event.objects.get(type="review.submitted")
    payload = event.payload
    assert event.key == f"review.submitted:{review.pk}"
    assert payload["review"]["id"] == review.pk
    assert payload["initiative"]["id"] == initiative.pk
    assert payload["approval_ids"] == [a.pk for a in approvals]
    assert payload["due_at"] == expected_due.isoformat()
    assert payload["admin_url"].startswith("/admin/")
    assert sorted((r["user_id"], r["email"], r["role"]) for r in payload["recipients"]) == sorted(
        (a.approver.pk, a.approver.email, a.role) for a in approvals
    )


def test_a_draft_withdrawn_by_a_hold_cannot_be_submitted(initiative, panel):
    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    attach_all_evidence(review, initiative.delivery_lead)
    programs.initiative_hold(initiative=initiative, actor=None, reason="budget freeze")
    with pytest.raises(Conflict, match="withdrawn"):
        services.gate_review_submit(review=review, actor=initiative.delivery_lead)


def test_submission_refused_outside_the_gates_stage(initiative, panel):
    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    attach_all_evidence(review, initiative.delivery_lead)
    # Out of step in the database (the hold listener would have withdrawn the draft): submit
    # still checks the stage itself rather than trust that.
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(
            stage=Stage.ON_HOLD, held_from="proposed"
        )
    with pytest.raises(TransitionRefused) as refused:
        services.gate_review_submit(review=review, actor=initiative.delivery_lead)
    assert refused.value.unmet == [
        f"{initiative.key} is in stage 'on_hold'; G1 is the gate out of 'proposed'"
    ]


def test_approval_rows_match_submitted_event_log(initiative, panel):
    review = pass_gate(initiative, panel)
    kinds = list(review.events.values_list("kind", flat=True))
    assert kinds[0] == "opened"
    assert kinds.count("submitted") == 1
    assert kinds.count("approval_decided") == Approval.objects.filter(review=review).count()
    assert kinds[-1] == "review_decided"
