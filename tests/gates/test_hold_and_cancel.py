"""A held or cancelled initiative's open reviews are withdrawn by the system, and the approval
sweep never chases an approval whose initiative is out of the active stages."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from gates import services, sweeps
from gates.models import ApprovalStatus, EventKind, Outcome, ReviewEvent, ReviewState
from notifications.models import Event
from programs import services as programs
from programs.models import Initiative, StageTransition
from programs.stages import Stage
from tests.gates.helpers import pending, submitted_review
from tests.unguarded import unguarded

pytestmark = pytest.mark.django_db

LATER = dt.timedelta(days=60)  # past every approval's due date: anything still chased escalates


def _hold(initiative):
    programs.initiative_hold(initiative=initiative, actor=None, reason="reorg")


def _cancel(initiative):
    programs.initiative_cancel(initiative=initiative, actor=None, reason="budget cut")


@pytest.mark.parametrize(
    ("move", "reason"),
    [(_hold, "initiative put on hold"), (_cancel, "initiative cancelled")],
)
def test_holding_or_cancelling_withdraws_the_submitted_review(initiative, panel, move, reason):
    review = submitted_review(initiative, initiative.delivery_lead)
    approvers = {a.approver_id for a in pending(review)}

    move(initiative)

    review.refresh_from_db()
    assert (review.state, review.closed_reason) == (ReviewState.WITHDRAWN, reason)
    assert set(review.approvals.values_list("status", flat=True)) == {ApprovalStatus.VOID}
    logged = ReviewEvent.objects.get(review=review, kind=EventKind.WITHDRAWN)
    assert (logged.actor_id, logged.data["reason"]) == (None, reason)
    event = Event.objects.get(type="review.withdrawn")
    assert {r["user_id"] for r in event.payload["recipients"]} == approvers
    assert event.payload["reason"] == reason

    assert sweeps.sweep_approval_deadlines(now=timezone.now() + LATER) == 0
    assert not Event.objects.filter(type__in=["approval.reminder", "approval.escalated"]).exists()


def test_a_draft_review_is_withdrawn_quietly_when_the_initiative_is_cancelled(initiative, panel):
    review = services.gate_review_open(initiative=initiative, actor=initiative.delivery_lead)
    _cancel(initiative)
    review.refresh_from_db()
    assert review.state == ReviewState.WITHDRAWN
    assert not Event.objects.filter(type="review.withdrawn").exists()  # no approver was asked


def test_a_hold_decision_is_recorded_on_its_own_review_not_withdrawn(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    services.approval_decide(
        approval=review.approvals.get(role="pmo"),
        actor=panel.pmo,
        decision="reject",
        outcome="hold",
        comment="No budget this quarter",
    )
    review.refresh_from_db()
    initiative.refresh_from_db()
    assert (review.state, review.outcome) == (ReviewState.REJECTED, Outcome.HOLD)
    assert initiative.stage == Stage.ON_HOLD
    kinds = list(ReviewEvent.objects.filter(review=review).values_list("kind", flat=True))
    assert EventKind.REVIEW_DECIDED in kinds and EventKind.WITHDRAWN not in kinds
    assert StageTransition.objects.get(initiative=initiative).gate_review_id == review.pk
    assert not Event.objects.filter(type="review.withdrawn").exists()


def test_a_kill_decision_is_recorded_on_its_own_review_not_withdrawn(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    services.approval_decide(
        approval=review.approvals.get(role="pmo"),
        actor=panel.pmo,
        decision="reject",
        outcome="kill",
        comment="Not viable",
    )
    review.refresh_from_db()
    assert (review.state, review.outcome) == (ReviewState.REJECTED, Outcome.KILL)
    assert Initiative.objects.get(pk=initiative.pk).stage == Stage.CANCELLED
    assert not ReviewEvent.objects.filter(review=review, kind=EventKind.WITHDRAWN).exists()


@pytest.mark.parametrize("stage", [Stage.ON_HOLD, Stage.CANCELLED, Stage.OPERATIONS])
def test_sweep_skips_approvals_of_initiatives_outside_the_active_stages(initiative, panel, stage):
    """A review left submitted by data written before the withdraw listener existed (or by a
    fix in the database) must not keep chasing approvers who can no longer decide."""
    review = submitted_review(initiative, initiative.delivery_lead)
    held_from = Stage.PROPOSED if stage == Stage.ON_HOLD else ""
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(stage=stage, held_from=held_from)

    assert sweeps.sweep_approval_deadlines(now=timezone.now() + LATER) == 0

    assert not Event.objects.filter(type__in=["approval.reminder", "approval.escalated"]).exists()
    assert set(review.approvals.values_list("remind_at", flat=True)) == {None}
