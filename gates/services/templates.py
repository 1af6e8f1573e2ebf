"""Gate templates, who holds the gate roles, and delegation to deputies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from gatekeeper.errors import ValidationFailed
from gatekeeper.types import User
from gates import events
from gates.criteria import CHECKS
from gates.models import (
    ASSIGNABLE_ROLES,
    MAX_EXPECTED_STAGE_DAYS,
    MAX_SLA_BUSINESS_DAYS,
    ApproverRule,
    Criterion,
    CriterionKind,
    Delegation,
    Gate,
    GateApprover,
    GateRole,
    GateTemplate,
    QuorumPolicy,
    delegation_dates_problems,
)
from gates.services._common import Errors, groups_of, require_perm
from programs.models import BusinessUnit, RiskTier
from programs.roles import APPROVERS, INTEGRATIONS, PMO


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
    require_perm(actor, "gates.revise_template", gate)
    errors = Errors()
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
    if not 1 <= decision_sla_business_days <= MAX_SLA_BUSINESS_DAYS:
        errors.add(
            "decision_sla_business_days", f"must be 1 to {MAX_SLA_BUSINESS_DAYS} business days"
        )
    if expected_stage_days is not None and not 1 <= expected_stage_days <= MAX_EXPECTED_STAGE_DAYS:
        errors.add("expected_stage_days", f"must be 1 to {MAX_EXPECTED_STAGE_DAYS} days (or empty)")
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
        events.gate_template_revised(template=template, actor=actor).emit()
    return template


def gate_approver_assign(
    *, actor: User | None, user: User, role: str, business_unit: BusinessUnit | None = None
) -> GateApprover:
    """Make ``user`` the holder of a gate role (for one unit, or the default for all units)."""
    require_perm(actor, "gates.manage_approvers", None)
    if role not in ASSIGNABLE_ROLES:
        raise ValidationFailed(
            f"{role!r} is not an assignable gate role.",
            errors={"role": [f"one of {', '.join(ASSIGNABLE_ROLES)}"]},
        )
    names = groups_of(user)
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
    require_perm(actor, "gates.delegate", principal)
    errors = Errors()
    if deputy.pk == principal.pk:
        errors.add("deputy", "an approver cannot be their own deputy")
    if ends_on < starts_on:
        errors.add("ends_on", "must be on or after the start date")
    today = timezone.localdate()
    for field, problem in delegation_dates_problems(
        starts_on=starts_on, ends_on=ends_on, today=today
    ).items():
        errors.add(field, problem)
    if not deputy.is_active:
        errors.add("deputy", f"{deputy} is not an active user")
    if INTEGRATIONS in groups_of(deputy):
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
    require_perm(actor, "gates.delegate", delegation.principal)
    with transaction.atomic():
        locked = Delegation.objects.select_for_update().get(pk=delegation.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
    delegation.refresh_from_db()
    return locked
