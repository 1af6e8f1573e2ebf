"""Two approvers deciding the last two approvals at the same moment, on real PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import transaction

from gatekeeper.errors import Conflict
from gates import services
from gates.models import GateReview, ReviewEvent, ReviewState
from gates.services import decisions
from notifications.models import Event
from programs import services as programs
from programs.models import Initiative, StageTransition
from programs.roles import BUSINESS_OWNERS
from programs.stages import Stage
from tests.concurrency import run_at_once
from tests.factories import UserFactory
from tests.gates.helpers import attach_all_evidence, pass_gate, pending, submitted_review

# serialized_rollback: the flush after a transactional test would otherwise take the seeded
# gates (a data migration) away from the tests that run after this one.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_last_two_approvals_decided_concurrently_decide_review_once(initiative, panel):
    pass_gate(initiative, panel)
    review = submitted_review(initiative, initiative.delivery_lead)
    first, *last_two = pending(review)
    assert len(last_two) == 2
    services.approval_decide(
        approval=first,
        actor=panel.for_role(first.role, initiative),
        decision="approve",
        comment="ok",
    )

    def decide(approval):
        actor = panel.for_role(approval.role, initiative)
        return services.approval_decide(
            approval=approval, actor=actor, decision="approve", comment="ship it"
        )

    results = run_at_once(*[lambda a=a: decide(a) for a in last_two])

    assert not [r for r in results if isinstance(r, BaseException)], results
    review = GateReview.objects.get(pk=review.pk)
    assert review.state == ReviewState.APPROVED
    assert ReviewEvent.objects.filter(review=review, kind="review_decided").count() == 1
    assert (
        Event.objects.filter(type="review.decided", key=f"review.decided:{review.pk}").count() == 1
    )
    moves = StageTransition.objects.filter(initiative=initiative, to_stage=Stage.INTEGRATION)
    assert moves.count() == 1 and moves.get().gate_review_id == review.pk
    assert Initiative.objects.get(pk=initiative.pk).stage == Stage.INTEGRATION


def test_concurrent_approve_and_reject_leave_one_coherent_decision(initiative, panel):
    pass_gate(initiative, panel)
    review = submitted_review(initiative, initiative.delivery_lead)
    first, *last_two = pending(review)
    services.approval_decide(
        approval=first, actor=panel.for_role(first.role, initiative), decision="approve"
    )

    def decide(approval, decision):
        actor = panel.for_role(approval.role, initiative)
        services.approval_decide(
            approval=approval, actor=actor, decision=decision, comment="my call"
        )
        return decision

    results = run_at_once(
        lambda: decide(last_two[0], "approve"), lambda: decide(last_two[1], "reject")
    )
    outcomes = [r if isinstance(r, str) else type(r).__name__ for r in results]

    review = GateReview.objects.get(pk=review.pk)
    initiative = Initiative.objects.get(pk=initiative.pk)
    # Whichever came second: a rejection always rejects, so the gate never opens.
    assert review.state == ReviewState.RECYCLED
    assert initiative.stage == Stage.PILOT
    assert ReviewEvent.objects.filter(review=review, kind="review_decided").count() == 1
    # If the rejection won the lock, the approval arrives at a decided review and is refused.
    assert "reject" in outcomes and len(outcomes) == 2
    assert set(outcomes) - {"reject"} <= {"approve", "Conflict"}


def test_submit_waits_for_a_concurrent_owner_change_and_asks_the_new_owner(initiative, panel):
    """The business owner approves G1; an owner change committed while a submit is running must
    not leave the approval with the owner who was just replaced."""
    lead = initiative.delivery_lead
    review = services.gate_review_open(initiative=initiative, actor=lead)
    attach_all_evidence(review, lead)
    new_owner = UserFactory(username="new.owner", groups=[BUSINESS_OWNERS])
    initiative.business_unit.members.add(new_owner)
    owner_change_holds_lock = threading.Event()

    def change_owner() -> None:
        # What programs' owner update does: lock the initiative, change it, commit.
        with transaction.atomic():
            row = Initiative.objects.select_for_update().get(pk=initiative.pk)
            owner_change_holds_lock.set()
            time.sleep(0.5)  # the submit starts meanwhile; it has to wait for this commit
            row.business_owner = new_owner
            row.save(update_fields=["business_owner"])

    def submit() -> GateReview:
        assert owner_change_holds_lock.wait(timeout=10)
        return services.gate_review_submit(review=review, actor=lead)

    results = run_at_once(change_owner, submit)

    assert not [r for r in results if isinstance(r, BaseException)], results
    owner_approval = GateReview.objects.get(pk=review.pk).approvals.get(role="business_owner")
    assert owner_approval.approver_id == new_owner.pk


def test_cancel_racing_the_deciding_approval_ends_coherently_without_deadlock(initiative, panel):
    """Cancel locks the initiative then withdraws its reviews; the deciding approval locks the
    initiative then the review. Same order, so one waits for the other instead of deadlocking."""
    review = submitted_review(initiative, initiative.delivery_lead)
    first, last = pending(review)
    services.approval_decide(
        approval=first, actor=panel.for_role(first.role, initiative), decision="approve"
    )

    def cancel():
        return programs.initiative_cancel(initiative=initiative, actor=None, reason="budget cut")

    def decide():
        return services.approval_decide(
            approval=last, actor=panel.for_role(last.role, initiative), decision="approve"
        )

    cancelled, decided = run_at_once(cancel, decide)

    review = GateReview.objects.get(pk=review.pk)
    stage = Initiative.objects.get(pk=initiative.pk).stage
    if isinstance(cancelled, BaseException):  # the decision won; cancel saw a moved initiative
        assert isinstance(cancelled, Conflict), cancelled
        assert not isinstance(decided, BaseException), decided
        assert (review.state, stage) == (ReviewState.APPROVED, Stage.PILOT)
    else:  # the cancel won; the approval it voided takes no decision
        assert isinstance(decided, Conflict), decided
        assert (review.state, stage) == (ReviewState.WITHDRAWN, Stage.CANCELLED)


def test_final_decisions_on_two_reviews_that_notify_each_others_approvers_do_not_deadlock(
    panel, monkeypatch
):
    """Each decision locks its approval, then notifies the other review's approver too. If
    the approval lock also took the approver's user row, the two would wait on each other."""
    import threading

    from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory

    shared_owner = UserFactory(username="shared.owner", groups=["business-owners"])
    reviews = []
    for i in range(2):
        initiative = InitiativeFactory(
            delivery_lead=UserFactory(username=f"lead{i}"), business_owner=shared_owner
        )
        SuccessMetricFactory(initiative=initiative)
        reviews.append(submitted_review(initiative, initiative.delivery_lead))
    lasts = []
    for review, last_role in zip(reviews, ["pmo", "business_owner"], strict=True):
        for approval in pending(review):
            if approval.role != last_role:
                services.approval_decide(
                    approval=approval,
                    actor=panel.for_role(approval.role, review.initiative),
                    decision="approve",
                )
        lasts.append(review.approvals.get(role=last_role))

    # Hold both decisions at the point where each owns its locks, so the race is certain.
    barrier = threading.Barrier(2)
    decide_review = decisions._decide_review

    def in_step(**kwargs):
        barrier.wait(timeout=10)
        return decide_review(**kwargs)

    monkeypatch.setattr(decisions, "_decide_review", in_step)
    results = run_at_once(
        lambda: services.approval_decide(approval=lasts[0], actor=panel.pmo, decision="approve"),
        lambda: services.approval_decide(approval=lasts[1], actor=shared_owner, decision="approve"),
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    for review in reviews:
        assert GateReview.objects.get(pk=review.pk).state == ReviewState.APPROVED
