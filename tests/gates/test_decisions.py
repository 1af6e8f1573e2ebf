"""Decision outcomes, separation of duties, delegation, quorum policies."""

from __future__ import annotations

import datetime as dt
from typing import cast

import pytest
import time_machine
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from gatekeeper.errors import Conflict, PermissionDenied, TransitionRefused, ValidationFailed
from gates import selectors, services
from gates.models import (
    ApprovalStatus,
    Criterion,
    GateReview,
    Outcome,
    ReviewEvent,
    ReviewState,
)
from gates.services import ApproverSpec, ConditionSpec, CriterionSpec
from notifications.models import Event
from programs import services as programs
from programs.models import Milestone, StageTransition
from programs.stages import Stage
from tests.factories import UserFactory
from tests.gates.helpers import approve_all, pass_gate, pending, submitted_review
from tests.unguarded import unguarded

pytestmark = pytest.mark.django_db


def _decide(approval, actor, decision="approve", **kwargs):
    kwargs.setdefault("comment", "ok" if decision == "approve" else "not ready")
    return services.approval_decide(approval=approval, actor=actor, decision=decision, **kwargs)


# --- outcomes --------------------------------------------------------------------------------


def test_go_advances_initiative_and_emits_review_decided(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    approve_all(review, panel)
    initiative.refresh_from_db()
    assert (review.state, review.outcome) == (ReviewState.APPROVED, Outcome.GO)
    assert initiative.stage == Stage.PILOT
    decided = Event.objects.get(type="review.decided")
    assert decided.payload["outcome"] == "go"
    assert decided.payload["initiative"]["stage"] == Stage.PILOT
    recipient_ids = {r["user_id"] for r in decided.payload["recipients"]}
    assert {
        initiative.business_owner_id,
        initiative.delivery_lead_id,
        panel.pmo.pk,
    } <= recipient_ids
    assert Event.objects.filter(type="approval.decided").count() == 2


def test_conditional_go_advances_and_conditions_block_next_gate(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    owner_approval, pmo_approval = (review.approvals.get(role=r) for r in ("business_owner", "pmo"))
    due = timezone.now() + dt.timedelta(days=14)
    condition_owner = UserFactory()
    _decide(
        owner_approval,
        initiative.business_owner,
        conditions=[ConditionSpec(title="DPIA signed", owner=condition_owner, due_at=due)],
    )
    _decide(pmo_approval, panel.pmo)
    review.refresh_from_db()
    initiative.refresh_from_db()
    assert (review.state, review.outcome) == (ReviewState.APPROVED, Outcome.CONDITIONAL_GO)
    assert initiative.stage == Stage.PILOT
    milestone = Milestone.objects.get(initiative=initiative, is_gate_condition=True)
    assert (milestone.title, milestone.owner, milestone.due_at, milestone.stage) == (
        "DPIA signed",
        condition_owner,
        due,
        Stage.PILOT,
    )
    assert review.conditions.get().milestone == milestone

    # The next gate stays closed while the condition is open, at submission ...
    from tests.gates.helpers import attach_all_evidence, measure_pilot

    measure_pilot(initiative)
    g2 = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    attach_all_evidence(g2, initiative.delivery_lead)
    with pytest.raises(TransitionRefused) as refused:
        services.gate_review_submit(review=g2, actor=initiative.delivery_lead)
    assert (
        "No open conditions from an earlier Conditional Go: gate condition 'DPIA signed' "
        "is still open" in refused.value.unmet
    )
    # ... and at the lifecycle itself.
    with pytest.raises(TransitionRefused) as blocked:
        programs.initiative_advance(initiative=initiative, actor=None)
    assert "gate condition 'DPIA signed' is still open" in blocked.value.unmet

    programs.milestone_complete(milestone=milestone, actor=None)
    services.gate_review_submit(review=g2, actor=initiative.delivery_lead)
    approve_all(g2, panel)
    initiative.refresh_from_db()
    assert initiative.stage == Stage.INTEGRATION


def test_hold_puts_initiative_on_hold_and_a_new_review_is_needed(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    _decide(
        review.approvals.get(role="pmo"),
        panel.pmo,
        "reject",
        outcome="hold",
        comment="No budget this quarter",
    )
    review.refresh_from_db()
    initiative.refresh_from_db()
    assert (review.state, review.outcome) == (ReviewState.REJECTED, Outcome.HOLD)
    assert (initiative.stage, initiative.held_from) == (Stage.ON_HOLD, Stage.PROPOSED)
    record = StageTransition.objects.get(initiative=initiative)
    assert record.gate_review_id == review.pk and "No budget this quarter" in record.reason
    assert review.approvals.get(role="business_owner").status == ApprovalStatus.VOID

    programs.initiative_resume(initiative=initiative, actor=None)
    with pytest.raises(TransitionRefused):
        programs.initiative_advance(initiative=initiative, actor=None)
    again = pass_gate(initiative, panel)
    assert again.pk != review.pk and initiative.stage == Stage.PILOT
    # Evidence attached to the held review was carried over, keeping who attached it.
    carried = again.evidence.get()
    assert carried.carried_from is not None
    assert carried.attached_by == initiative.delivery_lead


def test_recycle_keeps_stage_and_requires_a_new_review(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    _decide(
        review.approvals.get(role="business_owner"),
        initiative.business_owner,
        "reject",
        comment="Exit criteria too vague",
    )
    review.refresh_from_db()
    initiative.refresh_from_db()
    assert (review.state, review.outcome) == (ReviewState.RECYCLED, Outcome.RECYCLE)
    assert initiative.stage == Stage.PROPOSED
    assert not StageTransition.objects.filter(initiative=initiative).exists()
    with pytest.raises(TransitionRefused) as refused:
        programs.initiative_advance(initiative=initiative, actor=None)
    assert f"gate G1 has no approved review (latest, #{review.pk}, is recycled)" in (
        refused.value.unmet
    )
    pass_gate(initiative, panel)
    assert initiative.stage == Stage.PILOT


def test_kill_cancels_initiative(initiative, panel):
    pass_gate(initiative, panel)
    review = submitted_review(initiative, initiative.delivery_lead)
    _decide(
        review.approvals.get(role="risk"),
        panel.risk,
        "reject",
        outcome="kill",
        comment="Regulator will not accept automated decisions here",
    )
    review.refresh_from_db()
    initiative.refresh_from_db()
    assert (review.state, review.outcome) == (ReviewState.REJECTED, Outcome.KILL)
    assert initiative.stage == Stage.CANCELLED
    assert StageTransition.objects.get(to_stage=Stage.CANCELLED).gate_review_id == review.pk
    assert all(
        a.status in (ApprovalStatus.REJECTED, ApprovalStatus.VOID) for a in review.approvals.all()
    )


def test_rejection_needs_a_comment_and_valid_outcome(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    approval = review.approvals.get(role="pmo")
    with pytest.raises(ValidationFailed) as invalid:
        _decide(approval, panel.pmo, "reject", comment="  ", outcome="go")
    assert set(invalid.value.errors) == {"comment", "outcome"}


# --- separation of duties --------------------------------------------------------------------


def test_submitter_cannot_approve_own_review(initiative, panel):
    # The PMO lead submits, so they cannot decide the PMO approval even though it is theirs.
    lead = panel.pmo
    from gates.models import GateApprover

    GateApprover.objects.filter(role="pmo").delete()
    other_pmo = UserFactory(groups=["pmo"])
    services.gate_approver_assign(actor=None, user=other_pmo, role="pmo")
    review = submitted_review(initiative, lead)
    services.delegation_create(
        actor=None,
        principal=other_pmo,
        deputy=lead,
        starts_on=timezone.localdate(),
        ends_on=timezone.localdate(),
    )
    with pytest.raises(PermissionDenied) as denied:
        _decide(review.approvals.get(role="pmo"), lead)
    assert "submitted review" in denied.value.detail
    assert review.approvals.get(role="pmo").status == ApprovalStatus.PENDING


def test_service_account_cannot_approve_even_as_deputy(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    approval = review.approvals.get(role="pmo")
    with pytest.raises(ValidationFailed):
        services.delegation_create(
            actor=None,
            principal=panel.pmo,
            deputy=panel.bot,
            starts_on=timezone.localdate(),
            ends_on=timezone.localdate(),
        )
    with pytest.raises(PermissionDenied) as denied:
        _decide(approval, panel.bot)
    assert "service account" in denied.value.detail


def test_service_account_cannot_hold_a_gate_role(panel):
    with pytest.raises(ValidationFailed):
        services.gate_approver_assign(actor=None, user=panel.bot, role="risk")


def test_double_decision_refused(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    approval = review.approvals.get(role="business_owner")
    _decide(approval, initiative.business_owner)
    with pytest.raises(Conflict):
        _decide(approval, initiative.business_owner)
    with pytest.raises(Conflict):
        _decide(approval, initiative.business_owner, "reject")
    assert review.events.filter(kind="approval_decided").count() == 1


def test_nobody_decides_twice_on_one_review_even_as_deputy(initiative, panel):
    pass_gate(initiative, panel)
    review = submitted_review(initiative, initiative.delivery_lead)
    services.delegation_create(
        actor=panel.risk,
        principal=panel.risk,
        deputy=panel.platform,
        starts_on=timezone.localdate(),
        ends_on=timezone.localdate() + dt.timedelta(days=3),
    )
    _decide(review.approvals.get(role="platform"), panel.platform)
    with pytest.raises(PermissionDenied) as denied:
        _decide(review.approvals.get(role="risk"), panel.platform)
    assert "nobody decides twice" in denied.value.detail


def test_stranger_cannot_decide(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    with pytest.raises(PermissionDenied):
        _decide(review.approvals.get(role="pmo"), panel.risk)


def test_same_person_in_two_roles_refused_at_submission(initiative, panel):
    services.gate_approver_assign(actor=None, user=panel.risk, role="platform")
    pass_gate(initiative, panel)
    with pytest.raises(TransitionRefused) as refused:
        submitted_review(initiative, initiative.delivery_lead)
    assert any("each approval needs a different person" in r for r in refused.value.unmet)


# --- delegation ------------------------------------------------------------------------------


def test_delegation_works_only_inside_its_dates(initiative, panel):
    deputy = UserFactory(username="pmo.deputy", groups=["pmo"])
    today = timezone.localdate()
    services.delegation_create(
        actor=panel.pmo,
        principal=panel.pmo,
        deputy=deputy,
        starts_on=today + dt.timedelta(days=1),
        ends_on=today + dt.timedelta(days=2),
        reason="annual leave",
    )
    review = submitted_review(initiative, initiative.delivery_lead)
    approval = review.approvals.get(role="pmo")

    with pytest.raises(PermissionDenied):
        _decide(approval, deputy)  # before the range
    assert list(selectors.approvals_inbox(user=deputy)) == []

    after = timezone.now() + dt.timedelta(days=3)
    with time_machine.travel(after, tick=False), pytest.raises(PermissionDenied):
        _decide(approval, deputy)  # after the range

    with time_machine.travel(timezone.now() + dt.timedelta(days=1), tick=False):
        assert list(selectors.approvals_inbox(user=deputy)) == [approval]
        decided = _decide(approval, deputy, comment="approved while Priya is away")

    assert (decided.approver, decided.decided_by, decided.on_behalf) == (panel.pmo, deputy, True)
    event = ReviewEvent.objects.get(approval=approval, kind="approval_decided")
    assert (event.actor, event.on_behalf_of) == (deputy, panel.pmo)
    payload = Event.objects.get(key=f"approval.decided:{approval.pk}").payload["approval"]
    assert (payload["decided_by_id"], payload["on_behalf_of_id"]) == (deputy.pk, panel.pmo.pk)


def test_revoked_delegation_no_longer_counts(initiative, panel):
    deputy = UserFactory(groups=["pmo"])
    delegation = services.delegation_create(
        actor=None,
        principal=panel.pmo,
        deputy=deputy,
        starts_on=timezone.localdate(),
        ends_on=timezone.localdate(),
    )
    services.delegation_revoke(actor=panel.pmo, delegation=delegation)
    review = submitted_review(initiative, initiative.delivery_lead)
    with pytest.raises(PermissionDenied):
        _decide(review.approvals.get(role="pmo"), deputy)


def test_only_the_principal_or_pmo_may_delegate(panel):
    with pytest.raises(PermissionDenied):
        services.delegation_create(
            actor=panel.risk,
            principal=panel.platform,
            deputy=panel.risk,
            starts_on=timezone.localdate(),
            ends_on=timezone.localdate(),
        )


# --- quorum ----------------------------------------------------------------------------------


def _revise_g3_two_of_three(actor=None):
    from gates.models import Gate

    gate = Gate.objects.get(code="G3")
    current = selectors.gate_template_current(gate=gate)
    return services.gate_template_revise(
        gate=gate,
        actor=actor,
        criteria=[
            CriterionSpec(c.code, c.text, c.kind, c.check_name, c.required, c.risk_tiers)
            for c in current.criteria.all()
        ],
        approvers=[ApproverSpec(a.role, a.risk_tiers) for a in current.approvers.all()],
        quorum_policy="n_of_m",
        quorum_n=2,
        decision_sla_business_days=3,
        expected_stage_days=45,
        note="Two of three is enough for hardening",
    )


def test_n_of_m_decides_at_n_and_voids_the_rest(initiative, panel):
    _revise_g3_two_of_three()
    pass_gate(initiative, panel)
    pass_gate(initiative, panel)
    review = submitted_review(initiative, initiative.delivery_lead)
    assert review.template.quorum_n == 2 and review.approvals.count() == 3
    first, second, third = pending(review)
    _decide(first, panel.for_role(first.role, initiative))
    initiative.refresh_from_db()
    assert initiative.stage == Stage.INTEGRATION
    _decide(second, panel.for_role(second.role, initiative))
    review.refresh_from_db()
    initiative.refresh_from_db()
    assert review.state == ReviewState.APPROVED and initiative.stage == Stage.HARDENING
    third.refresh_from_db()
    assert third.status == ApprovalStatus.VOID
    with pytest.raises(Conflict):
        _decide(third, panel.for_role(third.role, initiative))


def test_one_rejection_rejects_under_n_of_m(initiative, panel):
    _revise_g3_two_of_three()
    pass_gate(initiative, panel)
    pass_gate(initiative, panel)
    review = submitted_review(initiative, initiative.delivery_lead)
    first, second, _ = pending(review)
    _decide(first, panel.for_role(first.role, initiative))
    _decide(second, panel.for_role(second.role, initiative), "reject", comment="runbook thin")
    review.refresh_from_db()
    assert review.state == ReviewState.RECYCLED


# --- templates -------------------------------------------------------------------------------


def test_template_revision_keeps_in_flight_review_criteria(initiative, panel):
    from gates.models import Gate

    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    gate = Gate.objects.get(code="G1")
    v1 = selectors.gate_template_current(gate=gate)
    v1_codes = [c.code for c in v1.criteria.all()]
    v2 = services.gate_template_revise(
        gate=gate,
        actor=panel.pmo,
        criteria=[
            *(
                CriterionSpec(c.code, c.text, c.kind, c.check_name, c.required, c.risk_tiers)
                for c in v1.criteria.all()
            ),
            CriterionSpec("data-access-agreed", "Data access agreed", "evidence"),
        ],
        approvers=[ApproverSpec("business_owner"), ApproverSpec("pmo"), ApproverSpec("risk")],
        decision_sla_business_days=2,
        expected_stage_days=60,
        note="Risk joins G1",
    )
    assert (v1.version, v2.version) == (1, 2)
    assert selectors.gate_template_current(gate=gate) == v2

    review.refresh_from_db()
    assert review.template == v1
    assert [s.criterion.code for s in selectors.review_checklist(review=review)] == v1_codes
    from tests.gates.helpers import attach_all_evidence

    attach_all_evidence(review, initiative.delivery_lead)
    services.gate_review_submit(review=review, actor=initiative.delivery_lead)
    assert sorted(review.approvals.values_list("role", flat=True)) == ["business_owner", "pmo"]

    # A review opened after the revision uses it.
    from tests.factories import InitiativeFactory, SuccessMetricFactory

    newer = InitiativeFactory(delivery_lead=UserFactory())
    SuccessMetricFactory(initiative=newer)
    fresh = services.gate_review_open(initiative=newer, actor=newer.delivery_lead)
    assert fresh.template == v2
    assert "data-access-agreed" in [
        s.criterion.code for s in selectors.review_checklist(review=fresh)
    ]


def test_template_rows_are_immutable():
    from gates.models import GateTemplate

    template = GateTemplate.objects.get(gate__code="G1", version=1)
    template.decision_sla_business_days = 1
    with pytest.raises(TypeError):
        template.save()
    criterion = cast(Criterion, template.criteria.first())
    criterion.text = "rewritten"
    with pytest.raises(TypeError):
        criterion.save()


def test_template_revision_validates_everything(panel):
    from gates.models import Gate

    with pytest.raises(ValidationFailed) as invalid:
        services.gate_template_revise(
            gate=Gate.objects.get(code="G1"),
            actor=None,
            criteria=[
                CriterionSpec("x", "X", "automatic", "no_such_check"),
                CriterionSpec("x", "Y", "evidence"),
            ],
            approvers=[ApproverSpec("wizard")],
            quorum_policy="n_of_m",
            quorum_n=3,
            decision_sla_business_days=0,
            expected_stage_days=None,
        )
    assert set(invalid.value.errors) >= {
        "criteria[0]",
        "criteria[1]",
        "approvers",
        "quorum_n",
        "decision_sla_business_days",
    }


def test_only_admins_and_pmo_revise_templates(initiative, panel):
    from gates.models import Gate

    with pytest.raises(PermissionDenied):
        services.gate_template_revise(
            gate=Gate.objects.get(code="G1"),
            actor=initiative.business_owner,
            criteria=[CriterionSpec("a", "A", "evidence")],
            approvers=[ApproverSpec("pmo")],
            decision_sla_business_days=1,
            expected_stage_days=None,
        )


# --- review lifecycle odds and ends ----------------------------------------------------------


def test_only_one_open_review_per_gate(initiative, panel):
    services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    with pytest.raises(Conflict):
        services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)


def test_outsider_may_not_open_submit_or_attach(initiative, panel):
    outsider = UserFactory()
    with pytest.raises(PermissionDenied):
        services.gate_review_open(initiative=initiative, actor=outsider)
    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    with pytest.raises(PermissionDenied):
        services.evidence_attach(
            review=review, actor=outsider, criterion="pilot-scope-exit-criteria", note="trust me"
        )
    with pytest.raises(PermissionDenied):
        services.gate_review_submit(review=review, actor=outsider)


def test_evidence_is_frozen_after_submission_and_records_who_and_when(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    item = review.evidence.get()
    assert item.attached_by == initiative.delivery_lead and item.attached_at is not None
    with pytest.raises(TransitionRefused):
        services.evidence_attach(
            review=review,
            actor=initiative.delivery_lead,
            criterion="pilot-scope-exit-criteria",
            note="late addition",
        )


def test_evidence_input_is_validated(initiative, panel):
    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    lead = initiative.delivery_lead
    with pytest.raises(ValidationFailed):
        services.evidence_attach(review=review, actor=lead, criterion="pilot-scope-exit-criteria")
    with pytest.raises(ValidationFailed):
        services.evidence_attach(
            review=review,
            actor=lead,
            criterion="pilot-scope-exit-criteria",
            url="javascript:alert(1)",
        )
    with pytest.raises(ValidationFailed):
        services.evidence_attach(
            review=review,
            actor=lead,
            criterion="target-workflow-named",
            note="automatic criteria take no evidence",
        )


def test_withdraw_voids_pending_approvals_and_tells_approvers(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    services.gate_review_withdraw(
        review=review, actor=initiative.delivery_lead, reason="Scope changed"
    )
    assert review.state == ReviewState.WITHDRAWN
    assert set(review.approvals.values_list("status", flat=True)) == {ApprovalStatus.VOID}
    event = Event.objects.get(type="review.withdrawn")
    assert {r["user_id"] for r in event.payload["recipients"]} == {
        initiative.business_owner_id,
        panel.pmo.pk,
    }
    with pytest.raises(Conflict):
        _decide(review.approvals.first(), panel.pmo)


def test_holding_mid_decision_withdraws_the_review_and_refuses_further_decisions(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    _decide(review.approvals.get(role="business_owner"), initiative.business_owner)
    programs.initiative_hold(initiative=initiative, actor=None, reason="reorg")
    # The hold withdrew the review (gates' stage listener): the last approver is told no
    # decision is needed, and deciding anyway is refused.
    with pytest.raises(Conflict):
        _decide(review.approvals.get(role="pmo"), panel.pmo)
    review.refresh_from_db()
    assert review.state == ReviewState.WITHDRAWN
    assert review.approvals.get(role="pmo").status == ApprovalStatus.VOID
    assert review.approvals.get(role="business_owner").status == ApprovalStatus.APPROVED


def test_review_state_cannot_be_assigned_directly(initiative, panel):
    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    with pytest.raises(AttributeError):
        review.state = ReviewState.APPROVED


def test_forced_approved_review_without_approvals_opens_nothing(initiative, panel):
    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    with unguarded():
        GateReview.objects.filter(pk=review.pk).update(state="approved", outcome="go")
    with pytest.raises(TransitionRefused) as refused:
        programs.initiative_advance(initiative=initiative, actor=None)
    assert any("do not meet its policy" in r for r in refused.value.unmet)


# --- the append-only log ---------------------------------------------------------------------


class TestReviewEventsAreAppendOnly:
    @pytest.fixture
    def event(self, initiative, panel):
        review = submitted_review(initiative, initiative.delivery_lead)
        return review.events.get(kind="submitted")

    def test_save_and_delete_raise(self, event):
        event.data = {}
        with pytest.raises(TypeError):
            event.save()
        with pytest.raises(TypeError):
            event.delete()

    def test_queryset_update_and_delete_raise(self, event):
        with pytest.raises(TypeError):
            ReviewEvent.objects.filter(pk=event.pk).update(data={})
        with pytest.raises(TypeError):
            ReviewEvent.objects.all().delete()

    def test_database_refuses_raw_update_and_delete(self, event):
        for sql in (
            "UPDATE gates_reviewevent SET data = '{}' WHERE id = %s",
            "DELETE FROM gates_reviewevent WHERE id = %s",
        ):
            with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cur:
                cur.execute(sql, [event.pk])


def test_stall_budget_comes_from_the_template_version_the_review_was_decided_under(
    initiative, panel
):
    import datetime as dt

    from gates.models import Gate

    gate = Gate.objects.get(code="G1")
    v1 = selectors.gate_template_current(gate=gate)
    review = submitted_review(initiative, initiative.delivery_lead)
    services.gate_template_revise(
        gate=gate,
        actor=panel.pmo,
        criteria=[
            CriterionSpec(c.code, c.text, c.kind, c.check_name, c.required, c.risk_tiers)
            for c in v1.criteria.all()
        ],
        approvers=[ApproverSpec(a.role, a.risk_tiers) for a in v1.approvers.all()],
        decision_sla_business_days=v1.decision_sla_business_days,
        expected_stage_days=(v1.expected_stage_days or 0) + 100,
        note="Longer pilots from now on",
    )
    approve_all(review, panel)
    initiative.refresh_from_db()
    assert initiative.stage == Stage.PILOT
    assert initiative.stall_at - initiative.stage_entered_at == dt.timedelta(
        days=cast(int, v1.expected_stage_days)
    )
