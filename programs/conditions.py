"""Conditions on lifecycle transitions, each able to say why it is unmet.

django-fsm-2 only needs a boolean; the services also need the reasons so that a refusal lists
every unmet condition at once (issue: "refusals are explicit").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from programs.ports import gate_verdict
from programs.stages import NEXT_STAGE

if TYPE_CHECKING:
    from programs.models import Initiative


class Condition:
    def __init__(self, explain: Callable[[Initiative], list[str]]) -> None:
        self.explain = explain
        self.__name__ = explain.__name__

    def __call__(self, initiative: Any) -> bool:
        return not self.explain(initiative)


@Condition
def has_business_owner(initiative: Initiative) -> list[str]:
    if initiative.business_owner_id is None:
        return ["a business owner must be assigned"]
    return []


@Condition
def has_metric_with_baseline_and_target(initiative: Initiative) -> list[str]:
    if (
        initiative.pk is None
        or not initiative.metrics.filter(baseline__isnull=False, target__isnull=False).exists()
    ):
        return ["at least one success metric needs both a baseline and a target"]
    return []


@Condition
def gate_approved(initiative: Initiative) -> list[str]:
    target = NEXT_STAGE.get(initiative.stage)
    if target is None:
        return [f"no gate leads out of {initiative.stage}"]
    verdict = gate_verdict(initiative, target)
    if verdict.approved:
        return []
    return verdict.unmet or [f"the gate into {target} is not approved"]


@Condition
def knows_stage_to_resume(initiative: Initiative) -> list[str]:
    if not initiative.held_from:
        return ["the stage it was held from is unknown"]
    return []
