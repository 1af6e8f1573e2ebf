"""Reads for gates: checklists, approver resolution, delegation, the approvals inbox.

Query-conscious: a checklist costs one query for evidence plus one per automatic check, and the
inbox is a single query with its relations joined.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from gatekeeper.compiled import CompiledRead, Param
from gatekeeper.types import User
from gates.criteria import describe_check, run_check
from gates.models import (
    Approval,
    ApprovalStatus,
    ApproverRule,
    Criterion,
    CriterionKind,
    Delegation,
    Evidence,
    Gate,
    GateApprover,
    GateReview,
    GateRole,
    GateTemplate,
)
from programs import selectors as programs_selectors
from programs.models import BusinessUnit, Initiative
from programs.roles import APPROVERS, INTEGRATIONS, PMO

# --- gates and templates -----------------------------------------------------------------


def gate_out_of(stage: str) -> Gate | None:
    return Gate.objects.filter(from_stage=stage).first()


def gate_template_current(*, gate: Gate) -> GateTemplate:
    template = gate.templates.order_by("-version").first()
    if template is None:
        raise LookupError(f"gate {gate.code} has no template")
    return template


def template_criteria(template: GateTemplate, risk_tier: str) -> list[Criterion]:
    return [c for c in template.criteria.all() if c.applies_to(risk_tier)]


def template_approver_roles(template: GateTemplate, risk_tier: str) -> list[str]:
    rules: list[ApproverRule] = list(template.approvers.all())
    return [r.role for r in rules if r.applies_to(risk_tier)]


# --- criteria checklist ------------------------------------------------------------------


@dataclass
class CriterionStatus:
    criterion: Criterion
    satisfied: bool
    reasons: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    # What an automatic check looked at, for the people deciding (only with ``with_details``).
    details: list[str] = field(default_factory=list)


def review_checklist(*, review: GateReview, with_details: bool = False) -> list[CriterionStatus]:
    """Every criterion that applies to the review, evaluated now (automatic ones from live data).

    ``with_details`` adds what each automatic check looked at (one more query per check), for
    pages where a person decides; services leave it off.
    """
    initiative = review.initiative
    criteria = template_criteria(review.template, review.effective_risk_tier)
    by_criterion: dict[int, list[Evidence]] = defaultdict(list)
    for item in review.evidence.select_related("attached_by").order_by("attached_at", "id"):
        by_criterion[item.criterion_id].append(item)
    result: list[CriterionStatus] = []
    for criterion in criteria:
        if criterion.kind == CriterionKind.AUTOMATIC:
            reasons = run_check(criterion.check_name, initiative)
            details = describe_check(criterion.check_name, initiative) if with_details else []
            result.append(CriterionStatus(criterion, not reasons, reasons, details=details))
        else:
            items = by_criterion.get(criterion.pk, [])
            reasons = [] if items else [f"evidence needed: {criterion.text}"]
            result.append(CriterionStatus(criterion, bool(items), reasons, items))
    return result


def unmet_criteria(checklist: Iterable[CriterionStatus]) -> list[str]:
    """Why the required criteria of ``checklist`` are not all satisfied, in template order: what
    refuses a submission (advisory criteria never do)."""
    return [
        f"{status.criterion.text}: {reason}"
        for status in checklist
        if status.criterion.required and not status.satisfied
        for reason in status.reasons
    ]


# --- approvers ---------------------------------------------------------------------------


@dataclass
class ResolvedApprovers:
    slots: list[tuple[str, User]]  # (role, user)
    unmet: list[str]


def resolve_approvers(
    *, initiative: Initiative, template: GateTemplate, risk_tier: str, submitter: User | None
) -> ResolvedApprovers:
    """The person for each required role, or the reasons some role can't be filled.

    A unit-specific assignment beats the default one. Separation of duties is checked here, at
    submission, so a review never starts that could not be decided.
    """
    roles = template_approver_roles(template, risk_tier)
    assignments = {
        (a.role, a.business_unit_id): a.user
        for a in GateApprover.objects.filter(
            Q(business_unit__isnull=True) | Q(business_unit_id=initiative.business_unit_id),
            role__in=roles,
        ).select_related("user")
    }
    slots: list[tuple[str, User]] = []
    unmet: list[str] = []
    for role in roles:
        label = GateRole(role).label
        if role == GateRole.BUSINESS_OWNER:
            user = initiative.business_owner
            if user is None:
                unmet.append("approver business owner: the initiative has no business owner")
                continue
        else:
            user = assignments.get((role, initiative.business_unit_id)) or assignments.get(
                (role, None)
            )
            if user is None:
                unmet.append(
                    f"approver {label}: nobody holds this gate role for business unit "
                    f"{initiative.business_unit.code}"
                )
                continue
        slots.append((role, user))

    users = get_user_model().objects.filter(pk__in=[u.pk for _, u in slots])
    groups = {
        u.pk: set(u.groups.values_list("name", flat=True)) for u in users.prefetch_related("groups")
    }
    seen: dict[int, str] = {}
    for role, user in slots:
        label = GateRole(role).label
        names = groups.get(user.pk, set())
        if not user.is_active:
            unmet.append(f"approver {label}: {user} is not an active user")
        if INTEGRATIONS in names:
            unmet.append(f"approver {label}: {user} is a service account and cannot approve")
        if role == GateRole.PMO and PMO not in names:
            unmet.append(f"approver {label}: {user} is not in the {PMO} group")
        elif role not in (GateRole.BUSINESS_OWNER, GateRole.PMO) and APPROVERS not in names:
            unmet.append(f"approver {label}: {user} is not in the {APPROVERS} group")
        if submitter is not None and user.pk == submitter.pk:
            unmet.append(
                f"approver {label}: {user} submits this review and cannot also approve it; "
                "someone else must submit"
            )
        if user.pk in seen:
            unmet.append(
                f"approver {label}: {user} already approves as {GateRole(seen[user.pk]).label}; "
                "each approval needs a different person"
            )
        seen.setdefault(user.pk, role)
    return ResolvedApprovers(slots, unmet)


def delegations_in_force(day: dt.date) -> QuerySet[Delegation]:
    """The delegations a deputy may act on, on ``day``: begun, not ended, not revoked."""
    return Delegation.objects.filter(starts_on__lte=day, ends_on__gte=day, revoked_at__isnull=True)


def principals_of(user: User, day: dt.date | None = None) -> set[int]:
    """The approvers ``user`` may act for on ``day``: themselves and whoever delegated to them."""
    day = day or timezone.localdate()
    ids = set(
        delegations_in_force(day).filter(deputy_id=user.pk).values_list("principal_id", flat=True)
    )
    ids.add(user.pk)
    return ids


def deputies_of(user_id: int, day: dt.date) -> list[User]:
    """Who may act for ``user_id`` on ``day`` (one entry per delegation in force)."""
    return deputies_of_each([user_id], day).get(user_id, [])


def deputies_of_each(user_ids: Iterable[int], day: dt.date) -> dict[int, list[User]]:
    """``deputies_of`` for several people in one query: their deputies by their id (someone
    nobody deputises for is left out)."""
    delegations = (
        delegations_in_force(day).filter(principal_id__in=set(user_ids)).select_related("deputy")
    )
    deputies: dict[int, list[User]] = defaultdict(list)
    for delegation in delegations:
        deputies[delegation.principal_id].append(delegation.deputy)
    return dict(deputies)


def approvals_inbox(*, user: User, day: dt.date | None = None) -> QuerySet[Approval]:
    """Pending approvals the user may decide now: theirs and those of whom they deputise for."""
    if not user.is_authenticated:
        return Approval.objects.none()
    return (
        Approval.objects.filter(
            status=ApprovalStatus.PENDING,
            review__state="submitted",
            approver_id__in=principals_of(user, day),
        )
        .select_related(
            "approver",
            "review__gate",
            "review__template",
            "review__initiative__business_unit",
            "review__submitted_by",
        )
        .order_by("due_at", "id")
    )


@dataclass(frozen=True)
class InboxSummary:
    waiting: int
    overdue: int


def approvals_inbox_summary(*, user: User, now: dt.datetime | None = None) -> InboxSummary:
    """How many approvals wait for ``user`` and how many of them are past due (one query)."""
    now = now or timezone.now()
    counts = (
        approvals_inbox(user=user)
        .order_by()
        .aggregate(waiting=Count("pk"), overdue=Count("pk", filter=Q(due_at__lt=now)))
    )
    return InboxSummary(waiting=counts["waiting"] or 0, overdue=counts["overdue"] or 0)


def approvals_decided_by(*, user: User) -> QuerySet[Approval]:
    """Approvals ``user`` decided (as the approver or as a deputy), the latest first."""
    if not user.is_authenticated:
        return Approval.objects.none()
    return (
        Approval.objects.filter(decided_by_id=user.pk)
        .select_related(
            "approver",
            "decided_by",
            "review__gate",
            "review__template",
            "review__initiative__business_unit",
            "review__submitted_by",
        )
        .order_by("-decided_at", "-id")
    )


def _involved_in_review(user_id: Any, day: Any, *, review: str) -> Q:
    """Who sees a review besides the PMO and superusers: its initiative's owner, sponsor and
    delivery lead, and whoever it asks to approve or deputises for them on ``day``.

    ``user_id`` and ``day`` are values or ``Param``s (the rule is the same compiled or not);
    ``review`` is the path from the filtered model to the review: ``""`` for reviews,
    ``"review__"`` for approvals. In one statement: the deputy's principals are a subquery, not
    a query of their own, and an approval matching twice does not repeat its review."""
    principals = delegations_in_force(day).filter(deputy_id=user_id).values("principal_id")
    asked = Approval.objects.filter(
        Q(approver_id=user_id) | Q(approver_id__in=principals),
        review_id=OuterRef(f"{review}pk"),
    )
    return (
        Q(**{f"{review}initiative__business_owner_id": user_id})
        | Q(**{f"{review}initiative__sponsor_id": user_id})
        | Q(**{f"{review}initiative__delivery_lead_id": user_id})
        | Q(Exists(asked))
    )


def reviews_visible_to(*, user: User) -> QuerySet[GateReview]:
    qs = GateReview.objects.select_related(
        "initiative", "initiative__business_unit", "gate", "template", "submitted_by"
    )
    if not user.is_authenticated:
        return qs.none()
    if user.is_superuser or user.groups.filter(name=PMO).exists():
        return qs
    return qs.filter(_involved_in_review(user.pk, timezone.localdate(), review=""))


# --- what the admin lists and offers ------------------------------------------------------


def delegations_visible_to(*, user: User) -> QuerySet[Delegation]:
    """Everyone's for whoever may delegate for others; otherwise those naming ``user``."""
    qs = Delegation.objects.select_related("principal", "deputy")
    if not user.is_authenticated:
        return qs.none()
    if user.is_superuser or user.has_perm("gates.delegate", None):
        return qs
    return qs.filter(Q(principal=user) | Q(deputy=user))


def may_receive_approvals(*, user: User) -> bool:
    """Whether approvals can come to ``user``: a member of the approver or PMO groups, a holder
    of a gate role, a business owner, or anyone who was ever asked to approve."""
    if not user.is_authenticated:
        return False
    return bool(
        user.is_superuser
        or user.groups.filter(name__in=[APPROVERS, PMO]).exists()
        or GateApprover.objects.filter(user_id=user.pk).exists()
        or Initiative.objects.filter(business_owner_id=user.pk).exists()
        or Approval.objects.filter(approver_id=user.pk).exists()
    )


def gate_approver_holding(
    *, role: str | None, business_unit: BusinessUnit | None
) -> GateApprover | None:
    """Who holds ``role`` for ``business_unit`` (None: company-wide) now, if anyone."""
    return GateApprover.objects.filter(role=role, business_unit=business_unit).first()


def condition_owner_candidates() -> QuerySet[User]:
    """Who may own a Conditional Go's condition, and so the milestone it becomes: a person who
    can still sign in, never a service account."""
    return (
        get_user_model()
        ._default_manager.filter(is_active=True)
        .exclude(groups__name=INTEGRATIONS)
        .order_by("username")
    )


def initiatives_user_may_review(*, user: User) -> QuerySet[Initiative]:
    """Initiatives ``user`` may open and submit gate reviews for: every one for PMO and
    superusers, otherwise those they own, sponsor or lead (the ``gates.open_review`` rule)."""
    qs = Initiative.objects.select_related("business_unit", "business_owner")
    if not user.is_authenticated:
        return qs.none()
    if user.is_superuser or user.groups.filter(name=PMO).exists():
        return qs
    return qs.filter(Q(business_owner=user) | Q(sponsor=user) | Q(delivery_lead=user))


def review_approvals(*, review: GateReview) -> QuerySet[Approval]:
    """Every approval of ``review`` with who holds and who decided it."""
    return review.approvals.select_related("approver", "decided_by")


# --- what the API lists ----------------------------------------------------------------------


def approvals_visible_to(*, user: User) -> QuerySet[Approval]:
    """Approvals of every review the user may see (its people see who decides their gate)."""
    return Approval.objects.select_related(
        "review__gate", "review__initiative", "approver", "decided_by"
    ).filter(review__in=reviews_visible_to(user=user).values("pk"))


def _visible_approval(*, everything: bool) -> QuerySet[Approval, Approval]:
    # ``reviews_visible_to``'s rule in one statement: the PMO membership is an EXISTS here, not
    # a query of its own, so that it is compiled once (gatekeeper.compiled) and sent alone.
    pk_field = Approval._meta.pk
    approvals = Approval.objects.filter(pk=Param("pk", pk_field))  # type: ignore[arg-type]
    if not everything:
        user_id = Param("user_id", pk_field)  # type: ignore[arg-type]
        pmo = programs_selectors.pmo_memberships(user_id)
        day = Param("day", Delegation._meta.get_field("starts_on"))  # type: ignore[arg-type]
        approvals = approvals.filter(
            Q(Exists(pmo)) | _involved_in_review(user_id, day, review="review__")
        )
    return approvals.only("id", "review_id").order_by()


# Built and compiled once per connection: the API's decision looks its approval up with it on
# every call, and building the rule's queryset cost more CPU than the statement takes to run.
_VISIBLE_APPROVAL = CompiledRead(Approval, partial(_visible_approval, everything=False))
_ANY_APPROVAL = CompiledRead(Approval, partial(_visible_approval, everything=True))


def approval_visible_to(*, user: Any, pk: int) -> Approval | None:
    """The approval ``pk`` with only its id and review loaded, if ``user`` may see it (the rule
    of ``approvals_visible_to``, in one statement); None if it is not there or not theirs."""
    if not user.is_authenticated:
        return None
    low, high = connection.ops.integer_field_range(Approval._meta.pk.get_internal_type())
    if not low <= pk <= high:
        return None  # as the ORM answers a lookup out of the column's range: no such row
    if user.is_superuser:
        found = _ANY_APPROVAL(pk=pk)
    else:
        found = _VISIBLE_APPROVAL(pk=pk, user_id=user.pk, day=timezone.localdate())
    return found[0] if found else None


def evidence_visible_to(*, user: User) -> QuerySet[Evidence]:
    return Evidence.objects.select_related("review", "criterion", "attached_by").filter(
        review__in=reviews_visible_to(user=user).values("pk")
    )


def gate_templates_published() -> QuerySet[GateTemplate]:
    return GateTemplate.objects.select_related("gate").prefetch_related(
        Prefetch("criteria", queryset=Criterion.objects.order_by("position")), "approvers"
    )
