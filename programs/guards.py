"""Guards on lifecycle transitions (django-fsm-2's ``conditions=``), each able to say why.

Named guards, not conditions: in this project a "condition" is a Conditional-Go obligation (a
milestone). django-fsm-2 only needs a boolean; the services also need the reasons so that a
refusal lists every unmet guard at once (issue: "refusals are explicit").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from programs.ports import GateVerdict, gate_verdict
from programs.stages import NEXT_STAGE

if TYPE_CHECKING:
    from programs.models import Initiative


class Guard:
    def __init__(self, explain: Callable[[Initiative], list[str]]) -> None:
        self._explain = explain
        self.__name__ = explain.__name__

    def explain(self, initiative: Initiative) -> list[str]:
        """Every reason the guard fails (empty: it passes); asked once per move (see
        ``checks_for_move``)."""
        move = _move.get()
        if move is None or not move.covers(initiative):
            return self._explain(initiative)
        if self not in move.answers:
            move.answers[self] = self._explain(initiative)
        return list(move.answers[self])

    def __call__(self, initiative: Any) -> bool:
        return not self.explain(initiative)


@dataclass
class _Move:
    initiative: Initiative
    stage: str
    verdict: GateVerdict | None
    answers: dict[Guard, list[str]] = field(default_factory=dict)

    def covers(self, initiative: Initiative) -> bool:
        return initiative is self.initiative and initiative.stage == self.stage


# The move under way. A move evaluates its guards twice (for the refusal's reasons, then
# django-fsm's own check when the transition method runs) and needs the gate verdict's review
# for its record: the lifecycle runner asks the gate port once, on the locked row, and each guard
# answers once, both evaluations reading those answers. Only ``checks_for_move`` sets it, and the
# verdict only from the port: no caller can hand one in.
_move: ContextVar[_Move | None] = ContextVar("lifecycle_move", default=None)


@contextmanager
def checks_for_move(initiative: Initiative, target: str | None) -> Iterator[GateVerdict | None]:
    """Within the block, the guards on ``initiative`` (the locked row, in its current stage) are
    each evaluated once; yields the gate's verdict on moving it to ``target``, asked of the port
    once (None, and no question, for a move that passes no gate)."""
    verdict = None
    if target is not None and initiative.pk is not None:
        verdict = gate_verdict(initiative, target)
    token = _move.set(_Move(initiative, initiative.stage, verdict))
    try:
        yield verdict
    finally:
        _move.reset(token)


@Guard
def has_business_owner(initiative: Initiative) -> list[str]:
    if initiative.business_owner_id is None:
        return ["a business owner must be assigned"]
    return []


@Guard
def has_metric_with_baseline_and_target(initiative: Initiative) -> list[str]:
    # Imported here: selectors import the models, and the models import this module.
    from programs.selectors import metrics_missing_baseline_or_target

    return metrics_missing_baseline_or_target(initiative)


def _verdict(initiative: Initiative, target: str) -> GateVerdict:
    move = _move.get()
    if move is not None and move.verdict is not None and move.covers(initiative):
        return move.verdict
    return gate_verdict(initiative, target)


@Guard
def gate_approved(initiative: Initiative) -> list[str]:
    target = NEXT_STAGE.get(initiative.stage)
    if target is None:
        return [f"no gate leads out of {initiative.stage}"]
    verdict = _verdict(initiative, target)
    if verdict.approved:
        return []
    return verdict.unmet or [f"the gate into {target} is not approved"]


@Guard
def knows_stage_to_resume(initiative: Initiative) -> list[str]:
    if not initiative.held_from:
        return ["the stage it was held from is unknown"]
    return []
