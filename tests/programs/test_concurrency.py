"""Two callers firing the same transition at once: exactly one wins (real PostgreSQL locks)."""

from __future__ import annotations

import pytest

from gatekeeper.errors import Conflict
from programs import services
from programs.models import Initiative, StageTransition
from programs.stages import Stage
from tests.concurrency import run_at_once
from tests.factories import InitiativeFactory, SuccessMetricFactory
from tests.unguarded import unguarded


def _race(initiative_pk: int, *calls) -> list[object]:
    """Each caller holds its own copy of the initiative, as two browser tabs would."""
    return run_at_once(
        *[lambda call=call: call(Initiative.objects.get(pk=initiative_pk)) for call in calls]
    )


@pytest.mark.django_db(transaction=True)
def test_same_forward_transition_twice_at_once_moves_once(gate_port):
    initiative = InitiativeFactory()
    SuccessMetricFactory(initiative=initiative)
    gate_port.approve(initiative, Stage.PILOT)

    advance = lambda mine: services.initiative_advance(initiative=mine, actor=None)  # noqa: E731
    outcomes = _race(initiative.pk, advance, advance)

    records = [o for o in outcomes if isinstance(o, StageTransition)]
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(records) == 1 and len(conflicts) == 1, outcomes
    assert "moved by someone else" in conflicts[0].detail
    assert StageTransition.objects.filter(initiative_id=initiative.pk).count() == 1
    assert Initiative.objects.get(pk=initiative.pk).stage == Stage.PILOT


@pytest.mark.django_db(transaction=True)
def test_hold_and_cancel_at_once_only_one_applies(gate_port):
    initiative = InitiativeFactory()
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.PILOT)
    outcomes = _race(
        initiative.pk,
        lambda mine: services.initiative_hold(initiative=mine, actor=None, reason="pause"),
        lambda mine: services.initiative_cancel(initiative=mine, actor=None, reason="stop"),
    )

    assert sum(isinstance(o, StageTransition) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, Conflict) for o in outcomes) == 1, outcomes
    assert StageTransition.objects.filter(initiative_id=initiative.pk).count() == 1
