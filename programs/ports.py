"""The question programs asks and gates answers: "is the gate into this stage approved?"

programs may not import gates (DESIGN.md §2), so it declares this port and gates registers its
implementation in ``GatesConfig.ready()``. With nothing registered the answer is "no", so a
deployment that forgot the gates app can never move an initiative forward.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from programs.models import Initiative


@dataclass(frozen=True)
class GateVerdict:
    approved: bool
    review_id: int | None = None
    unmet: list[str] = field(default_factory=list)


class GateApprovalPort(Protocol):
    def verdict(self, initiative: Initiative, target_stage: str) -> GateVerdict: ...


class _Unregistered:
    def verdict(self, initiative: Initiative, target_stage: str) -> GateVerdict:
        return GateVerdict(
            approved=False,
            unmet=[f"no gate review can approve the move to {target_stage}: gates not installed"],
        )


_port: GateApprovalPort = _Unregistered()


def register_gate_port(port: GateApprovalPort | None) -> None:
    global _port
    _port = port if port is not None else _Unregistered()


def gate_verdict(initiative: Initiative, target_stage: str) -> GateVerdict:
    return _port.verdict(initiative, target_stage)


# --- how long a stage may last -----------------------------------------------------------------
# The gate that opens a stage says how long the initiative may stay in it (stall detection);
# gates registers the lookup. Unregistered (programs alone), stages have no budget.
# Called with the stage entered and the gate review that opened it (None for moves no review
# made, such as a proposal's creation).
StageBudget = Callable[[str, "int | None"], "dt.timedelta | None"]


def _no_budget(stage: str, gate_review_id: int | None) -> dt.timedelta | None:
    return None


_stage_budget: StageBudget = _no_budget


def register_stage_budget(budget: StageBudget | None) -> None:
    global _stage_budget
    _stage_budget = budget if budget is not None else _no_budget


def stage_budget(stage: str, gate_review_id: int | None = None) -> dt.timedelta | None:
    return _stage_budget(stage, gate_review_id)


# --- reacting to lifecycle moves -----------------------------------------------------------------
# Apps above programs that must react to a stage change in the same transaction (gates withdraws
# reviews that can no longer be decided when an initiative is held or cancelled) register a
# listener; programs calls each with the locked initiative after the move is saved.
StageListener = Callable[["Initiative", str, str], None]
_stage_listeners: list[StageListener] = []


def register_stage_listener(listener: StageListener) -> None:
    if listener not in _stage_listeners:
        _stage_listeners.append(listener)


def notify_stage_change(initiative: Initiative, from_stage: str, to_stage: str) -> None:
    for listener in list(_stage_listeners):
        listener(initiative, from_stage, to_stage)


# --- the next gate, shown on the initiative page -------------------------------------------------
# The initiative page shows the checklist of the gate out of the current stage and the initiative's
# gate reviews; gates knows both, so it registers a source. Unregistered, the page shows none.
@dataclass(frozen=True)
class EvidenceLine:
    text: str
    url: str
    by: str
    at: dt.datetime


@dataclass(frozen=True)
class ChecklistLine:
    text: str
    required: bool
    met: bool
    reasons: list[str] = field(default_factory=list)
    evidence: list[EvidenceLine] = field(default_factory=list)


@dataclass(frozen=True)
class ReviewLine:
    label: str  # "G2 review #7"
    state: str
    outcome: str
    opened_at: dt.datetime
    decided_at: dt.datetime | None
    summary: str
    url: str


@dataclass(frozen=True)
class GatePanel:
    gate: str  # "G2 Pilot to integration"; blank when no gate leads out of the stage
    review: ReviewLine | None  # the review the checklist is of; None: no review opened yet
    checklist: list[ChecklistLine]
    reviews: list[ReviewLine]  # every review of the initiative, newest first


GatePanelSource = Callable[["Initiative"], "GatePanel | None"]
_gate_panel: GatePanelSource = lambda initiative: None  # noqa: E731


def register_gate_panel(source: GatePanelSource | None) -> None:
    global _gate_panel
    _gate_panel = source if source is not None else (lambda initiative: None)


def gate_panel(initiative: Initiative) -> GatePanel | None:
    return _gate_panel(initiative)
