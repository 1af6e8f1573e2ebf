"""The demo portfolio `make run` loads is realistic, tells a year's story and goes through the
real services."""

from __future__ import annotations

import datetime as dt
import io
import time

import pytest
from django.core.management import call_command
from django.db.models import Count, Max, Min
from django.utils import timezone

from gates import sweeps as gate_sweeps
from gates.models import Approval, ApprovalStatus, GateReview, ReviewState
from programs import sweeps
from programs.models import Initiative, Milestone, MilestoneStatus, StageTransition
from programs.stages import Stage

pytestmark = pytest.mark.django_db


def _seed() -> None:
    call_command("seed_demo", "--if-empty", "--allow-known-passwords", stdout=io.StringIO())


def test_seed_demo_covers_every_stage_and_has_work_for_the_sweeps():
    _seed()

    assert set(Initiative.objects.values_list("stage", flat=True)) == set(Stage.values)
    assert Initiative.objects.values("business_unit").distinct().count() == 4
    submitted = GateReview.objects.filter(state=ReviewState.SUBMITTED)
    assert submitted.count() == 2 and all(r.approvals.count() >= 2 for r in submitted)
    assert GateReview.objects.filter(state=ReviewState.DRAFT).exists()
    assert Milestone.objects.filter(status=MilestoneStatus.OPEN).exists()

    # Overdue milestones, overdue approvals and stalled initiatives are waiting for beat.
    assert sweeps.sweep_overdue_milestones() > 0
    assert sweeps.sweep_stalled_initiatives() > 0
    assert (
        gate_sweeps.sweep_approval_deadlines()
        == Approval.objects.filter(review__in=submitted).count()
    )


def test_finance_owner_has_an_approval_waiting():
    _seed()
    waiting = Approval.objects.filter(
        approver__username="finance.owner", status=ApprovalStatus.PENDING
    )
    assert waiting.filter(review__initiative__key="AI-009").exists()


def test_a_year_of_history_with_records_dated_as_each_stage_was_entered():
    _seed()
    now = timezone.now()
    assert Initiative.objects.count() >= 40
    per_unit = Initiative.objects.values("business_unit").annotate(n=Count("id"))
    assert all(row["n"] >= 8 for row in per_unit)
    span = StageTransition.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
    assert now - span["first"] > dt.timedelta(days=330)
    assert now - span["first"] <= dt.timedelta(days=366)
    for initiative in Initiative.objects.exclude(stage=Stage.PROPOSED):
        moves = list(initiative.transitions.order_by("created_at", "id"))
        assert moves, initiative.key
        assert moves[-1].to_stage == initiative.stage
        assert moves[-1].created_at == initiative.stage_entered_at, initiative.key
        assert [m.from_stage for m in moves[1:]] == [m.to_stage for m in moves[:-1]]
        assert initiative.created_at <= moves[0].created_at
        if initiative.stage == Stage.ON_HOLD:
            assert moves[-2].created_at == initiative.held_stage_entered_at


def test_a_portfolio_dashboard_has_a_story_to_tell():
    _seed()
    now = timezone.now()
    went_live = Initiative.objects.filter(
        transitions__to_stage=Stage.OPERATIONS, transitions__from_stage=Stage.HARDENING
    ).distinct()
    assert went_live.count() >= 5
    died_in_pilot = Initiative.objects.filter(
        stage=Stage.CANCELLED, transitions__from_stage=Stage.PILOT
    ).distinct()
    assert died_in_pilot.count() >= 4

    stalled = Initiative.objects.filter(stall_at__lte=now)
    assert stalled.filter(business_owner=None).exists()  # nobody owns it
    assert stalled.filter(metrics__baseline=None).exists()  # success never defined
    assert stalled.filter(  # work is late
        milestones__status=MilestoneStatus.OPEN, milestones__due_at__lt=now
    ).exists()
    assert stalled.filter(  # approvers have not answered
        gate_reviews__approvals__status=ApprovalStatus.PENDING,
        gate_reviews__approvals__due_at__lt=now,
    ).exists()
    late = Initiative.objects.filter(
        milestones__status=MilestoneStatus.OPEN, milestones__due_at__lt=now
    ).distinct()
    active = Initiative.objects.exclude(stage__in=[Stage.CANCELLED, Stage.RETIRED])
    assert 0 < late.count() < active.count() / 2  # some, not all


def test_seed_demo_is_fast():
    started = time.monotonic()
    _seed()
    assert time.monotonic() - started < 20


def test_seed_demo_if_empty_leaves_existing_data_alone():
    _seed()
    loaded = Initiative.objects.count()
    out = io.StringIO()
    call_command("seed_demo", "--if-empty", "--allow-known-passwords", stdout=out)
    assert "not loaded" in out.getvalue()
    assert Initiative.objects.count() == loaded
