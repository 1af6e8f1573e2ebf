"""The sweeps handle a chunk of due rows in one transaction: each alert once, all or nothing, and a
number of queries that does not grow with the rows."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from notifications import outbox
from notifications.models import Delivery, Event
from programs import events, sweeps
from programs.models import Initiative, Milestone, MilestoneAlert, StallAlert
from programs.roles import PMO
from tests.concurrency import run_at_once
from tests.factories import InitiativeFactory, MilestoneFactory, UserFactory


def _due_milestones(count: int, *, escalating: int = 0) -> list[Milestone]:
    """``count`` milestones on one initiative that fell due an hour ago, but the first
    ``escalating`` of them: owner told already (level 1), due a month ago, so escalating now.
    Either way one sweep alerts each once (level 1's escalation is days away)."""
    initiative = InitiativeFactory()
    now = timezone.now()
    milestones = []
    for n in range(count):
        due = now - (dt.timedelta(days=30) if n < escalating else dt.timedelta(hours=1))
        milestones.append(MilestoneFactory(initiative=initiative, due_at=due, next_alert_at=due))
    Milestone.objects.filter(pk__in=[m.pk for m in milestones[:escalating]]).update(alert_level=1)
    return milestones


@pytest.mark.django_db
def test_a_chunk_records_each_alert_once_next_to_one_already_recorded(settings):
    settings.GATEKEEPER = {**settings.GATEKEEPER, "MILESTONE_ESCALATION_DAYS": 3}
    milestones = _due_milestones(5)
    taken = milestones[2]
    MilestoneAlert.objects.create(milestone=taken, level=1, due_at=taken.due_at)

    assert sweeps.sweep_overdue_milestones() == 4

    alerted = {e.payload["milestone"]["id"] for e in Event.objects.filter(type="milestone.overdue")}
    assert alerted == {m.pk for m in milestones} - {taken.pk}
    assert MilestoneAlert.objects.filter(level=1).count() == 5
    # Every deadline moves on, the already-alerted one's too.
    for milestone in Milestone.objects.filter(pk__in=[m.pk for m in milestones]):
        assert milestone.alert_level == 1
        assert milestone.next_alert_at == milestone.due_at + dt.timedelta(days=3)
    assert sweeps.sweep_overdue_milestones() == 0


@pytest.mark.django_db
def test_a_mixed_chunk_sends_the_payloads_one_alert_at_a_time_would():
    pmo = UserFactory(groups=[PMO])
    milestones = _due_milestones(4, escalating=2)
    now = timezone.now()
    before = {m.pk: m for m in Milestone.objects.select_related("initiative", "owner")}

    assert sweeps.sweep_overdue_milestones(now=now) == 4

    for event in Event.objects.filter(type__startswith="milestone."):
        milestone = before[event.payload["milestone"]["id"]]
        if event.type == "milestone.escalated":
            expected = events.milestone_escalated(milestone, level=2, now=now)
            assert pmo.pk in {r["user_id"] for r in event.payload["recipients"]}
        else:
            expected = events.milestone_overdue(milestone, level=1, now=now)
        assert (event.key, event.payload) == (expected.key, expected.payload)
    levels = dict(Milestone.objects.values_list("pk", "alert_level"))
    assert sorted(levels[m.pk] for m in milestones) == [1, 1, 2, 2]
    assert not Milestone.objects.filter(alert_level=2, next_alert_at__isnull=False).exists()


@pytest.mark.django_db
def test_a_stall_chunk_skips_the_recorded_stay_and_moves_every_deadline():
    past = timezone.now() - dt.timedelta(days=1)
    initiatives = [InitiativeFactory(stall_at=past) for _ in range(4)]
    seen = initiatives[1]
    StallAlert.objects.create(
        initiative=seen, stage=seen.stage, stage_entered_at=seen.stage_entered_at
    )

    assert sweeps.sweep_stalled_initiatives() == 3

    reported = {
        e.payload["initiative"]["id"] for e in Event.objects.filter(type="initiative.stalled")
    }
    assert reported == {i.pk for i in initiatives} - {seen.pk}
    assert StallAlert.objects.count() == 4
    assert not Initiative.objects.filter(stall_at__isnull=False).exists()


@pytest.mark.django_db
def test_a_failure_mid_chunk_writes_nothing_of_it_and_the_next_sweep_sends_it(monkeypatch):
    milestones = _due_milestones(5)
    monkeypatch.setattr(sweeps, "CHUNK_SIZE", 3)
    real_emit_all = outbox.emit_all
    calls = []

    def emit_then_fail(chunk):
        calls.append(len(chunk))
        written = real_emit_all(chunk)
        if len(calls) == 2:  # the second chunk, after its alert rows and events are written
            raise RuntimeError("worker lost mid-chunk")
        return written

    monkeypatch.setattr(outbox, "emit_all", emit_then_fail)
    with pytest.raises(RuntimeError, match="mid-chunk"):
        sweeps.sweep_overdue_milestones()

    # The first chunk committed whole; of the second nothing at all is left.
    assert calls == [3, 2]
    assert MilestoneAlert.objects.count() == 3
    assert Event.objects.count() == 3
    assert Delivery.objects.filter(event__type="milestone.overdue").count() == 6  # mail + in-app
    assert Milestone.objects.filter(alert_level=0).count() == 2

    monkeypatch.setattr(outbox, "emit_all", real_emit_all)
    assert sweeps.sweep_overdue_milestones() == 2
    assert MilestoneAlert.objects.count() == 5
    alerted = [e.payload["milestone"]["id"] for e in Event.objects.filter(type="milestone.overdue")]
    assert sorted(alerted) == sorted(m.pk for m in milestones)


@pytest.mark.django_db
@pytest.mark.parametrize("due", [5, 50])
def test_a_chunks_queries_do_not_grow_with_its_rows(due, django_assert_max_num_queries):
    # One due-row read, the chunk's savepoint, lock, alert insert, PMO, event insert, users,
    # endpoints, deliveries and two deadline updates; the same for 5 rows as for 50.
    UserFactory(groups=[PMO])
    _due_milestones(due, escalating=due // 2)
    with django_assert_max_num_queries(12):
        assert sweeps.sweep_overdue_milestones() == due
    assert Event.objects.filter(type="milestone.escalated").count() == due // 2

    past = timezone.now() - dt.timedelta(days=1)
    Initiative.objects.update(stall_at=None)
    InitiativeFactory.create_batch(due, stall_at=past)
    with django_assert_max_num_queries(11):
        assert sweeps.sweep_stalled_initiatives() == due


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_over_many_chunks_send_each_alert_exactly_once(monkeypatch):
    monkeypatch.setattr(sweeps, "CHUNK_SIZE", 4)
    milestones = _due_milestones(40, escalating=10)
    past = timezone.now() - dt.timedelta(days=1)
    initiatives = [InitiativeFactory(stall_at=past) for _ in range(20)]

    def sweep() -> tuple[int, int]:
        return sweeps.sweep_overdue_milestones(), sweeps.sweep_stalled_initiatives()

    first, second = run_at_once(sweep, sweep)
    assert first[0] + second[0] == len(milestones)
    assert first[1] + second[1] == len(initiatives)
    alerted = Event.objects.filter(type__in=["milestone.overdue", "milestone.escalated"])
    assert alerted.count() == len(milestones) == MilestoneAlert.objects.count()
    assert Event.objects.filter(type="initiative.stalled").count() == len(initiatives)
    assert StallAlert.objects.count() == len(initiatives)
    # Whatever one sweep skipped as locked, the next finds handled: nothing is left due.
    assert sweeps.sweep_overdue_milestones() == 0
    assert sweeps.sweep_stalled_initiatives() == 0
