"""Guards on lifecycle transitions (django-fsm-2's ``conditions=``), each able to say why.

Named guards, not conditions: in this project a "condition" is a Conditional-Go obligation (a
milestone). django-fsm-2 only needs a boolean; the services also need the reasons so that a
refusal lists every unmet guard at once (issue: "refusals are explicit").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from programs.ports import gate_verdict
from programs.stages import NEXT_STAGE

if TYPE_CHECKING:
    from programs.models import Initiative


class Guard:
    def __init__(self, explain: Callable[[Initiative], list[str]]) -> None:
        self.explain = explain
        self.__name__ = explain.__name__

    def __call__(self, initiative: Any) -> bool:
        return not self.explain(initiative)


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


@Guard
def gate_approved(initiative: Initiative) -> list[str]:
    target = NEXT_STAGE.get(initiative.stage)
    if target is None:
        return [f"no gate leads out of {initiative.stage}"]
    verdict = gate_verdict(initiative, target)
    if verdict.approved:
        return []
    return verdict.unmet or [f"the gate into {target} is not approved"]


@Guard
def knows_stage_to_resume(initiative: Initiative) -> list[str]:
    if not initiative.held_from:
        return ["the stage it was held from is unknown"]
    return []
