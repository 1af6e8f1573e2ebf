"""Two callers firing the same transition at once: exactly one wins (real PostgreSQL locks)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from gatekeeper.errors import Conflict, DomainError
from programs import services
from programs.models import Initiative, StageTransition
from programs.stages import Stage
from tests.factories import InitiativeFactory, SuccessMetricFactory


def _race(initiative_pk: int, call) -> list[object]:
    barrier = threading.Barrier(2)
    outcomes: list[object] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            mine = Initiative.objects.get(pk=initiative_pk)  # each caller holds its own copy
            barrier.wait(timeout=10)
            result: object = call(mine)
        except DomainError as exc:
            result = exc
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_same_forward_transition_twice_at_once_moves_once(gate_port):
    initiative = InitiativeFactory()
    SuccessMetricFactory(initiative=initiative)
    gate_port.approve(initiative, Stage.PILOT)

    outcomes = _race(
        initiative.pk, lambda mine: services.initiative_advance(initiative=mine, actor=None)
    )

    records = [o for o in outcomes if isinstance(o, StageTransition)]
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(records) == 1 and len(conflicts) == 1, outcomes
    assert "moved by someone else" in conflicts[0].detail
    assert StageTransition.objects.filter(initiative_id=initiative.pk).count() == 1
    assert Initiative.objects.get(pk=initiative.pk).stage == Stage.PILOT


@pytest.mark.django_db(transaction=True)
def test_hold_and_cancel_at_once_only_one_applies(gate_port):
    initiative = InitiativeFactory()
    Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.PILOT)
    calls = iter(
        [
            lambda mine: services.initiative_hold(initiative=mine, actor=None, reason="pause"),
            lambda mine: services.initiative_cancel(initiative=mine, actor=None, reason="stop"),
        ]
    )
    pick = threading.Lock()

    def one_of(mine):
        with pick:
            call = next(calls)
        return call(mine)

    outcomes = _race(initiative.pk, one_of)

    assert sum(isinstance(o, StageTransition) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, Conflict) for o in outcomes) == 1, outcomes
    assert StageTransition.objects.filter(initiative_id=initiative.pk).count() == 1
