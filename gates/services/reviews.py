"""A gate review from draft to submission: open it, attach evidence, submit, withdraw.

Each write locks the initiative and then the review (``lock_review``), the order every gates
write and programs' lifecycle moves use, so neither side can deadlock the other.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from gatekeeper.compiled import CompiledRead, Param
from gatekeeper.errors import Conflict, TransitionRefused, ValidationFailed
from gatekeeper.types import User
from gates import events
from gates.business_days import add_business_days
from gates.evidence_pack import criterion_entry
from gates.models import (
    OPEN_REVIEW_STATES,
    Approval,
    ApprovalStatus,
    Criterion,
    CriterionKind,
    EventKind,
    Evidence,
    GateReview,
    QuorumPolicy,
    ReviewState,
)
from gates.selectors import (
    gate_out_of,
    gate_template_current,
    resolve_approvers,
    review_checklist,
    unmet_criteria,
)
from gates.services._common import Errors, lock_review, require_actor, require_perm, review_log
from programs.models import Initiative
from programs.stages import Stage


def gate_review_open(*, initiative: Initiative, actor: User | None) -> GateReview:
    """Start a draft review of the gate out of the initiative's stage, on the current template.

    Evidence from the last closed review of the same gate (recycled, withdrawn, held) is carried
    over for criteria that still exist, so rework does not mean re-attaching everything.
    """
    require_perm(actor, "gates.open_review", initiative)
    with transaction.atomic():
        locked = Initiative.objects.select_for_update(of=("self",)).get(pk=initiative.pk)
        gate = gate_out_of(locked.stage)
        if gate is None:
            raise TransitionRefused(
                f"{locked.key} has no gate to review",
                unmet=[f"no gate leads out of stage '{locked.stage}'"],
            )
        template = gate_template_current(gate=gate)
        try:
            with transaction.atomic():
                review = GateReview.objects.create(
                    initiative=locked, gate=gate, template=template, created_by=actor
                )
        except IntegrityError:
            existing = GateReview.objects.filter(
                initiative=locked, gate=gate, state__in=[ReviewState.DRAFT, ReviewState.SUBMITTED]
            ).first()
            raise Conflict(
                f"{locked.key} already has {gate.code} review #{getattr(existing, 'pk', '?')} "
                f"in progress ({getattr(existing, 'state', 'open')})"
            ) from None
        carried = _carry_evidence(review)
        review_log(
            review,
            EventKind.OPENED,
            actor,
            data={"template_version": template.version, "carried_evidence": carried},
        )
    return review


def _carry_evidence(review: GateReview) -> int:
    previous = (
        GateReview.objects.filter(
            initiative_id=review.initiative_id,
            gate_id=review.gate_id,
            state__in=[ReviewState.RECYCLED, ReviewState.WITHDRAWN, ReviewState.REJECTED],
        )
        .exclude(pk=review.pk)
        .order_by("-created_at", "-id")
        .first()
    )
    if previous is None:
        return 0
    targets = {c.code: c for c in review.template.criteria.filter(kind=CriterionKind.EVIDENCE)}
    copies = [
        Evidence(
            review=review,
            criterion=targets[item.criterion.code],
            url=item.url,
            note=item.note,
            attached_by_id=item.attached_by_id,
            attached_at=item.attached_at,
            carried_from=item,
        )
        for item in previous.evidence.select_related("criterion")
        if item.criterion.code in targets
    ]
    Evidence.objects.bulk_create(copies)
    return len(copies)


_url_validator = URLValidator(schemes=["http", "https"])


def evidence_attach(
    *,
    review: GateReview,
    actor: User | None,
    criterion: Criterion | str,
    url: str = "",
    note: str = "",
) -> Evidence:
    """Attach a link or note to an evidence criterion of a draft review (frozen once submitted)."""
    person = require_actor(actor, "attaching evidence")
    url, note = url.strip(), note.strip()
    errors = Errors()
    if not url and not note:
        errors.add("url", "attach a link or a note")
    if url:
        try:
            _url_validator(url)
        except ValidationError:
            errors.add("url", "must be an http(s) URL")
    errors.raise_if_any("The evidence has invalid fields.")
    with transaction.atomic():
        locked = lock_review(review.pk)
        require_perm(person, "gates.attach_evidence", locked)
        if locked.state != ReviewState.DRAFT:
            raise TransitionRefused(
                f"review #{locked.pk} is {locked.state}",
                unmet=[
                    "evidence is frozen once a review is submitted; withdraw it and open a new "
                    "review to change the evidence"
                ],
            )
        code = criterion if isinstance(criterion, str) else criterion.code
        target = locked.template.criteria.filter(code=code).first()
        if target is None:
            raise ValidationFailed(
                f"{locked.gate.code} v{locked.template.version} has no criterion {code!r}.",
                errors={"criterion": ["not in this review's template"]},
            )
        if target.kind != CriterionKind.EVIDENCE:
            raise ValidationFailed(
                f"'{target.text}' is computed from data; it takes no evidence.",
                errors={"criterion": ["automatic criteria take no evidence"]},
            )
        item = Evidence.objects.create(
            review=locked,
            criterion=target,
            url=url,
            note=note,
            attached_by=person,
            attached_at=timezone.now(),
        )
        review_log(
            locked,
            EventKind.EVIDENCE_ATTACHED,
            person,
            data={"criterion": target.code, "evidence_id": item.pk, "url": url, "note": note},
        )
    return item


def gate_review_submit(*, review: GateReview, actor: User | None) -> GateReview:
    """Submit for decision: every required criterion must hold and every approver be resolvable.

    Refusals list all unmet criteria and approver problems at once.
    """
    person = require_actor(actor, "submitting a review")
    with transaction.atomic():
        # Locks the initiative too: approvers are resolved from its owner and risk tier, which
        # a concurrent initiative update must not change between our read and our commit.
        locked = lock_review(review.pk)
        require_perm(person, "gates.submit_review", locked)
        if locked.state != ReviewState.DRAFT:
            raise Conflict(f"review #{locked.pk} is already {locked.state}")
        initiative = locked.initiative
        template = locked.template
        unmet: list[str] = []
        if initiative.stage != locked.gate.from_stage:
            unmet.append(
                f"{initiative.key} is in stage '{initiative.stage}'; {locked.gate.code} is the "
                f"gate out of '{locked.gate.from_stage}'"
            )
        checklist = review_checklist(review=locked)
        unmet.extend(unmet_criteria(checklist))
        resolved = resolve_approvers(
            initiative=initiative,
            template=template,
            risk_tier=initiative.risk_tier,
            submitter=person,
        )
        unmet.extend(resolved.unmet)
        if (
            template.quorum_policy == QuorumPolicy.N_OF_M
            and template.quorum_n is not None
            and template.quorum_n > len(resolved.slots)
            and not resolved.unmet
        ):
            unmet.append(
                f"quorum needs {template.quorum_n} approvals but only {len(resolved.slots)} "
                f"approvers apply at risk tier {initiative.risk_tier}"
            )
        if unmet:
            raise TransitionRefused(
                f"{locked.gate.code} review #{locked.pk} of {initiative.key} cannot be submitted",
                unmet=unmet,
            )

        now = timezone.now()
        locked.submit(risk_tier=initiative.risk_tier, at=now, by=person)
        locked.save()
        due_at = add_business_days(now, template.decision_sla_business_days)
        lead = settings.GATEKEEPER["APPROVAL_REMINDER_BUSINESS_DAYS"]
        remind_at = max(now, add_business_days(due_at, -lead)) if lead else due_at
        approvals = Approval.objects.bulk_create(
            Approval(review=locked, role=role, approver=user, due_at=due_at, remind_at=remind_at)
            for role, user in resolved.slots
        )
        review_log(
            locked,
            EventKind.SUBMITTED,
            person,
            data={
                "criteria": [criterion_entry(s) for s in checklist],
                "approvers": [
                    {"approval_id": a.pk, "role": a.role, "user_id": a.approver_id}
                    for a in approvals
                ],
                "due_at": due_at.isoformat(),
            },
        )
        events.review_submitted(
            review=locked, submitter=person, approvals=approvals, due_at=due_at
        ).emit()
    review.refresh_from_db()
    return locked


def gate_review_withdraw(*, review: GateReview, actor: User | None, reason: str) -> GateReview:
    """Pull a draft or submitted review; pending approvals are voided and approvers told."""
    person = require_actor(actor, "withdrawing a review")
    if not reason.strip():
        raise ValidationFailed(
            "A reason is required to withdraw a review.", errors={"reason": ["required"]}
        )
    with transaction.atomic():
        locked = lock_review(review.pk)
        require_perm(person, "gates.withdraw_review", locked)
        if not locked.is_open:
            raise Conflict(f"review #{locked.pk} is already {locked.state}")
        _withdraw_locked(locked, actor=person, reason=reason.strip())
    review.refresh_from_db()
    return locked


def _withdraw_locked(locked: GateReview, *, actor: User | None, reason: str) -> None:
    """Withdraw an open review already locked by the caller (a person, or the system: None)."""
    was_submitted = locked.state == ReviewState.SUBMITTED
    locked.withdraw(reason=reason)
    locked.save()
    pending = list(
        locked.approvals.filter(status=ApprovalStatus.PENDING).select_related("approver")
    )
    Approval.objects.filter(pk__in=[a.pk for a in pending]).update(status=ApprovalStatus.VOID)
    review_log(locked, EventKind.WITHDRAWN, actor, data={"reason": reason})
    if was_submitted:
        events.review_withdrawn(review=locked, actor=actor, reason=reason, voided=pending).emit()


# Why the system withdraws a review when its initiative moves to these stages.
_WITHDRAW_ON_STAGE: dict[str, str] = {
    Stage.ON_HOLD: "initiative put on hold",
    Stage.CANCELLED: "initiative cancelled",
}


def _open_review_ids() -> QuerySet[GateReview, int]:
    initiative = GateReview._meta.get_field("initiative").target_field  # type: ignore[union-attr]
    return (
        GateReview.objects.filter(
            initiative_id=Param("initiative_id", initiative), state__in=OPEN_REVIEW_STATES
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )


# Compiled once per connection (gatekeeper.compiled): every hold and cancel asks it.
_OPEN_REVIEW_IDS = CompiledRead(GateReview, _open_review_ids)


def reviews_withdraw_on_stage_change(
    initiative: Initiative, from_stage: str, to_stage: str
) -> None:
    """programs' stage listener (registered in GatesConfig.ready): a held or cancelled initiative's
    open reviews can never be decided (a decision needs the gate's from-stage), so withdraw them
    rather than leave approvers reminded and escalated about them.

    Runs inside the lifecycle move's transaction, with the initiative already locked by programs;
    ``lock_review`` locks it again (a no-op) and then each review, the order every gates write
    uses. A Hold or Kill decision's own review is decided before the move, so it is not open here.
    """
    reason = _WITHDRAW_ON_STAGE.get(to_stage)
    if reason is None:
        return
    open_ids = _OPEN_REVIEW_IDS(initiative_id=initiative.pk)
    for review_id in open_ids:
        locked = lock_review(review_id)
        if locked.is_open:
            _withdraw_locked(locked, actor=None, reason=reason)
