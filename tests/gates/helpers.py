"""Steps the gate tests share: they go through the services, as a user would."""

from __future__ import annotations

from typing import Any

from gates import selectors, services
from gates.models import Approval, ApprovalStatus, CriterionKind, GateReview
from programs import services as programs
from programs.models import Initiative
from programs.stages import Stage


def attach_all_evidence(review: GateReview, actor: Any) -> None:
    for status in selectors.review_checklist(review=review):
        criterion = status.criterion
        if criterion.kind == CriterionKind.EVIDENCE and not status.evidence:
            services.evidence_attach(
                review=review,
                actor=actor,
                criterion=criterion,
                url=f"https://wiki.example.com/{review.initiative.key}/{criterion.code}",
            )


def measure_pilot(initiative: Initiative) -> None:
    for metric in initiative.metrics.all():
        programs.metric_record_value(metric=metric, actor=None, value="55")


def submitted_review(initiative: Initiative, submitter: Any) -> GateReview:
    """Open the gate out of the current stage, satisfy it, submit."""
    initiative.refresh_from_db()
    if initiative.stage == Stage.PILOT:
        measure_pilot(initiative)
    review = services.gate_review_open(initiative=initiative, actor=submitter)
    attach_all_evidence(review, submitter)
    return services.gate_review_submit(review=review, actor=submitter)


def pending(review: GateReview) -> list[Approval]:
    return list(review.approvals.filter(status=ApprovalStatus.PENDING).order_by("id"))


def approve_all(review: GateReview, panel: Any) -> GateReview:
    initiative = review.initiative
    for approval in pending(review):
        services.approval_decide(
            approval=approval,
            actor=panel.for_role(approval.role, initiative),
            decision="approve",
            comment="looks good",
        )
    review.refresh_from_db()
    return review


def pass_gate(initiative: Initiative, panel: Any) -> GateReview:
    review = submitted_review(initiative, initiative.delivery_lead)
    approve_all(review, panel)
    initiative.refresh_from_db()
    return review
