"""Deciding a review: each approver's decision, and the gate's decision once quorum is reached.

A decided review moves the initiative through programs' services in the same transaction; if
the initiative cannot move, the decision is refused whole. The transition record names no actor
(the gate decided, not a person) and points at the review through ``gate_review_id``; the
review's event log names each approver. This also keeps approvers from needing the business
owner's "change stage" permission.

One decision reads each row once: the locked initiative (``lock_review``) is the instance the
move updates, the review's approvals are read once under its lock and serve the separation of
duties, the quorum and the voiding, the gate's verdict and stage budget come from the review just
decided (``gates.adapters.review_just_decided``), and the events' deliveries are written together
(``notifications.outbox.batch``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypedDict

from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import DateField, Exists, ForeignKey, OuterRef, QuerySet
from django.utils import timezone
from django_stubs_ext import WithAnnotations

from gatekeeper.compiled import CompiledRead, Param
from gatekeeper.db import save_transitioned, update_row
from gatekeeper.errors import Conflict, PermissionDenied, TransitionRefused
from gatekeeper.types import User
from gates import events
from gates.adapters import review_just_decided
from gates.models import (
    REJECT_OUTCOMES,
    Approval,
    ApprovalStatus,
    Decision,
    EventKind,
    GateCondition,
    GateReview,
    Outcome,
    ReviewEvent,
    ReviewState,
)
from gates.quorum import QuorumResult, quorum
from gates.selectors import delegations_in_force
from gates.services._common import (
    Errors,
    lock_review,
    require_actor,
    review_entry,
    review_log_all,
)
from notifications import outbox
from programs import services as programs
from programs.roles import INTEGRATIONS


@dataclass(frozen=True)
class ConditionSpec:
    """A condition on a Go: becomes a gate-condition milestone when the gate opens."""

    title: str
    owner: User
    due_at: dt.datetime


def _validate_decision(
    decision: str, comment: str, outcome: str | None, conditions: Sequence[ConditionSpec]
) -> str:
    errors = Errors()
    chosen = outcome or ""
    if decision == Decision.REJECT:
        chosen = outcome or Outcome.RECYCLE
        if chosen not in REJECT_OUTCOMES:
            errors.add("outcome", f"a rejection's outcome is one of {', '.join(REJECT_OUTCOMES)}")
        if not comment:
            errors.add("comment", "say why: a rejection needs a comment")
        if conditions:
            errors.add("conditions", "conditions go with an approval (Conditional Go)")
    elif decision == Decision.APPROVE:
        if chosen not in ("", Outcome.GO, Outcome.CONDITIONAL_GO):
            errors.add("outcome", "an approval's outcome is Go or Conditional Go")
        if chosen == Outcome.CONDITIONAL_GO and not conditions:
            errors.add("conditions", "a Conditional Go needs at least one condition")
        if chosen == Outcome.GO and conditions:
            errors.add("conditions", "a plain Go takes no conditions")
        now = timezone.now()
        for i, c in enumerate(conditions):
            key = f"conditions[{i}]"
            if not c.title.strip():
                errors.add(key, "title is required")
            if c.owner is None:
                errors.add(key, "owner is required")
            if timezone.is_naive(c.due_at):
                errors.add(key, "due date must include a time zone")
            elif c.due_at <= now:
                errors.add(key, "due date must be in the future")
        chosen = Outcome.CONDITIONAL_GO if conditions else Outcome.GO
    else:
        errors.add("decision", f"one of {', '.join(Decision.values)}")
    errors.raise_if_any("The decision has invalid fields.")
    return chosen


def _check_may_decide(
    review: GateReview,
    approval: Approval,
    actor: User,
    others: Sequence[Approval],
    *,
    service_account: bool,
    deputy_today: bool,
) -> None:
    """Separation of duties, each refusal with its reason. ``others``: the review's other
    approvals; ``service_account``: the actor is in the integrations group; ``deputy_today``: a
    delegation in force today lets the actor act for the approval's approver."""
    if service_account:
        raise PermissionDenied(f"{actor} is a service account; service accounts never approve")
    if actor.pk == review.submitted_by_id:
        raise PermissionDenied(f"{actor} submitted review #{review.pk} and cannot decide it")
    if approval.approver_id != actor.pk and not deputy_today:
        raise PermissionDenied(
            f"{actor} is neither the {approval.get_role_display()} approver of review "
            f"#{review.pk} nor their deputy today"
        )
    if approval.approver_id == review.submitted_by_id:
        raise PermissionDenied("the submitter's approval cannot be decided by their deputy")
    earlier = next((a for a in others if a.decided_by_id == actor.pk), None)
    if earlier is not None:
        raise PermissionDenied(
            f"{actor} already decided the {earlier.get_role_display()} approval of review "
            f"#{review.pk}; nobody decides twice on one review"
        )


class _Asked(TypedDict):
    has_conditions: bool
    deputy_today: bool
    service_account: bool


def _review_approvals() -> QuerySet[WithAnnotations[Approval, _Asked]]:
    # The review's approvals, all locked, with what separation of duties asks about the caller:
    # whether a delegation in force today lets them act for each approver, and whether they are
    # a service account.
    # of=self: locking the approver's user row too would deadlock two decisions that
    # notify each other's approvers (a delivery's foreign key waits on that row).
    person = Param("person_id", Approval._meta.get_field("approver").target_field)  # type: ignore[union-attr]
    return (
        Approval.objects.select_for_update(of=("self",))
        .filter(review_id=Param("review_id", Approval._meta.get_field("review").target_field))  # type: ignore[union-attr]
        .select_related("approver")
        .annotate(
            has_conditions=Exists(GateCondition.objects.filter(approval=OuterRef("pk"))),
            deputy_today=Exists(
                delegations_in_force(Param("today", DateField())).filter(  # type: ignore[arg-type]
                    deputy_id=person, principal_id=OuterRef("approver_id")
                )
            ),
            service_account=Exists(Group.objects.filter(name=INTEGRATIONS, user__pk=person)),
        )
        .order_by("pk")
    )


# Compiled once per connection (gatekeeper.compiled): the ORM spent more CPU building this
# statement than PostgreSQL spends running it.
_REVIEW_APPROVALS = CompiledRead(Approval, _review_approvals)


def approval_decide(
    *,
    approval: Approval,
    actor: User | None,
    decision: str,
    comment: str = "",
    outcome: str | None = None,
    conditions: Sequence[ConditionSpec] = (),
) -> Approval:
    """Approve or reject one approval; when quorum is reached, decide the review and move the
    initiative in the same transaction.

    Rejecting decides at once (one rejection rejects); the rejecting approver picks Recycle
    (default: rework and a new review), Hold or Kill. Approving with conditions makes the
    eventual Go a Conditional Go.
    """
    person = require_actor(actor, "deciding an approval")
    comment = comment.strip()
    chosen = _validate_decision(decision, comment, outcome, conditions)
    with transaction.atomic(), outbox.batch():
        # Initiative, then review: concurrent decisions on one review queue here and count
        # quorum once, and a concurrent hold/cancel (which locks the initiative first) cannot
        # deadlock with the move this decision may make.
        review = lock_review(approval.review_id)
        # The review's approvals in one statement, all locked: this one is decided, the others
        # are what the quorum counts and what a decided review voids. Every decision on the
        # review takes the review's lock first, so they queue there, not here.
        approvals = _REVIEW_APPROVALS(
            review_id=review.pk, person_id=person.pk, today=timezone.localdate()
        )
        locked = next((a for a in approvals if a.pk == approval.pk), None)
        if locked is None:
            raise Approval.DoesNotExist(f"no approval #{approval.pk} on review #{review.pk}")
        locked.review = review  # the locked row, with its initiative and gate: callers show them
        if locked.status != ApprovalStatus.PENDING:
            raise Conflict(
                f"the {locked.get_role_display()} approval of review #{review.pk} is already "
                f"{locked.status}"
            )
        if review.state != ReviewState.SUBMITTED:
            raise Conflict(f"review #{review.pk} is {review.state}; it takes no more decisions")
        others = [a for a in approvals if a is not locked]
        _check_may_decide(
            review,
            locked,
            person,
            others,
            service_account=locked.service_account,
            deputy_today=locked.deputy_today,
        )

        now = timezone.now()
        locked.status = (
            ApprovalStatus.APPROVED if decision == Decision.APPROVE else ApprovalStatus.REJECTED
        )
        locked.comment = comment
        locked.outcome = chosen if decision == Decision.REJECT else ""
        locked.decided_by = person
        locked.decided_at = now
        update_row(locked, ["status", "comment", "outcome", "decided_by", "decided_at"])
        for spec in conditions:
            GateCondition.objects.create(
                review=review,
                approval=locked,
                title=spec.title.strip(),
                owner=spec.owner,
                due_at=spec.due_at,
            )
        deputy_for = locked.approver if locked.approver_id != person.pk else None
        # Logged now, written with the review's own decision if this one decides it (one
        # statement for both; the log's guard checks at commit).
        logged = review_entry(
            review,
            EventKind.APPROVAL_DECIDED,
            person,
            approval=locked,
            on_behalf_of=deputy_for,
            data={
                "role": locked.role,
                "decision": decision,
                "outcome": locked.outcome,
                "comment": comment,
                "conditions": [
                    {"title": c.title, "owner_id": c.owner.pk, "due_at": c.due_at.isoformat()}
                    for c in conditions
                ],
            },
        )
        events.approval_decided(
            review=review, approval=locked, decided_by=person, deputy_for=deputy_for
        ).emit()
        statuses = [a.status for a in (locked, *others)]
        result = quorum(review.template.quorum_policy, review.template.quorum_n, statuses)
        if result.decided:
            _decide_review(
                review=review,
                result=result,
                decisive=locked,
                others=others,
                conditioned=bool(conditions) or any(a.has_conditions for a in others),
                now=now,
                logged=logged,
            )
        else:
            review_log_all([logged])
    _reload_from(approval, locked)
    return locked


def _reload_from(target: Approval, source: Approval) -> None:
    """``target.refresh_from_db()`` without the round trip: ``source`` is the same row as this
    (committed) decision locked and saved, so it holds what the database would return."""
    if target is source:
        return
    for f in Approval._meta.concrete_fields:
        setattr(target, f.attname, getattr(source, f.attname))
        if isinstance(f, ForeignKey) and f.is_cached(target):
            f.delete_cached_value(target)
    for rel in Approval._meta.related_objects:
        if rel.is_cached(target):
            rel.delete_cached_value(target)
    target._state.db = source._state.db


@dataclass(frozen=True)
class _Move:
    """What a gate outcome does to the initiative."""

    service: Callable[..., object]  # the programs service that moves it
    conditions_become_milestones: bool


# Recycle leaves the initiative where it is: rework, then a new review.
_MOVES: dict[str, _Move | None] = {
    Outcome.GO: _Move(programs.initiative_advance, conditions_become_milestones=True),
    Outcome.CONDITIONAL_GO: _Move(programs.initiative_advance, conditions_become_milestones=True),
    Outcome.HOLD: _Move(programs.initiative_hold, conditions_become_milestones=False),
    Outcome.KILL: _Move(programs.initiative_cancel, conditions_become_milestones=False),
    Outcome.RECYCLE: None,
}


def _decide_review(
    *,
    review: GateReview,
    result: QuorumResult,
    decisive: Approval,
    others: Sequence[Approval],
    conditioned: bool,
    now: dt.datetime,
    logged: ReviewEvent,
) -> None:
    """``others``: the review's approvals but ``decisive``, read under its lock; ``conditioned``:
    whether any approval of the review came with conditions; ``logged``: the decisive
    approval's log entry, not yet written (it goes in with the review's)."""
    initiative = review.initiative
    gate = review.gate
    if initiative.stage != gate.from_stage:
        raise TransitionRefused(
            f"{gate.code} review #{review.pk} cannot be decided while {initiative.key} is "
            f"'{initiative.stage}'",
            unmet=[
                f"the initiative must be in stage '{gate.from_stage}' for its {gate.code} "
                "decision; resume it first, or withdraw the review"
            ],
        )
    pending = [a for a in others if a.status == ApprovalStatus.PENDING]
    if pending:
        Approval.objects.filter(pk__in=[a.pk for a in pending]).update(status=ApprovalStatus.VOID)
    for approval in pending:
        approval.status = ApprovalStatus.VOID
    conditions = list(review.conditions.select_related("owner")) if conditioned else []

    outcome: str
    if result.approved:
        outcome = Outcome.CONDITIONAL_GO if conditions else Outcome.GO
        summary = f"{Outcome(outcome).label}: {result.reason}"
        review.approve(outcome=outcome, at=now, summary=summary)
    else:
        outcome = decisive.outcome or Outcome.RECYCLE
        summary = (
            f"{Outcome(outcome).label}: rejected by the {decisive.get_role_display()} approver"
            f" — {decisive.comment}"
        )
        if outcome == Outcome.RECYCLE:
            review.recycle(at=now, summary=summary)
        else:
            review.reject(outcome=outcome, at=now, summary=summary)
    save_transitioned(review)

    move = _MOVES[outcome]
    if move is not None:
        statuses = [a.status for a in (decisive, *others)]
        with review_just_decided(review, statuses):
            move.service(
                initiative=initiative,  # locked by lock_review, in this transaction
                actor=None,
                reason=f"{gate.code} review #{review.pk}: {summary}",
                expected_stage=gate.from_stage,
                gate_review_id=review.pk,
                locked=True,
            )
        if move.conditions_become_milestones:
            # After the move, so the milestones belong to the stage just opened and hold its
            # exit gate.
            for condition in conditions:
                condition.milestone = programs.milestone_add(
                    initiative=initiative,
                    actor=None,
                    title=condition.title,
                    owner=condition.owner,
                    due_at=condition.due_at,
                    is_gate_condition=True,
                )
                condition.save(update_fields=["milestone"])

    decided = review_entry(
        review,
        EventKind.REVIEW_DECIDED,
        None,
        approval=decisive,
        data={
            "outcome": outcome,
            "summary": summary,
            "voided_approval_ids": [a.pk for a in pending],
            "condition_milestone_ids": [c.milestone_id for c in conditions if c.milestone_id],
            "initiative_stage": initiative.stage,
        },
    )
    review_log_all([logged, decided])
    events.review_decided(
        review=review,
        outcome=outcome,
        summary=summary,
        conditions=conditions,
        approvals=[decisive, *others],
    ).emit()
