"""Every write to gates (CONVENTIONS.md §1-3).

Each use case is one transaction: the initiative row and then the review row are locked first
(``_lock_review``: the same order as programs' lifecycle moves, so neither side can deadlock the
other; decisions on one review run one at a time and quorum is counted once), the pure transition
is called, the append-only review
event and the outbox events are written, and a decided review moves the initiative through the
programs services before commit. If the initiative cannot move, the decision is refused whole.

Who moves the initiative: the transition record names no actor (the gate decided, not a person)
and points at the review through ``gate_review_id``; the review's event log names each approver.
This also keeps approvers from needing the business owner's "change stage" permission.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.text import slugify

from gatekeeper.errors import Conflict, PermissionDenied, TransitionRefused, ValidationFailed
from gates.business_days import add_business_days
from gates.checks import CHECKS
from gates.models import (
    ASSIGNABLE_ROLES,
    OPEN_REVIEW_STATES,
    REJECT_OUTCOMES,
    Approval,
    ApprovalStatus,
    ApproverRule,
    Criterion,
    CriterionKind,
    Decision,
    Delegation,
    EventKind,
    Evidence,
    Gate,
    GateApprover,
    GateCondition,
    GateReview,
    GateRole,
    GateTemplate,
    Outcome,
    QuorumPolicy,
    ReviewEvent,
    ReviewState,
)
from gates.policy import QuorumResult, quorum
from gates.selectors import (
    gate_out_of,
    gate_template_current,
    principals_of,
    resolve_approvers,
    review_checklist,
)
from notifications.outbox import emit
from programs import services as programs
from programs.events import initiative_summary
from programs.models import BusinessUnit, Initiative, RiskTier
from programs.roles import APPROVERS, INTEGRATIONS, PMO
from programs.stages import Stage

User = Any  # a django.contrib.auth user


@dataclass(frozen=True)
class CriterionSpec:
    code: str
    text: str
    kind: str
    check_name: str = ""
    required: bool = True
    risk_tiers: Sequence[str] = ()


@dataclass(frozen=True)
class ApproverSpec:
    role: str
    risk_tiers: Sequence[str] = ()


@dataclass(frozen=True)
class ConditionSpec:
    """A condition on a Go: becomes a gate-condition milestone when the gate opens."""

    title: str
    owner: User
    due_at: dt.datetime


@dataclass
class _Errors:
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key: str, message: str) -> None:
        self.errors.setdefault(key, []).append(message)

    def raise_if_any(self, detail: str) -> None:
        if self.errors:
            raise ValidationFailed(detail, errors=self.errors)


# --- helpers ------------------------------------------------------------------------------


def _require_actor(actor: User | None, what: str) -> User:
    if actor is None or not getattr(actor, "is_authenticated", False):
        raise PermissionDenied(f"{what} needs a signed-in person")
    return actor


def _require_perm(actor: User | None, perm: str, obj: Any) -> None:
    if actor is None:
        return  # the system itself (a migration, a sweep)
    if not actor.has_perm(perm, obj):
        raise PermissionDenied(f"{actor} may not do this ({perm}) on {obj}")


def _groups(user: User) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def _admin_path(name: str, *args: Any) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:  # admin not mounted (e.g. an API-only deployment)
        return ""


def _lock_review(review_id: int) -> GateReview:
    """Lock the review's initiative, then the review.

    One lock order for every write that touches both rows: programs' lifecycle moves lock the
    initiative first and then (through the stage listener) withdraw its open reviews, so a gates
    write that took the review first and the initiative second (a deciding approval moving the
    initiative) could deadlock against a hold or cancel. Locking the initiative here also keeps
    its owner and risk tier still while a submit resolves approvers from them. Locking it again
    later in the same transaction (programs' own services do) is a no-op for PostgreSQL.
    """
    # A review never changes initiative, so reading the id unlocked is safe.
    initiative_id = GateReview.objects.values_list("initiative_id", flat=True).get(pk=review_id)
    list(
        Initiative.objects.select_for_update(of=("self",))
        .filter(pk=initiative_id)
        .values_list("pk", flat=True)
    )
    return (
        GateReview.objects.select_for_update(of=("self",))
        .select_related(
            "initiative",
            "initiative__business_unit",
            "gate",
            "template",
        )
        .get(pk=review_id)
    )


def _person(user: User | None, role: str) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"user_id": user.pk, "email": user.email, "role": role}


def _review_summary(review: GateReview) -> dict[str, Any]:
    return {
        "id": review.pk,
        "gate": review.gate.code,
        "template_version": review.template.version,
        "state": review.state,
        "outcome": review.outcome,
        "admin_url": _admin_path("admin:gates_gatereview_change", review.pk),
    }


def _stakeholders(review: GateReview) -> list[dict[str, Any]]:
    initiative = review.initiative
    return _dedupe(
        [
            _person(review.submitted_by, "submitter"),
            _person(initiative.business_owner, "business_owner"),
            _person(initiative.sponsor, "sponsor"),
            _person(initiative.delivery_lead, "delivery_lead"),
        ]
    )


def _log(
    review: GateReview,
    kind: str,
    actor: User | None,
    *,
    approval: Approval | None = None,
    on_behalf_of: User | None = None,
    data: dict[str, Any] | None = None,
) -> ReviewEvent:
    return ReviewEvent.objects.create(
        review=review,
        kind=kind,
        actor=actor,
        approval=approval,
        on_behalf_of=on_behalf_of,
        data=data or {},
    )


# --- templates, approver roles, delegation ------------------------------------------------


def gate_template_revise(
    *,
    gate: Gate,
    actor: User | None,
    criteria: Sequence[CriterionSpec],
    approvers: Sequence[ApproverSpec],
    quorum_policy: str = QuorumPolicy.ALL,
    quorum_n: int | None = None,
    decision_sla_business_days: int,
    expected_stage_days: int | None,
    note: str = "",
) -> GateTemplate:
    """Write the next version of a gate's template; reviews already open keep their version."""
    _require_perm(actor, "gates.revise_template", gate)
    errors = _Errors()
    if not criteria:
        errors.add("criteria", "a gate needs at least one criterion")
    codes: set[str] = set()
    for i, spec in enumerate(criteria):
        key = f"criteria[{i}]"
        if not spec.text.strip():
            errors.add(key, "text is required")
        code = spec.code or slugify(spec.text)[:60]
        if not code or slugify(code) != code:
            errors.add(key, f"code {spec.code!r} must be a slug")
        if code in codes:
            errors.add(key, f"code {code!r} is used twice")
        codes.add(code)
        if spec.kind == CriterionKind.AUTOMATIC:
            if spec.check_name not in CHECKS:
                errors.add(key, f"unknown automatic check {spec.check_name!r}")
        elif spec.kind == CriterionKind.EVIDENCE:
            if spec.check_name:
                errors.add(key, "an evidence criterion has no automatic check")
        else:
            errors.add(key, f"kind must be one of {', '.join(CriterionKind.values)}")
        if not set(spec.risk_tiers) <= set(RiskTier.values):
            errors.add(key, f"risk tiers must be among {', '.join(RiskTier.values)}")
    roles = [a.role for a in approvers]
    if not approvers:
        errors.add("approvers", "a gate needs at least one approver role")
    if len(set(roles)) != len(roles):
        errors.add("approvers", "each approver role may appear once")
    for a in approvers:
        if a.role not in GateRole.values:
            errors.add("approvers", f"unknown role {a.role!r}")
        if not set(a.risk_tiers) <= set(RiskTier.values):
            errors.add("approvers", f"risk tiers must be among {', '.join(RiskTier.values)}")
    if quorum_policy == QuorumPolicy.ALL:
        if quorum_n is not None:
            errors.add("quorum_n", "only an N-of-M policy takes N")
    elif quorum_policy == QuorumPolicy.N_OF_M:
        if quorum_n is None or quorum_n < 1:
            errors.add("quorum_n", "N must be at least 1")
        elif quorum_n > len(approvers):
            errors.add("quorum_n", f"N ({quorum_n}) exceeds the {len(approvers)} approver roles")
    else:
        errors.add("quorum_policy", f"must be one of {', '.join(QuorumPolicy.values)}")
    if decision_sla_business_days < 1:
        errors.add("decision_sla_business_days", "must be at least 1 business day")
    if expected_stage_days is not None and expected_stage_days < 1:
        errors.add("expected_stage_days", "must be at least 1 day (or empty)")
    errors.raise_if_any(f"The {gate.code} template revision has invalid fields.")

    with transaction.atomic():
        # The gate row is the version counter's lock: two admins saving at once get v2 and v3.
        locked = Gate.objects.select_for_update().get(pk=gate.pk)
        latest = locked.templates.aggregate(v=Max("version"))["v"] or 0
        template = GateTemplate.objects.create(
            gate=locked,
            version=latest + 1,
            quorum_policy=quorum_policy,
            quorum_n=quorum_n,
            decision_sla_business_days=decision_sla_business_days,
            expected_stage_days=expected_stage_days,
            note=note,
            created_by=actor,
        )
        Criterion.objects.bulk_create(
            Criterion(
                template=template,
                position=i + 1,
                code=spec.code or slugify(spec.text)[:60],
                text=spec.text.strip(),
                kind=spec.kind,
                check_name=spec.check_name,
                required=spec.required,
                risk_tiers=list(spec.risk_tiers),
            )
            for i, spec in enumerate(criteria)
        )
        ApproverRule.objects.bulk_create(
            ApproverRule(template=template, role=a.role, risk_tiers=list(a.risk_tiers))
            for a in approvers
        )
        emit(
            "gate.template_revised",
            {
                "gate": locked.code,
                "version": template.version,
                "actor_id": getattr(actor, "pk", None),
                "note": note,
                "recipients": [],
            },
            key=f"gate.template_revised:{template.pk}",
        )
    return template


def gate_approver_assign(
    *, actor: User | None, user: User, role: str, business_unit: BusinessUnit | None = None
) -> GateApprover:
    """Make ``user`` the holder of a gate role (for one unit, or the default for all units)."""
    _require_perm(actor, "gates.manage_approvers", None)
    if role not in ASSIGNABLE_ROLES:
        raise ValidationFailed(
            f"{role!r} is not an assignable gate role.",
            errors={"role": [f"one of {', '.join(ASSIGNABLE_ROLES)}"]},
        )
    names = _groups(user)
    if INTEGRATIONS in names:
        raise ValidationFailed(
            f"{user} is a service account and can never approve.",
            errors={"user": ["service accounts cannot hold gate roles"]},
        )
    needed = PMO if role == GateRole.PMO else APPROVERS
    if needed not in names:
        raise ValidationFailed(
            f"{user} must be in the {needed} group to hold the {role} gate role.",
            errors={"user": [f"not in group {needed}"]},
        )
    with transaction.atomic():
        assignment, _ = GateApprover.objects.select_for_update().update_or_create(
            role=role, business_unit=business_unit, defaults={"user": user}
        )
    return assignment


def delegation_create(
    *,
    actor: User | None,
    principal: User,
    deputy: User,
    starts_on: dt.date,
    ends_on: dt.date,
    reason: str = "",
) -> Delegation:
    """Name a deputy who may decide ``principal``'s approvals on the days in the range."""
    _require_perm(actor, "gates.delegate", principal)
    errors = _Errors()
    if deputy.pk == principal.pk:
        errors.add("deputy", "an approver cannot be their own deputy")
    if ends_on < starts_on:
        errors.add("ends_on", "must be on or after the start date")
    if not deputy.is_active:
        errors.add("deputy", f"{deputy} is not an active user")
    if INTEGRATIONS in _groups(deputy):
        errors.add("deputy", "a service account can never approve, so cannot be a deputy")
    errors.raise_if_any("The delegation has invalid fields.")
    with transaction.atomic():
        return Delegation.objects.create(
            principal=principal,
            deputy=deputy,
            starts_on=starts_on,
            ends_on=ends_on,
            reason=reason,
            created_by=actor,
        )


def delegation_revoke(*, actor: User | None, delegation: Delegation) -> Delegation:
    _require_perm(actor, "gates.delegate", delegation.principal)
    with transaction.atomic():
        locked = Delegation.objects.select_for_update().get(pk=delegation.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
    delegation.refresh_from_db()
    return locked


# --- reviews -----------------------------------------------------------------------------


def gate_review_open(*, initiative: Initiative, actor: User | None) -> GateReview:
    """Start a draft review of the gate out of the initiative's stage, on the current template.

    Evidence from the last closed review of the same gate (recycled, withdrawn, held) is carried
    over for criteria that still exist, so rework does not mean re-attaching everything.
    """
    _require_perm(actor, "gates.open_review", initiative)
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
        _log(
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
    person = _require_actor(actor, "attaching evidence")
    url, note = url.strip(), note.strip()
    errors = _Errors()
    if not url and not note:
        errors.add("url", "attach a link or a note")
    if url:
        try:
            _url_validator(url)
        except ValidationError:
            errors.add("url", "must be an http(s) URL")
    errors.raise_if_any("The evidence has invalid fields.")
    with transaction.atomic():
        locked = _lock_review(review.pk)
        _require_perm(person, "gates.attach_evidence", locked)
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
        _log(
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
    person = _require_actor(actor, "submitting a review")
    with transaction.atomic():
        # Locks the initiative too: approvers are resolved from its owner and risk tier, which
        # a concurrent initiative update must not change between our read and our commit.
        locked = _lock_review(review.pk)
        _require_perm(person, "gates.submit_review", locked)
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
        for status in checklist:
            if status.criterion.required and not status.satisfied:
                unmet.extend(f"{status.criterion.text}: {r}" for r in status.reasons)
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
        _log(
            locked,
            EventKind.SUBMITTED,
            person,
            data={
                "criteria": [s.as_dict() for s in checklist],
                "approvers": [
                    {"approval_id": a.pk, "role": a.role, "user_id": a.approver_id}
                    for a in approvals
                ],
                "due_at": due_at.isoformat(),
            },
        )
        emit(
            "review.submitted",
            {
                "title": f"{initiative.key}: {locked.gate.code} review awaits your decision",
                "summary": (
                    f"{person} submitted the {locked.gate.code} ({locked.gate.name}) review of "
                    f"{initiative.key} {initiative.name}. Please approve or reject by "
                    f"{timezone.localtime(due_at):%a %d %b %Y %H:%M}."
                ),
                "review": _review_summary(locked),
                "initiative": initiative_summary(initiative),
                "submitted_by": _person(person, "submitter"),
                "due_at": due_at.isoformat(),
                "approval_ids": [a.pk for a in approvals],
                "admin_url": _admin_path("admin:gates_approvalinbox_changelist"),
                "recipients": [
                    {
                        "user_id": a.approver.pk,
                        "email": a.approver.email,
                        "role": a.role,
                        "approval_id": a.pk,
                        "due_at": due_at.isoformat(),
                        "admin_url": _admin_path("admin:gates_approvalinbox_decide", a.pk),
                    }
                    for a in approvals
                ],
            },
            key=f"review.submitted:{locked.pk}",
        )
    review.refresh_from_db()
    return locked


def gate_review_withdraw(*, review: GateReview, actor: User | None, reason: str) -> GateReview:
    """Pull a draft or submitted review; pending approvals are voided and approvers told."""
    person = _require_actor(actor, "withdrawing a review")
    if not reason.strip():
        raise ValidationFailed(
            "A reason is required to withdraw a review.", errors={"reason": ["required"]}
        )
    with transaction.atomic():
        locked = _lock_review(review.pk)
        _require_perm(person, "gates.withdraw_review", locked)
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
    _log(locked, EventKind.WITHDRAWN, actor, data={"reason": reason})
    if was_submitted:
        emit(
            "review.withdrawn",
            {
                "title": f"{locked.initiative.key}: {locked.gate.code} review withdrawn",
                "summary": f"No decision needed any more. Reason: {reason}",
                "admin_url": _admin_path("admin:gates_gatereview_change", locked.pk),
                "review": _review_summary(locked),
                "initiative": initiative_summary(locked.initiative),
                "reason": reason,
                "actor_id": getattr(actor, "pk", None),
                "recipients": [_person(a.approver, a.role) for a in pending],
            },
            key=f"review.withdrawn:{locked.pk}",
        )


# Why the system withdraws a review when its initiative moves to these stages.
_WITHDRAW_ON_STAGE: dict[str, str] = {
    Stage.ON_HOLD: "initiative put on hold",
    Stage.CANCELLED: "initiative cancelled",
}


def reviews_withdraw_on_stage_change(
    initiative: Initiative, from_stage: str, to_stage: str
) -> None:
    """programs' stage listener (registered in GatesConfig.ready): a held or cancelled initiative's
    open reviews can never be decided (a decision needs the gate's from-stage), so withdraw them
    rather than leave approvers reminded and escalated about them.

    Runs inside the lifecycle move's transaction, with the initiative already locked by programs;
    ``_lock_review`` locks it again (a no-op) and then each review, the order every gates write
    uses. A Hold or Kill decision's own review is decided before the move, so it is not open here.
    """
    reason = _WITHDRAW_ON_STAGE.get(to_stage)
    if reason is None:
        return
    open_ids = list(
        GateReview.objects.filter(initiative_id=initiative.pk, state__in=OPEN_REVIEW_STATES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for review_id in open_ids:
        locked = _lock_review(review_id)
        if locked.is_open:
            _withdraw_locked(locked, actor=None, reason=reason)


# --- decisions ---------------------------------------------------------------------------


def _validate_decision(
    decision: str, comment: str, outcome: str | None, conditions: Sequence[ConditionSpec]
) -> str:
    errors = _Errors()
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


def _check_may_decide(review: GateReview, approval: Approval, actor: User) -> None:
    """Separation of duties, each refusal with its reason."""
    if INTEGRATIONS in _groups(actor):
        raise PermissionDenied(f"{actor} is a service account; service accounts never approve")
    if actor.pk == review.submitted_by_id:
        raise PermissionDenied(f"{actor} submitted review #{review.pk} and cannot decide it")
    if approval.approver_id not in principals_of(actor):
        raise PermissionDenied(
            f"{actor} is neither the {approval.get_role_display()} approver of review "
            f"#{review.pk} nor their deputy today"
        )
    if approval.approver_id == review.submitted_by_id:
        raise PermissionDenied("the submitter's approval cannot be decided by their deputy")
    earlier = review.approvals.filter(decided_by_id=actor.pk).exclude(pk=approval.pk).first()
    if earlier is not None:
        raise PermissionDenied(
            f"{actor} already decided the {earlier.get_role_display()} approval of review "
            f"#{review.pk}; nobody decides twice on one review"
        )


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
    person = _require_actor(actor, "deciding an approval")
    comment = comment.strip()
    chosen = _validate_decision(decision, comment, outcome, conditions)
    with transaction.atomic():
        # Initiative, then review: concurrent decisions on one review queue here and count
        # quorum once, and a concurrent hold/cancel (which locks the initiative first) cannot
        # deadlock with the move this decision may make.
        review = _lock_review(approval.review_id)
        # of=self: locking the approver's user row too would deadlock two decisions that
        # notify each other's approvers (a delivery's foreign key waits on that row).
        locked = (
            Approval.objects.select_for_update(of=("self",))
            .select_related("approver")
            .get(pk=approval.pk)
        )
        if locked.status != ApprovalStatus.PENDING:
            raise Conflict(
                f"the {locked.get_role_display()} approval of review #{review.pk} is already "
                f"{locked.status}"
            )
        if review.state != ReviewState.SUBMITTED:
            raise Conflict(f"review #{review.pk} is {review.state}; it takes no more decisions")
        _check_may_decide(review, locked, person)

        now = timezone.now()
        locked.status = (
            ApprovalStatus.APPROVED if decision == Decision.APPROVE else ApprovalStatus.REJECTED
        )
        locked.comment = comment
        locked.outcome = chosen if decision == Decision.REJECT else ""
        locked.decided_by = person
        locked.decided_at = now
        locked.save()
        for spec in conditions:
            GateCondition.objects.create(
                review=review,
                approval=locked,
                title=spec.title.strip(),
                owner=spec.owner,
                due_at=spec.due_at,
            )
        deputy_for = locked.approver if locked.approver_id != person.pk else None
        _log(
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
        emit(
            "approval.decided",
            {
                "title": (
                    f"{review.initiative.key}: {locked.get_role_display()} "
                    f"{locked.status} the {review.gate.code} review"
                ),
                "summary": (
                    f"{person}"
                    + (f" (deputy for {locked.approver})" if deputy_for else "")
                    + f" {locked.status} it"
                    + (f": {comment}" if comment else ".")
                ),
                "admin_url": _admin_path("admin:gates_gatereview_change", review.pk),
                "approval": {
                    "id": locked.pk,
                    "role": locked.role,
                    "status": locked.status,
                    "outcome": locked.outcome,
                    "comment": comment,
                    "approver_id": locked.approver_id,
                    "decided_by_id": person.pk,
                    "on_behalf_of_id": getattr(deputy_for, "pk", None),
                    "decided_at": now.isoformat(),
                },
                "review": _review_summary(review),
                "initiative": initiative_summary(review.initiative),
                "recipients": _stakeholders(review),
            },
            key=f"approval.decided:{locked.pk}",
        )
        statuses = list(review.approvals.values_list("status", flat=True))
        result = quorum(review.template.quorum_policy, review.template.quorum_n, statuses)
        if result.decided:
            _decide_review(review=review, result=result, decisive=locked, now=now)
    approval.refresh_from_db()
    return locked


def _decide_review(
    *, review: GateReview, result: QuorumResult, decisive: Approval, now: dt.datetime
) -> None:
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
    pending = list(
        review.approvals.filter(status=ApprovalStatus.PENDING).select_related("approver")
    )
    Approval.objects.filter(pk__in=[a.pk for a in pending]).update(status=ApprovalStatus.VOID)
    conditions = list(review.conditions.select_related("owner"))

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
    review.save()

    reason = f"{gate.code} review #{review.pk}: {summary}"
    if outcome in (Outcome.GO, Outcome.CONDITIONAL_GO):
        programs.initiative_advance(
            initiative=initiative,
            actor=None,
            reason=reason,
            expected_stage=gate.from_stage,
            gate_review_id=review.pk,
        )
        # After the move, so the milestones belong to the stage just opened and hold its exit gate.
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
    elif outcome == Outcome.HOLD:
        programs.initiative_hold(
            initiative=initiative,
            actor=None,
            reason=reason,
            expected_stage=gate.from_stage,
            gate_review_id=review.pk,
        )
    elif outcome == Outcome.KILL:
        programs.initiative_cancel(
            initiative=initiative,
            actor=None,
            reason=reason,
            expected_stage=gate.from_stage,
            gate_review_id=review.pk,
        )

    _log(
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
    approver_recipients = [
        _person(a.approver, a.role) for a in review.approvals.select_related("approver")
    ]
    emit(
        "review.decided",
        {
            "title": f"{initiative.key}: {gate.code} decided — {Outcome(outcome).label}",
            "admin_url": _admin_path("admin:gates_gatereview_change", review.pk),
            "review": _review_summary(review),
            "outcome": outcome,
            "summary": summary,
            "initiative": initiative_summary(initiative),
            "condition_milestone_ids": [c.milestone_id for c in conditions if c.milestone_id],
            "recipients": _dedupe([*_stakeholders(review), *approver_recipients]),
        },
        key=f"review.decided:{review.pk}",
    )


def _dedupe(people: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    seen: set[int] = set()
    result = []
    for person in people:
        if person is not None and person["user_id"] not in seen:
            seen.add(person["user_id"])
            result.append(person)
    return result


__all__ = [
    "ApproverSpec",
    "ConditionSpec",
    "CriterionSpec",
    "approval_decide",
    "delegation_create",
    "delegation_revoke",
    "evidence_attach",
    "gate_approver_assign",
    "gate_review_open",
    "gate_review_submit",
    "gate_review_withdraw",
    "gate_template_revise",
    "reviews_withdraw_on_stage_change",
]
