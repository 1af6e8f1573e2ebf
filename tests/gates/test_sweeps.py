"""Approval reminders before due, escalation after due: at the right moment, once each."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from gates import services, sweeps
from gates.models import AlertKind, ApprovalAlert
from notifications.models import Event
from tests.concurrency import run_at_once
from tests.gates.helpers import pending, submitted_review

# A Monday morning: G1's SLA is 5 business days, so approvals are due the next Monday 09:00
# and the reminder (1 business day before) goes out on Friday 09:00.
MONDAY = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
FRIDAY = MONDAY + dt.timedelta(days=4)
NEXT_MONDAY = MONDAY + dt.timedelta(days=7)


def _events(kind: str) -> list[Event]:
    return list(Event.objects.filter(type=kind).order_by("id"))


@pytest.mark.django_db
def test_reminder_before_due_then_escalation_after_once_each(initiative, panel):
    with time_machine.travel(MONDAY, tick=False) as clock:
        review = submitted_review(initiative, initiative.delivery_lead)
        approvals = pending(review)
        assert {a.due_at for a in approvals} == {NEXT_MONDAY}
        assert sweeps.sweep_approval_deadlines() == 0

        clock.move_to(FRIDAY - dt.timedelta(minutes=1))
        assert sweeps.sweep_approval_deadlines() == 0
        clock.move_to(FRIDAY + dt.timedelta(minutes=1))
        assert sweeps.sweep_approval_deadlines() == len(approvals)
        assert sweeps.sweep_approval_deadlines() == 0

        clock.move_to(NEXT_MONDAY + dt.timedelta(minutes=1))
        assert sweeps.sweep_approval_deadlines() == len(approvals)
        clock.move_to(NEXT_MONDAY + dt.timedelta(days=30))
        assert sweeps.sweep_approval_deadlines() == 0

    reminders = _events("approval.reminder")
    assert {e.payload["approval"]["id"] for e in reminders} == {a.pk for a in approvals}
    for event in reminders:
        approval = next(a for a in approvals if a.pk == event.payload["approval"]["id"])
        assert [r["user_id"] for r in event.payload["recipients"]] == [approval.approver_id]
        assert event.payload["admin_url"].startswith("/admin/")

    escalations = _events("approval.escalated")
    assert len(escalations) == len(approvals)
    told = {r["user_id"] for r in escalations[0].payload["recipients"]}
    assert {initiative.sponsor_id, panel.pmo.pk} <= told
    assert ApprovalAlert.objects.filter(kind=AlertKind.ESCALATION).count() == len(approvals)


@pytest.mark.django_db
def test_decided_approval_is_not_chased(initiative, panel):
    with time_machine.travel(MONDAY, tick=False) as clock:
        review = submitted_review(initiative, initiative.delivery_lead)
        first, *others = pending(review)
        services.approval_decide(
            approval=first, actor=first.approver, decision="approve", comment="fine"
        )
        clock.move_to(NEXT_MONDAY + dt.timedelta(hours=1))
        assert sweeps.sweep_approval_deadlines() == len(others)
    assert first.pk not in {e.payload["approval"]["id"] for e in _events("approval.escalated")}


@pytest.mark.django_db
def test_a_sweep_that_wakes_after_due_escalates_without_a_stale_reminder(initiative, panel):
    with time_machine.travel(MONDAY, tick=False) as clock:
        review = submitted_review(initiative, initiative.delivery_lead)
        clock.move_to(NEXT_MONDAY + dt.timedelta(days=2))
        assert sweeps.sweep_approval_deadlines() == len(pending(review))
    assert not _events("approval.reminder")


@pytest.mark.django_db
def test_deputy_is_reminded_too(initiative, panel):
    from tests.factories import UserFactory

    deputy = UserFactory(username="deputy")
    with time_machine.travel(MONDAY, tick=False) as clock:
        review = submitted_review(initiative, initiative.delivery_lead)
        approval = pending(review)[0]
        services.delegation_create(
            actor=None,
            principal=approval.approver,
            deputy=deputy,
            starts_on=MONDAY.date(),
            ends_on=(MONDAY + dt.timedelta(days=10)).date(),
        )
        clock.move_to(FRIDAY + dt.timedelta(minutes=1))
        sweeps.sweep_approval_deadlines()
    reminder = next(
        e for e in _events("approval.reminder") if e.payload["approval"]["id"] == approval.pk
    )
    told = [r["user_id"] for r in reminder.payload["recipients"]]
    assert told == [approval.approver_id, deputy.pk]


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_send_each_reminder_once(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    count = len(pending(review))
    later = timezone.now() + dt.timedelta(days=30)  # past due: each approval escalates once

    def sweep() -> int:
        return sweeps.sweep_approval_deadlines(now=later)

    assert sum(run_at_once(sweep, sweep)) == count
    assert Event.objects.filter(type="approval.escalated").count() == count
    assert ApprovalAlert.objects.count() == count
