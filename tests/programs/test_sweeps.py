"""Overdue-milestone and stall alerts fire at the right moment, once per level (time-machine)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from notifications.models import Event
from programs import services, sweeps
from programs.models import Initiative, MilestoneAlert, StallAlert
from programs.roles import PMO
from programs.stages import Stage
from tests.concurrency import run_at_once
from tests.factories import InitiativeFactory, MilestoneFactory, SuccessMetricFactory, UserFactory

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _events(kind: str) -> list[Event]:
    return list(Event.objects.filter(type=kind).order_by("id"))


@pytest.fixture
def budgets(stage_budgets):
    stage_budgets({Stage.PROPOSED: dt.timedelta(days=60), Stage.PILOT: dt.timedelta(days=30)})


@pytest.mark.django_db
class TestOverdueMilestones:
    def test_owner_alerted_at_due_then_business_owner_and_pmo_after_n_days_once_each(
        self, settings
    ):
        settings.GATEKEEPER = {**settings.GATEKEEPER, "MILESTONE_ESCALATION_DAYS": 3}
        pmo = UserFactory(groups=[PMO])
        with time_machine.travel(START, tick=False) as clock:
            milestone = MilestoneFactory(due_at=START + dt.timedelta(days=1))
            assert sweeps.sweep_overdue_milestones() == 0

            clock.move_to(START + dt.timedelta(days=1, minutes=1))
            assert sweeps.sweep_overdue_milestones() == 1
            assert sweeps.sweep_overdue_milestones() == 0
            [overdue] = _events("milestone.overdue")
            assert [r["user_id"] for r in overdue.payload["recipients"]] == [milestone.owner_id]
            assert overdue.payload["admin_url"].endswith(f"/milestone/{milestone.pk}/change/")

            clock.move_to(START + dt.timedelta(days=3, hours=23))
            assert sweeps.sweep_overdue_milestones() == 0  # not yet N days past due

            clock.move_to(START + dt.timedelta(days=4, minutes=1))
            assert sweeps.sweep_overdue_milestones() == 1
            clock.move_to(START + dt.timedelta(days=40))
            assert sweeps.sweep_overdue_milestones() == 0

        [escalated] = _events("milestone.escalated")
        told = {r["user_id"] for r in escalated.payload["recipients"]}
        assert {milestone.initiative.business_owner_id, pmo.pk} <= told
        assert escalated.payload["milestone"]["days_late"] == 3
        assert MilestoneAlert.objects.filter(milestone=milestone).count() == 2

    def test_done_milestone_is_never_alerted(self):
        with time_machine.travel(START, tick=False) as clock:
            milestone = MilestoneFactory(due_at=START + dt.timedelta(days=1))
            services.milestone_complete(milestone=milestone, actor=None)
            clock.move_to(START + dt.timedelta(days=30))
            assert sweeps.sweep_overdue_milestones() == 0
        assert not _events("milestone.overdue")

    def test_rescheduling_starts_alerts_over_for_the_new_date(self):
        with time_machine.travel(START, tick=False) as clock:
            milestone = MilestoneFactory(due_at=START + dt.timedelta(hours=1))
            clock.move_to(START + dt.timedelta(hours=2))
            assert sweeps.sweep_overdue_milestones() == 1
            new_due = START + dt.timedelta(days=10)
            services.milestone_update(
                milestone=milestone,
                actor=None,
                title=milestone.title,
                owner=milestone.owner,
                due_at=new_due,
            )
            assert sweeps.sweep_overdue_milestones() == 0
            clock.move_to(new_due + dt.timedelta(minutes=1))
            assert sweeps.sweep_overdue_milestones() == 1
        assert len(_events("milestone.overdue")) == 2

    def test_sweep_reads_a_bounded_batch(self):
        with time_machine.travel(START, tick=False) as clock:
            for _ in range(5):
                MilestoneFactory(due_at=START)
            clock.move_to(START + dt.timedelta(minutes=1))
            assert sweeps.sweep_overdue_milestones(batch=2) == 2
            assert sweeps.sweep_overdue_milestones(batch=10) == 3


@pytest.mark.django_db
class TestStalls:
    def test_stalled_pilot_reported_once_per_stay(self, budgets, gate_port):
        with time_machine.travel(START, tick=False) as clock:
            initiative = InitiativeFactory(stall_at=None)
            SuccessMetricFactory(initiative=initiative)
            gate_port.approve(initiative, Stage.PILOT)
            services.initiative_advance(initiative=initiative, actor=None)
            assert initiative.stall_at == START + dt.timedelta(days=30)

            clock.move_to(START + dt.timedelta(days=29))
            assert sweeps.sweep_stalled_initiatives() == 0
            clock.move_to(START + dt.timedelta(days=31))
            assert sweeps.sweep_stalled_initiatives() == 1
            assert sweeps.sweep_stalled_initiatives() == 0
            clock.move_to(START + dt.timedelta(days=90))
            assert sweeps.sweep_stalled_initiatives() == 0

        [stalled] = _events("initiative.stalled")
        assert stalled.payload["days_in_stage"] == 31
        assert stalled.payload["initiative"]["key"] == initiative.key
        assert initiative.business_owner_id in {r["user_id"] for r in stalled.payload["recipients"]}

    def test_on_hold_initiative_is_not_stalled(self, budgets, gate_port):
        with time_machine.travel(START, tick=False) as clock:
            initiative = services.initiative_create(
                actor=None, name="Paused", business_unit=InitiativeFactory().business_unit
            )
            services.initiative_hold(initiative=initiative, actor=None, reason="budget freeze")
            assert initiative.stall_at is None
            clock.move_to(START + dt.timedelta(days=365))
            assert sweeps.sweep_stalled_initiatives() == 0

    def test_new_proposal_gets_the_proposed_budget(self, budgets):
        with time_machine.travel(START, tick=False):
            initiative = services.initiative_create(
                actor=None, name="New", business_unit=InitiativeFactory().business_unit
            )
        assert initiative.stall_at == START + dt.timedelta(days=60)


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_send_each_alert_once():
    past = timezone.now() - dt.timedelta(days=1)
    milestones = [MilestoneFactory(due_at=past) for _ in range(12)]
    initiatives = [InitiativeFactory(stall_at=past) for _ in range(6)]

    def sweep() -> None:
        sweeps.sweep_overdue_milestones()
        sweeps.sweep_stalled_initiatives()

    assert run_at_once(sweep, sweep) == [None, None]
    assert Event.objects.filter(type="milestone.overdue").count() == len(milestones)
    assert MilestoneAlert.objects.count() == len(milestones)
    assert Event.objects.filter(type="initiative.stalled").count() == len(initiatives)
    assert StallAlert.objects.count() == len(initiatives)
    assert not Initiative.objects.filter(stall_at__isnull=False).exists()
