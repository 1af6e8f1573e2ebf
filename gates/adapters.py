"""The real answer to programs' question "is the gate into this stage approved?" (DESIGN.md §2).

Registered in GatesConfig.ready(). The verdict does not trust the review's state alone: it
re-counts the approvals under the review's own quorum policy, so a review row forced to
"approved" (a shell session, a bad data fix) still opens nothing.

A decision that moves the initiative has just locked and read that review and its approvals;
it says so with ``review_just_decided`` around the move, and the verdict and the stage budget
then take the review, its approvals' statuses and its template from there instead of reading
them again. Only gates' decision service opens that scope, with rows it read under lock in the
same transaction; anything else is answered from the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse

from gatekeeper.compiled import CompiledRead, Param
from gates import selectors
from gates.criteria import run_check
from gates.models import (
    OPEN_REVIEW_STATES,
    Criterion,
    CriterionKind,
    GateReview,
    GateTemplate,
    ReviewState,
)
from gates.quorum import quorum
from programs.models import Milestone, MilestoneStatus
from programs.ports import ChecklistLine, EvidenceLine, GatePanel, GateVerdict, ReviewLine
from programs.stages import GATE_INTO, Stage

if TYPE_CHECKING:
    from programs.models import Initiative


@dataclass(frozen=True)
class _Decided:
    review: GateReview
    # The statuses of all its approvals as the decision left them (voided ones included).
    statuses: tuple[str, ...]


_decided: ContextVar[_Decided | None] = ContextVar("gate_review_just_decided", default=None)


@contextmanager
def review_just_decided(review: GateReview, statuses: Sequence[str]) -> Iterator[None]:
    """For gates' decision service only: ``review`` (locked, saved in this transaction) with the
    statuses of its approvals, read under the review's lock, as the move it makes will ask."""
    token = _decided.set(_Decided(review, tuple(statuses)))
    try:
        yield
    finally:
        _decided.reset(token)


def _just_decided(initiative_id: int, code: str) -> _Decided | None:
    decided = _decided.get()
    if (
        decided is None
        or decided.review.initiative_id != initiative_id
        or decided.review.gate.code != code
    ):
        return None
    return decided


def _open_conditions() -> QuerySet[Milestone, str]:
    initiative = Milestone._meta.get_field("initiative").target_field  # type: ignore[union-attr]
    return Milestone.objects.filter(
        initiative_id=Param("initiative_id", initiative),
        is_gate_condition=True,
        status=MilestoneStatus.OPEN,
    ).values_list("title", flat=True)


# Compiled once per connection (gatekeeper.compiled): every move through a gate asks it.
_OPEN_CONDITIONS = CompiledRead(Milestone, _open_conditions)


class GateReviewPort:
    def verdict(self, initiative: Initiative, target_stage: str) -> GateVerdict:
        code = GATE_INTO.get(target_stage)
        if code is None:
            return GateVerdict(approved=False, unmet=[f"no gate leads into '{target_stage}'"])
        if initiative.pk is None:
            return GateVerdict(approved=False, unmet=[f"gate {code} has no approved review"])
        decided = _just_decided(initiative.pk, code)
        if decided is not None and decided.review.state == ReviewState.APPROVED:
            # At most one review per gate is ever approved (gatereview_one_approved_per_gate).
            approved: GateReview | None = decided.review
            statuses: Sequence[str] = decided.statuses
            reviews = [decided.review]
        else:
            reviews = list(
                GateReview.objects.filter(initiative_id=initiative.pk, gate__code=code)
                .select_related("template")
                .prefetch_related("approvals")
                .order_by("-created_at", "-id")
            )
            approved = next((r for r in reviews if r.state == ReviewState.APPROVED), None)
            statuses = [a.status for a in approved.approvals.all()] if approved else []
        unmet: list[str] = []
        if approved is None:
            latest = reviews[0] if reviews else None
            if latest is None:
                unmet.append(f"gate {code} has no review; open and submit one")
            else:
                unmet.append(
                    f"gate {code} has no approved review (latest, #{latest.pk}, is {latest.state})"
                )
        else:
            result = quorum(approved.template.quorum_policy, approved.template.quorum_n, statuses)
            if not (result.decided and result.approved):
                unmet.append(
                    f"gate {code} review #{approved.pk} is marked approved but its approvals "
                    f"do not meet its policy ({result.reason})"
                )
        open_conditions = _OPEN_CONDITIONS(initiative_id=initiative.pk)
        unmet.extend(f"gate condition '{t}' is still open" for t in open_conditions)
        return GateVerdict(
            approved=not unmet,
            review_id=approved.pk if approved is not None else None,
            unmet=unmet,
        )


def stage_budget(stage: str, gate_review_id: int | None = None) -> dt.timedelta | None:
    """How long an initiative may stay in ``stage``: the expected time of the gate that opened
    it, from the template version its review was decided under (the current version when no
    review opened it, e.g. seeded data), or the configured wait for a proposal's first review."""
    if stage == Stage.PROPOSED:
        return dt.timedelta(days=int(settings.GATEKEEPER["PROPOSED_MAX_DAYS"]))
    code = GATE_INTO.get(stage)
    if code is None:
        return None
    decided = _decided.get()
    if (
        decided is not None
        and gate_review_id is not None
        and decided.review.pk == gate_review_id
        and decided.review.gate.code == code
    ):
        # The move a decision makes: the template its review was decided under is at hand.
        return _days(decided.review.template)
    templates = GateTemplate.objects.filter(gate__code=code)
    template = None
    if gate_review_id is not None:
        template = templates.filter(reviews__pk=gate_review_id).first()
    if template is None:
        template = templates.order_by("-version").first()
    return _days(template)


def _days(template: GateTemplate | None) -> dt.timedelta | None:
    if template is None or template.expected_stage_days is None:
        return None
    return dt.timedelta(days=template.expected_stage_days)


def _review_line(review: GateReview) -> ReviewLine:
    return ReviewLine(
        label=f"{review.gate.code} review #{review.pk}",
        state=review.get_state_display(),
        outcome=review.get_outcome_display() if review.outcome else "",
        opened_at=review.created_at,
        decided_at=review.decided_at,
        summary=review.decision_summary or review.closed_reason,
        url=reverse("admin:gates_gatereview_change", args=[review.pk]),
    )


def _status_without_review(
    criterion: Criterion, initiative: Initiative
) -> selectors.CriterionStatus:
    if criterion.kind != CriterionKind.AUTOMATIC:
        return selectors.CriterionStatus(criterion, False, ["no review open to attach it to"])
    reasons = run_check(criterion.check_name, initiative)
    return selectors.CriterionStatus(criterion, not reasons, reasons)


def gate_panel(initiative: Initiative) -> GatePanel:
    """The initiative page's gate panel: the checklist of the gate out of the current stage (of
    its open or latest review, else of the current template, checked live) and every review."""
    reviews = list(
        GateReview.objects.filter(initiative_id=initiative.pk)
        .select_related("gate", "template", "initiative")
        .order_by("-created_at", "-id")
    )
    gate = selectors.gate_out_of(initiative.held_from or initiative.stage)
    if gate is None:
        return GatePanel("", None, [], [_review_line(r) for r in reviews])
    of_gate = [r for r in reviews if r.gate_id == gate.pk]
    review = next((r for r in of_gate if r.state in OPEN_REVIEW_STATES), None) or next(
        iter(of_gate), None
    )
    if review is not None:
        statuses = selectors.review_checklist(review=review)
    else:
        template = selectors.gate_template_current(gate=gate)
        statuses = [
            _status_without_review(c, initiative)
            for c in selectors.template_criteria(template, initiative.risk_tier)
        ]
    checklist = [
        ChecklistLine(
            text=s.criterion.text,
            required=s.criterion.required,
            met=s.satisfied,
            reasons=s.reasons,
            evidence=[
                EvidenceLine(e.note, e.url, str(e.attached_by), e.attached_at) for e in s.evidence
            ],
        )
        for s in statuses
    ]
    return GatePanel(
        f"{gate.code} {gate.name}",
        _review_line(review) if review is not None else None,
        checklist,
        [_review_line(r) for r in reviews],
    )
