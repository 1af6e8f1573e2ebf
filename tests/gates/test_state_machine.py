"""Random walks through reviews, approvals and the lifecycle.

Whatever sequence of opens, submissions, decisions (by the right people and the wrong ones),
holds, resumes, direct advance attempts and template revisions happens, no initiative ever passes
a gate without a review of that gate approved under that review's own quorum policy.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import cast

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from gatekeeper.errors import DomainError
from gatekeeper.types import User
from gates import selectors, services
from gates.models import (
    Approval,
    ApprovalStatus,
    Gate,
    GateReview,
    QuorumPolicy,
    ReviewState,
)
from gates.services import ApproverSpec, ConditionSpec, CriterionSpec
from programs import services as programs
from programs.models import Initiative, Milestone, MilestoneStatus, StageTransition
from programs.roles import APPROVERS, INTEGRATIONS, PMO
from programs.stages import GATE_INTO, NEXT_STAGE
from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory
from tests.gates.helpers import attach_all_evidence, measure_pilot

ROLES = ("business", "risk", "platform", "security", "pmo")
# Mostly the assigned approver, so walks get far enough to pass gates.
ACTOR_KINDS = ("assigned",) * 4 + ("submitter", "bot", "stranger", "other_approver")


class GateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Each example runs in its own savepoint, rolled back in teardown.
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.people = {
            role: UserFactory(username=f"sm.{role}", groups=[PMO if role == "pmo" else APPROVERS])
            for role in ROLES
        }
        for role, user in self.people.items():
            services.gate_approver_assign(actor=None, user=user, role=role)
        self.bot = UserFactory(username="sm.bot", groups=[INTEGRATIONS])
        self.stranger = UserFactory(username="sm.stranger")
        self.initiatives = []
        for tier in ("medium", "high"):
            initiative = InitiativeFactory(delivery_lead=UserFactory(), risk_tier=tier)
            SuccessMetricFactory(initiative=initiative)
            self.initiatives.append(initiative)

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- helpers ------------------------------------------------------------------------
    def _initiative(self, i: int) -> Initiative:
        initiative = self.initiatives[i % len(self.initiatives)]
        initiative.refresh_from_db()
        return initiative

    def _open_review(self, initiative: Initiative) -> GateReview | None:
        return (
            GateReview.objects.filter(
                initiative=initiative, state__in=[ReviewState.DRAFT, ReviewState.SUBMITTED]
            )
            .select_related("gate", "template", "initiative")
            .first()
        )

    def _actor(self, kind: str, approval: Approval, review: GateReview):
        if kind == "assigned":
            return approval.approver
        if kind == "submitter":
            return review.submitted_by
        if kind == "bot":
            return self.bot
        if kind == "stranger":
            return self.stranger
        others = [u for u in self.people.values() if u.pk != approval.approver_id]
        return others[approval.pk % len(others)]

    # --- rules --------------------------------------------------------------------------
    @rule(i=st.integers(0, 1), action=st.sampled_from(["open", "prepare", "submit"]))
    def lead_action(self, i, action):
        """One step by the delivery lead, who may well submit before the review is ready."""
        initiative = self._initiative(i)
        review = self._open_review(initiative)
        with contextlib.suppress(DomainError):
            if action == "open":
                services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
            elif review is not None and action == "prepare":
                if review.state == ReviewState.DRAFT:
                    measure_pilot(initiative)
                    attach_all_evidence(review, initiative.delivery_lead)
            elif review is not None:
                services.gate_review_submit(review=review, actor=initiative.delivery_lead)

    @rule(
        i=st.integers(0, 1),
        pick=st.integers(0, 4),
        actor_kind=st.sampled_from(ACTOR_KINDS),
        decision=st.sampled_from(["approve", "approve", "approve", "reject"]),
        outcome=st.sampled_from(["recycle", "hold", "kill"]),
        with_condition=st.booleans(),
    )
    def decide(self, i, pick, actor_kind, decision, outcome, with_condition):
        initiative = self._initiative(i)
        review = self._open_review(initiative)
        if review is None or review.state != ReviewState.SUBMITTED:
            return
        approvals = list(review.approvals.filter(status=ApprovalStatus.PENDING).order_by("id"))
        if not approvals:
            return
        approval = approvals[pick % len(approvals)]
        conditions = []
        if decision == "approve" and with_condition:
            conditions = [
                ConditionSpec(
                    title=f"condition of review {review.pk}",
                    owner=cast(User, initiative.delivery_lead),
                    due_at=timezone.now() + dt.timedelta(days=10),
                )
            ]
        with contextlib.suppress(DomainError):
            services.approval_decide(
                approval=approval,
                actor=self._actor(actor_kind, approval, review),
                decision=decision,
                comment="decided in a random walk",
                outcome=outcome if decision == "reject" else None,
                conditions=conditions,
            )

    @rule(i=st.integers(0, 1))
    def diligent_team_step(self, i):
        """The delivery lead gets a ready review in front of the panel; the panel approves it.

        One step of each, so random walks regularly get gates passed, not only refused.
        """
        initiative = self._initiative(i)
        review = self._open_review(initiative)
        with contextlib.suppress(DomainError):
            if review is None:
                review = services.gate_review_open(
                    initiative=initiative, actor=initiative.delivery_lead
                )
            if review.state == ReviewState.DRAFT:
                measure_pilot(initiative)
                attach_all_evidence(review, initiative.delivery_lead)
                services.gate_review_submit(review=review, actor=initiative.delivery_lead)
                return
        if review is None or review.state != ReviewState.SUBMITTED:
            return
        for approval in review.approvals.filter(status=ApprovalStatus.PENDING).order_by("id"):
            with contextlib.suppress(DomainError):
                services.approval_decide(
                    approval=approval, actor=approval.approver, decision="approve"
                )

    @rule(i=st.integers(0, 1))
    def try_advance_directly(self, i):
        with contextlib.suppress(DomainError):
            programs.initiative_advance(initiative=self._initiative(i), actor=None)

    @rule(
        i=st.integers(0, 1),
        kind=st.sampled_from(["withdraw", "hold_or_resume", "close_milestones", "revise"]),
        code=st.sampled_from(["G1", "G2", "G3", "G4"]),
        n=st.integers(1, 2),
    )
    def disruption(self, i, kind, code, n):
        """Things that happen around reviews: withdrawals, holds, closed milestones, new rules."""
        initiative = self._initiative(i)
        if kind == "withdraw":
            review = self._open_review(initiative)
            if review is not None:
                services.gate_review_withdraw(
                    review=review, actor=initiative.delivery_lead, reason="random walk"
                )
        elif kind == "hold_or_resume":
            with contextlib.suppress(DomainError):
                if initiative.stage == "on_hold":
                    programs.initiative_resume(initiative=initiative, actor=None)
                else:
                    programs.initiative_hold(initiative=initiative, actor=None, reason="walk")
        elif kind == "close_milestones":
            for milestone in Milestone.objects.filter(
                initiative=initiative, status=MilestoneStatus.OPEN
            ):
                programs.milestone_complete(milestone=milestone, actor=None)
        else:
            self._revise_to_n_of_m(code, n)

    def _revise_to_n_of_m(self, code: str, n: int) -> None:
        gate = Gate.objects.get(code=code)
        current = selectors.gate_template_current(gate=gate)
        services.gate_template_revise(
            gate=gate,
            actor=None,
            criteria=[
                CriterionSpec(c.code, c.text, c.kind, c.check_name, c.required, c.risk_tiers)
                for c in current.criteria.all()
            ],
            approvers=[ApproverSpec(a.role, a.risk_tiers) for a in current.approvers.all()],
            quorum_policy=QuorumPolicy.N_OF_M,
            quorum_n=n,
            decision_sla_business_days=current.decision_sla_business_days,
            expected_stage_days=current.expected_stage_days,
        )

    # --- the property -------------------------------------------------------------------
    @invariant()
    def every_forward_move_has_an_approved_review_under_its_policy(self):
        for initiative in self.initiatives:
            forward = [
                t
                for t in StageTransition.objects.filter(initiative=initiative)
                if NEXT_STAGE.get(t.from_stage) == t.to_stage
            ]
            gates_passed = [GATE_INTO[t.to_stage] for t in forward]
            event(f"initiative passed {len(gates_passed)} gate(s)")
            assert len(gates_passed) == len(set(gates_passed)), "a gate was passed twice"
            for move in forward:
                review = GateReview.objects.select_related("template", "gate").get(
                    pk=move.gate_review_id
                )
                assert review.gate.code == GATE_INTO[move.to_stage]
                assert review.initiative_id == initiative.pk
                assert review.state == ReviewState.APPROVED
                assert review.decided_at <= move.created_at
                approvals = list(review.approvals.all())
                statuses = [a.status for a in approvals]
                assert ApprovalStatus.REJECTED not in statuses
                given = statuses.count(ApprovalStatus.APPROVED)
                if review.template.quorum_policy == QuorumPolicy.ALL:
                    assert given == len(approvals) > 0
                else:
                    assert given >= review.template.quorum_n
                deciders = [a.decided_by_id for a in approvals if a.decided_by_id]
                assert len(deciders) == len(set(deciders)), "someone decided twice"
                assert review.submitted_by_id not in deciders
                assert self.bot.pk not in deciders

    @invariant()
    def stage_matches_the_last_transition(self):
        for initiative in self.initiatives:
            initiative.refresh_from_db()
            last = StageTransition.objects.filter(initiative=initiative).order_by("id").last()
            assert initiative.stage == (last.to_stage if last else "proposed")


@pytest.mark.django_db
def test_no_initiative_passes_a_gate_without_an_approved_review():
    run_state_machine_as_test(
        GateMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
