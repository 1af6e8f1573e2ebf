"""The approval sweep handles a chunk of due approvals in one transaction: a fixed number of
queries however many approvals, deputies and escalations, and each alert once under a race."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from gates import services, sweeps
from gates.models import Approval, ApprovalAlert
from notifications.models import Event
from tests.concurrency import run_at_once
from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory
from tests.gates.helpers import pending, submitted_review

MONDAY = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
FRIDAY = MONDAY + dt.timedelta(days=4)
NEXT_MONDAY = MONDAY + dt.timedelta(days=7)


def _reviews(count: int) -> list[Approval]:
    approvals: list[Approval] = []
    for _ in range(count):
        initiative = InitiativeFactory(delivery_lead=UserFactory())
        SuccessMetricFactory(initiative=initiative)
        approvals += pending(submitted_review(initiative, initiative.delivery_lead))
    return approvals


@pytest.mark.django_db
@pytest.mark.parametrize("reviews", [1, 4])
def test_a_chunks_queries_do_not_grow_with_its_approvals(
    reviews, panel, django_assert_max_num_queries
):
    deputy = UserFactory(username="deputy")
    with time_machine.travel(MONDAY, tick=False) as clock:
        approvals = _reviews(reviews)
        services.delegation_create(
            actor=None,
            principal=panel.risk,
            deputy=deputy,
            starts_on=MONDAY.date(),
            ends_on=(MONDAY + dt.timedelta(days=10)).date(),
        )
        # Read, savepoint, lock, alert insert, deputies, event insert, users, endpoints,
        # deliveries, one deadline update, release.
        clock.move_to(FRIDAY + dt.timedelta(minutes=1))
        with django_assert_max_num_queries(11):
            assert sweeps.sweep_approval_deadlines() == len(approvals)
        # The same with the PMO looked up instead of the deputies.
        clock.move_to(NEXT_MONDAY + dt.timedelta(minutes=1))
        with django_assert_max_num_queries(11):
            assert sweeps.sweep_approval_deadlines() == len(approvals)

    for reminder in Event.objects.filter(type="approval.reminder"):
        told = [r["user_id"] for r in reminder.payload["recipients"]]
        if reminder.payload["approval"]["approver_id"] == panel.risk.pk:
            assert told == [panel.risk.pk, deputy.pk]
        else:
            assert deputy.pk not in told
    for escalation in Event.objects.filter(type="approval.escalated"):
        assert panel.pmo.pk in {r["user_id"] for r in escalation.payload["recipients"]}
    assert ApprovalAlert.objects.count() == 2 * len(approvals)
    assert not Approval.objects.filter(remind_at__isnull=False).exists()


@pytest.mark.django_db
def test_a_chunk_skips_the_recorded_reminder_and_still_moves_every_deadline(initiative, panel):
    with time_machine.travel(MONDAY, tick=False) as clock:
        first, *others = approvals = pending(submitted_review(initiative, initiative.delivery_lead))
        ApprovalAlert.objects.create(approval=first, kind="reminder")
        clock.move_to(FRIDAY + dt.timedelta(minutes=1))
        assert sweeps.sweep_approval_deadlines() == len(others)
    reminded = {e.payload["approval"]["id"] for e in Event.objects.filter(type="approval.reminder")}
    assert reminded == {a.pk for a in others}
    for approval in Approval.objects.filter(pk__in=[a.pk for a in approvals]):
        assert approval.remind_at == approval.due_at


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_over_many_chunks_escalate_each_approval_once(monkeypatch, initiative, panel):
    monkeypatch.setattr(sweeps, "CHUNK_SIZE", 1)
    approvals = pending(submitted_review(initiative, initiative.delivery_lead))
    later = timezone.now() + dt.timedelta(days=30)

    def sweep() -> int:
        return sweeps.sweep_approval_deadlines(now=later)

    assert sum(run_at_once(sweep, sweep)) == len(approvals)
    assert Event.objects.filter(type="approval.escalated").count() == len(approvals)
    assert ApprovalAlert.objects.count() == len(approvals)
    assert sweeps.sweep_approval_deadlines(now=later) == 0
