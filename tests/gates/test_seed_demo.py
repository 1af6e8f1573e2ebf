"""The demo portfolio `make run` loads is realistic and goes through the real services."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from gates import sweeps as gate_sweeps
from gates.models import GateReview, ReviewState
from programs import sweeps
from programs.models import Initiative, Milestone, MilestoneStatus
from programs.stages import Stage

pytestmark = pytest.mark.django_db


def test_seed_demo_covers_every_stage_and_has_work_for_the_sweeps():
    call_command("seed_demo", "--if-empty", "--allow-known-passwords", stdout=io.StringIO())

    assert set(Initiative.objects.values_list("stage", flat=True)) == set(Stage.values)
    assert Initiative.objects.values("business_unit").distinct().count() >= 3
    submitted = GateReview.objects.get(state=ReviewState.SUBMITTED)
    assert submitted.approvals.count() >= 2
    assert GateReview.objects.filter(state=ReviewState.DRAFT).exists()
    assert Milestone.objects.filter(status=MilestoneStatus.OPEN).exists()

    # Overdue milestones, an overdue approval and a stalled pilot are waiting for beat.
    assert sweeps.sweep_overdue_milestones() > 0
    assert sweeps.sweep_stalled_initiatives() > 0
    assert gate_sweeps.sweep_approval_deadlines() == submitted.approvals.count()


def test_seed_demo_if_empty_leaves_existing_data_alone():
    call_command("seed_demo", "--if-empty", "--allow-known-passwords", stdout=io.StringIO())
    out = io.StringIO()
    call_command("seed_demo", "--if-empty", "--allow-known-passwords", stdout=out)
    assert "not loaded" in out.getvalue()
    assert Initiative.objects.count() == 12
