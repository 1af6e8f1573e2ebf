"""PostgreSQL refuses a decided review or approval that comes without its review-log event.

These tests commit for real (``transaction=True``): the decision guards are deferred constraint
triggers, which run at commit, after the service has written both the decision and its event.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import IntegrityError
from django.utils import timezone

from gates import services as gates
from gates.models import Approval, ApprovalStatus, GateReview, ReviewState
from programs import services
from programs.models import Initiative
from programs.stages import Stage
from tests.gates.helpers import approve_all, pass_gate, pending, submitted_review

pytestmark = pytest.mark.django_db(transaction=True)


def _stage(initiative: Initiative) -> str:
    return Initiative.objects.values_list("stage", flat=True).get(pk=initiative.pk)


@pytest.fixture
def review(initiative, panel) -> GateReview:
    return submitted_review(initiative, initiative.delivery_lead)


def test_review_decided_in_sql_without_its_event_is_refused(review):
    with pytest.raises(IntegrityError, match="review_decided"):
        GateReview.objects.filter(pk=review.pk).update(state=ReviewState.APPROVED, outcome="go")
    assert GateReview.objects.get(pk=review.pk).state == ReviewState.SUBMITTED


def test_review_recycled_in_sql_without_its_event_is_refused(review):
    with pytest.raises(IntegrityError):
        GateReview.objects.filter(pk=review.pk).update(
            state=ReviewState.RECYCLED, outcome="recycle"
        )


def test_approval_decided_in_sql_without_its_event_is_refused(review, panel):
    approval = pending(review)[0]
    with pytest.raises(IntegrityError, match="approval_decided"):
        Approval.objects.filter(pk=approval.pk).update(
            status=ApprovalStatus.APPROVED, decided_by=approval.approver, decided_at=timezone.now()
        )
    assert Approval.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING


def test_an_approval_cannot_be_inserted_already_decided(review):
    approval = pending(review)[0]
    with pytest.raises(IntegrityError):
        Approval.objects.create(
            review=review,
            role="extra",
            approver=approval.approver,
            status=ApprovalStatus.APPROVED,
            decided_by=approval.approver,
            decided_at=timezone.now(),
            due_at=approval.due_at,
        )


def test_an_earlier_decisions_event_does_not_license_a_new_one(review, panel):
    approval = pending(review)[0]
    gates.approval_decide(
        approval=approval,
        actor=panel.for_role(approval.role, review.initiative),
        decision="approve",
        comment="ok",
    )
    Approval.objects.filter(pk=approval.pk).update(
        status=ApprovalStatus.PENDING, decided_by=None, decided_at=None
    )
    with pytest.raises(IntegrityError):
        Approval.objects.filter(pk=approval.pk).update(
            status=ApprovalStatus.APPROVED, decided_by=approval.approver, decided_at=timezone.now()
        )


def test_decisions_through_the_services_commit(initiative, panel):
    pass_gate(initiative, panel)
    assert _stage(initiative) == Stage.PILOT
    review = submitted_review(initiative, initiative.delivery_lead)
    first = pending(review)[0]
    gates.approval_decide(
        approval=first,
        actor=panel.for_role(first.role, initiative),
        decision="reject",
        comment="not yet",
        outcome="recycle",
    )
    assert GateReview.objects.get(pk=review.pk).state == ReviewState.RECYCLED

    review = submitted_review(initiative, initiative.delivery_lead)
    first = pending(review)[0]
    gates.approval_decide(
        approval=first,
        actor=panel.for_role(first.role, initiative),
        decision="reject",
        comment="pause this",
        outcome="hold",
    )
    assert GateReview.objects.get(pk=review.pk).state == ReviewState.REJECTED
    assert _stage(initiative) == Stage.ON_HOLD
    initiative.refresh_from_db()
    services.initiative_resume(initiative=initiative, actor=None)
    review = approve_all(submitted_review(initiative, initiative.delivery_lead), panel)
    assert review.state == ReviewState.APPROVED
    assert _stage(initiative) == Stage.INTEGRATION


def test_the_demo_import_writes_the_path_with_the_stage_and_commits():
    call_command("seed_demo", "--if-empty", "--allow-known-passwords", stdout=io.StringIO())
    assert set(Initiative.objects.values_list("stage", flat=True)) == set(Stage.values)
