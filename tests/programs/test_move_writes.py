"""What a move writes: the row's lifecycle columns and its transition record (one statement on
PostgreSQL, the ORM's save and create on SQLite), then the event with its deliveries (one
statement once the process knows the endpoint set). Run on both databases: the same rows must
come out of either path."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition

from notifications.models import Channel, Delivery, Event, WebhookEndpoint
from programs import services
from programs.models import Initiative, Stage, StageTransition
from programs.services.lifecycle import _save_move
from tests.factories import InitiativeFactory
from tests.sqlite import assert_passes_on_sqlite

pytestmark = pytest.mark.django_db


def _records(initiative: Initiative) -> list[tuple[str, str, str, str]]:
    return list(
        StageTransition.objects.filter(initiative=initiative)
        .order_by("id")
        .values_list("transition", "from_stage", "to_stage", "reason")
    )


def test_a_hold_and_a_resume_write_the_row_its_records_and_the_deliveries():
    WebhookEndpoint.objects.create(
        name="jira", url="https://hooks.example.com/jira", event_types=["initiative.*"]
    )
    initiative = InitiativeFactory(summary="kept as it was")
    entered, edited = initiative.stage_entered_at, initiative.updated_at
    # Another transaction renames it after this caller read it: a move writes only its own
    # columns, so the rename stays.
    Initiative.objects.filter(pk=initiative.pk).update(name="Renamed meanwhile")

    hold = services.initiative_hold(initiative=initiative, actor=None, reason="waiting on budget")
    row = Initiative.objects.get(pk=initiative.pk)
    assert (row.stage, row.held_from, row.held_stage_entered_at) == (
        Stage.ON_HOLD,
        Stage.PROPOSED,
        entered,
    )
    assert row.name == "Renamed meanwhile"
    assert row.summary == "kept as it was"
    assert row.updated_at > edited
    assert hold.pk == StageTransition.objects.get(initiative=row).pk
    assert (hold.transition, hold.reason) == ("hold", "waiting on budget")

    services.initiative_resume(initiative=initiative, actor=None)
    row.refresh_from_db()
    assert (row.stage, row.held_from, row.stage_entered_at) == (Stage.PROPOSED, "", entered)
    assert _records(row) == [
        ("hold", Stage.PROPOSED, Stage.ON_HOLD, "waiting on budget"),
        ("resume", Stage.ON_HOLD, Stage.PROPOSED, ""),
    ]
    # The caller's instance is the saved row, ready for the next move.
    assert (initiative.stage, initiative.name) == (Stage.PROPOSED, "Renamed meanwhile")

    events = list(Event.objects.filter(type="initiative.stage_changed").order_by("id"))
    assert len(events) == 2
    for event in events:
        channels = sorted(Delivery.objects.filter(event=event).values_list("channel", flat=True))
        # The owner's and the sponsor's e-mail and in-app notes, and the endpoint's webhook.
        assert channels == sorted([Channel.EMAIL] * 2 + [Channel.IN_APP] * 2 + [Channel.WEBHOOK])


def test_a_row_moved_since_it_was_read_is_a_concurrent_transition_and_writes_nothing():
    """The UPDATE matches only the stage the move started from (the lock makes a miss a bug,
    not a race; it must still write nothing)."""
    initiative = InitiativeFactory()
    with pytest.raises(ConcurrentTransition), transaction.atomic():
        row = Initiative.objects.get(pk=initiative.pk)
        Initiative.objects.filter(pk=row.pk).update(stage=Stage.PILOT)
        row.hold()
        record = StageTransition(
            initiative=row,
            transition="hold",
            from_stage=Stage.PROPOSED,
            to_stage=Stage.ON_HOLD,
            reason="stale",
        )
        _save_move(row, Stage.PROPOSED, record, timezone.now())
    assert not StageTransition.objects.filter(initiative=initiative).exists()
    assert Initiative.objects.get(pk=initiative.pk).stage == Stage.PROPOSED


@pytest.mark.slow
def test_the_same_on_sqlite(tmp_path):
    """`make run`'s embedded database, where both writes take the ORM's statements."""
    assert_passes_on_sqlite(__file__, tmp_path)
