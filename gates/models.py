"""Gates G1-G4: versioned templates, reviews, approvals, evidence, the review log (DESIGN.md §1).

Templates are immutable once written: editing one writes a new version
(services.gate_template_revise), so a review in flight keeps judging against the criteria it
started with. Transition methods only guard and change fields; services lock, save, log, emit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pgtrigger
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from gatekeeper.db import (
    AppendOnlyModel,
    Guard,
    ImmutableModel,
    SafeFSMModelMixin,
    inserted_in_this_transaction,
)
from gatekeeper.validators import bounded, validate_no_nul, validate_single_line
from programs.models import Initiative, Milestone, RiskTier
from programs.stages import Stage


class GateRole(models.TextChoices):
    """Who an approval slot is for. The business owner comes from the initiative; the others
    from GateApprover assignments."""

    BUSINESS_OWNER = "business_owner", "Business owner"
    BUSINESS = "business", "Business"
    RISK = "risk", "Risk"
    PLATFORM = "platform", "Platform"
    SECURITY = "security", "Security"
    PMO = "pmo", "PMO"


ASSIGNABLE_ROLES = [r for r in GateRole.values if r != GateRole.BUSINESS_OWNER]


class QuorumPolicy(models.TextChoices):
    ALL = "all", "Every required approver"
    N_OF_M = "n_of_m", "N of M approvers"


class CriterionKind(models.TextChoices):
    AUTOMATIC = "automatic", "Automatic (computed from data)"
    EVIDENCE = "evidence", "Evidence (attached by a person)"


# Bounds on a template's numbers: far past any real use, and small enough that due dates and
# stall deadlines computed from them stay inside what datetime can represent (an unbounded
# expected_stage_days made every final approval on that version raise OverflowError).
MAX_QUORUM_N = 50
MAX_SLA_BUSINESS_DAYS = 365
MAX_EXPECTED_STAGE_DAYS = 3650


class Gate(models.Model):
    """The stable identity of a gate; its rules live in versioned GateTemplate rows."""

    code = models.CharField(max_length=4, unique=True, validators=[validate_single_line])
    name = models.CharField(max_length=80, validators=[validate_single_line])
    from_stage = models.CharField(max_length=20, choices=Stage.choices, unique=True)
    to_stage = models.CharField(max_length=20, choices=Stage.choices, unique=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class GateTemplate(ImmutableModel):
    gate = models.ForeignKey(Gate, on_delete=models.PROTECT, related_name="templates")
    version = models.PositiveIntegerField()
    quorum_policy = models.CharField(
        max_length=10, choices=QuorumPolicy.choices, default=QuorumPolicy.ALL
    )
    # Only for N of M: how many approvals decide; M is the number of approvers resolved.
    quorum_n = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=bounded(1, MAX_QUORUM_N)
    )
    decision_sla_business_days = models.PositiveSmallIntegerField(
        default=5, validators=bounded(1, MAX_SLA_BUSINESS_DAYS)
    )
    # For stall detection in the stage this gate opens; null where a stage has no end (operations).
    expected_stage_days = models.PositiveIntegerField(
        null=True, blank=True, validators=bounded(1, MAX_EXPECTED_STAGE_DAYS)
    )
    note = models.TextField(
        blank=True, help_text="Why this version was made.", validators=[validate_no_nul]
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["gate__code", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["gate", "version"], name="gatetemplate_version_unique"),
            models.CheckConstraint(
                condition=(Q(quorum_policy=QuorumPolicy.ALL) & Q(quorum_n__isnull=True))
                | (Q(quorum_policy=QuorumPolicy.N_OF_M) & Q(quorum_n__gte=1)),
                name="gatetemplate_quorum_consistent",
            ),
            models.CheckConstraint(
                condition=Q(decision_sla_business_days__gte=1), name="gatetemplate_sla_positive"
            ),
            models.CheckConstraint(
                condition=Q(decision_sla_business_days__lte=MAX_SLA_BUSINESS_DAYS),
                name="gatetemplate_sla_bounded",
            ),
            models.CheckConstraint(
                condition=Q(quorum_n__isnull=True) | Q(quorum_n__lte=MAX_QUORUM_N),
                name="gatetemplate_quorum_n_bounded",
            ),
            models.CheckConstraint(
                condition=Q(expected_stage_days__isnull=True)
                | Q(expected_stage_days__gte=1, expected_stage_days__lte=MAX_EXPECTED_STAGE_DAYS),
                name="gatetemplate_expected_stage_days_bounded",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.gate.code} v{self.version}"


def _applies(risk_tiers: list[str], risk_tier: str) -> bool:
    return not risk_tiers or risk_tier in risk_tiers


class Criterion(ImmutableModel):
    template = models.ForeignKey(GateTemplate, on_delete=models.CASCADE, related_name="criteria")
    position = models.PositiveSmallIntegerField()
    # Stable across versions, so evidence can be carried to a new review of a revised template.
    code = models.SlugField(max_length=60, validators=[validate_single_line])
    text = models.CharField(max_length=300, validators=[validate_single_line])
    kind = models.CharField(max_length=10, choices=CriterionKind.choices)
    # Name of the automatic check in gates.criteria.CHECKS; blank for evidence criteria.
    check_name = models.CharField(max_length=60, blank=True, validators=[validate_single_line])
    required = models.BooleanField(default=True)
    # Risk tiers this criterion applies to; empty means every tier.
    risk_tiers = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["template", "position"]
        verbose_name_plural = "criteria"
        constraints = [
            models.UniqueConstraint(fields=["template", "code"], name="criterion_code_unique"),
            models.CheckConstraint(
                condition=(Q(kind=CriterionKind.AUTOMATIC) & ~Q(check_name=""))
                | (Q(kind=CriterionKind.EVIDENCE) & Q(check_name="")),
                name="criterion_check_matches_kind",
            ),
        ]

    def __str__(self) -> str:
        return self.text

    def applies_to(self, risk_tier: str) -> bool:
        return _applies(self.risk_tiers, risk_tier)


class ApproverRule(ImmutableModel):
    template = models.ForeignKey(GateTemplate, on_delete=models.CASCADE, related_name="approvers")
    role = models.CharField(max_length=20, choices=GateRole.choices)
    risk_tiers = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["template", "id"]
        constraints = [
            models.UniqueConstraint(fields=["template", "role"], name="approverrule_role_unique"),
        ]

    def __str__(self) -> str:
        return self.get_role_display()

    def applies_to(self, risk_tier: str) -> bool:
        return _applies(self.risk_tiers, risk_tier)


class GateApprover(models.Model):
    """Who holds a gate role, for one business unit or (business_unit empty) as the default."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="gate_roles"
    )
    role = models.CharField(
        max_length=20, choices=[(r, GateRole(r).label) for r in ASSIGNABLE_ROLES]
    )
    business_unit = models.ForeignKey(
        "programs.BusinessUnit", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["role", "business_unit_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["role", "business_unit"],
                condition=Q(business_unit__isnull=False),
                name="gateapprover_one_per_role_and_unit",
            ),
            models.UniqueConstraint(
                fields=["role"],
                condition=Q(business_unit__isnull=True),
                name="gateapprover_one_default_per_role",
            ),
        ]

    def __str__(self) -> str:
        scope = self.business_unit or "all units"
        return f"{self.user} — {self.get_role_display()} ({scope})"


# Longest stretch one delegation may cover; a longer absence is named again, so a deputy's
# power does not quietly outlive the reason it was given (and no range runs to year 9999).
MAX_DELEGATION_DAYS = 366


def delegation_dates_problems(
    *, starts_on: dt.date, ends_on: dt.date, today: dt.date
) -> dict[str, str]:
    """What is absurd about a delegation's date range (field -> why), empty if nothing.

    The order of the two dates is the check constraint's (and the service's) to say.
    """
    problems: dict[str, str] = {}
    if ends_on < today:
        problems["ends_on"] = "is in the past: a delegation must cover today or a later day"
    elif (ends_on - starts_on).days + 1 > MAX_DELEGATION_DAYS:
        problems["ends_on"] = f"a delegation covers at most {MAX_DELEGATION_DAYS} days"
    if starts_on > today + dt.timedelta(days=MAX_DELEGATION_DAYS):
        problems["starts_on"] = f"must be within {MAX_DELEGATION_DAYS} days from today"
    return problems


class Delegation(models.Model):
    """An approver's deputy for a date range (inclusive, in the project's time zone)."""

    principal = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="delegations_given"
    )
    deputy = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="delegations_received"
    )
    starts_on = models.DateField()
    ends_on = models.DateField()
    reason = models.CharField(max_length=200, blank=True, validators=[validate_single_line])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-starts_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__gte=models.F("starts_on")), name="delegation_dates_ordered"
            ),
            models.CheckConstraint(
                condition=~Q(principal=models.F("deputy")), name="delegation_not_to_self"
            ),
        ]
        indexes = [models.Index(fields=["deputy", "starts_on", "ends_on"])]

    def __str__(self) -> str:
        return f"{self.principal} → {self.deputy} ({self.starts_on}..{self.ends_on})"

    def clean(self) -> None:
        super().clean()
        if self._state.adding and self.starts_on and self.ends_on:
            problems = delegation_dates_problems(
                starts_on=self.starts_on, ends_on=self.ends_on, today=timezone.localdate()
            )
            if problems:
                raise ValidationError(problems)

    def covers(self, day: dt.date) -> bool:
        return self.revoked_at is None and self.starts_on <= day <= self.ends_on


class ReviewState(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    RECYCLED = "recycled", "Recycled"
    WITHDRAWN = "withdrawn", "Withdrawn"


OPEN_REVIEW_STATES = (ReviewState.DRAFT, ReviewState.SUBMITTED)


class Outcome(models.TextChoices):
    GO = "go", "Go"
    CONDITIONAL_GO = "conditional_go", "Conditional Go"
    HOLD = "hold", "Hold"
    RECYCLE = "recycle", "Recycle"
    KILL = "kill", "Kill"


# Outcomes a rejecting approver may choose; approving yields Go or, with conditions, Conditional Go.
REJECT_OUTCOMES = (Outcome.RECYCLE, Outcome.HOLD, Outcome.KILL)


def _decision_logged(*, name: str, field: str, decided: list[str], event: str, by: str) -> Guard:
    """On PostgreSQL, at commit: a row entering a decided state (inserted so, or updated into it)
    has the review log's event for that decision, written in the same transaction. Deferred,
    because the services save the decision before they log it."""
    return Guard(
        name=name,
        operation=pgtrigger.Insert | pgtrigger.Update,
        when=pgtrigger.After,
        timing=pgtrigger.Deferred,
        condition=pgtrigger.Q(**{f"new__{field}__in": decided}),
        func=f"""
            IF TG_OP = 'UPDATE' AND OLD.{field} IS NOT DISTINCT FROM NEW.{field} THEN
                RETURN NULL;
            END IF;
            IF NOT EXISTS (
                SELECT 1 FROM gates_reviewevent e
                WHERE e.{by} = NEW.id AND e.kind = '{event}'
                    AND {inserted_in_this_transaction("e")}
            ) THEN
                RAISE EXCEPTION '% #% became % with no % event in the review log',
                    TG_TABLE_NAME, NEW.id, NEW.{field}, '{event}'
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NULL;
        """,  # noqa: S608 -- trigger DDL built from the model's own constants, no input
    )


class GateReview(ConcurrentTransitionMixin, SafeFSMModelMixin, models.Model):
    initiative = models.ForeignKey(
        Initiative, on_delete=models.PROTECT, related_name="gate_reviews"
    )
    gate = models.ForeignKey(Gate, on_delete=models.PROTECT, related_name="reviews")
    # The version the review started with; later revisions of the gate never change it.
    template = models.ForeignKey(GateTemplate, on_delete=models.PROTECT, related_name="reviews")
    state = FSMField(default=ReviewState.DRAFT, choices=ReviewState.choices, protected=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    # The initiative's tier when submitted: it picks the criteria and approvers the review
    # is held to.
    risk_tier = models.CharField(max_length=10, choices=RiskTier.choices, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="submitted_reviews",
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_summary = models.TextField(blank=True, validators=[validate_no_nul])
    closed_reason = models.TextField(blank=True, validators=[validate_no_nul])

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One review in progress per initiative and gate: approvers never see two competing.
            models.UniqueConstraint(
                fields=["initiative", "gate"],
                condition=Q(state__in=OPEN_REVIEW_STATES),
                name="gatereview_one_open_per_gate",
            ),
            # A gate is passed once: stages only move forward.
            models.UniqueConstraint(
                fields=["initiative", "gate"],
                condition=Q(state=ReviewState.APPROVED),
                name="gatereview_one_approved_per_gate",
            ),
            models.CheckConstraint(
                condition=Q(state__in=ReviewState.values), name="gatereview_state_valid"
            ),
            models.CheckConstraint(
                condition=(
                    Q(state=ReviewState.APPROVED)
                    & Q(outcome__in=[Outcome.GO, Outcome.CONDITIONAL_GO])
                )
                | (Q(state=ReviewState.REJECTED) & Q(outcome__in=[Outcome.HOLD, Outcome.KILL]))
                | (Q(state=ReviewState.RECYCLED) & Q(outcome=Outcome.RECYCLE))
                | (Q(state__in=[*OPEN_REVIEW_STATES, ReviewState.WITHDRAWN]) & Q(outcome="")),
                name="gatereview_outcome_matches_state",
            ),
        ]
        indexes = [models.Index(fields=["initiative", "gate", "state"])]
        triggers = [
            _decision_logged(
                name="decision_logged",
                field="state",
                decided=[ReviewState.APPROVED, ReviewState.REJECTED, ReviewState.RECYCLED],
                event="review_decided",
                by="review_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.gate.code} review #{self.pk} of {self.initiative.key}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_REVIEW_STATES

    @property
    def effective_risk_tier(self) -> str:
        return self.risk_tier or self.initiative.risk_tier

    # --- lifecycle (pure) --------------------------------------------------------------------
    @transition(field=state, source=ReviewState.DRAFT, target=ReviewState.SUBMITTED)
    def submit(self, *, risk_tier: str, at: dt.datetime, by: Any) -> None:
        self.risk_tier = risk_tier
        self.submitted_at = at
        self.submitted_by = by

    @transition(field=state, source=ReviewState.SUBMITTED, target=ReviewState.APPROVED)
    def approve(self, *, outcome: str, at: dt.datetime, summary: str) -> None:
        self.outcome = outcome
        self.decided_at = at
        self.decision_summary = summary

    @transition(field=state, source=ReviewState.SUBMITTED, target=ReviewState.REJECTED)
    def reject(self, *, outcome: str, at: dt.datetime, summary: str) -> None:
        self.outcome = outcome
        self.decided_at = at
        self.decision_summary = summary

    @transition(field=state, source=ReviewState.SUBMITTED, target=ReviewState.RECYCLED)
    def recycle(self, *, at: dt.datetime, summary: str) -> None:
        self.outcome = Outcome.RECYCLE
        self.decided_at = at
        self.decision_summary = summary

    @transition(field=state, source=list(OPEN_REVIEW_STATES), target=ReviewState.WITHDRAWN)
    def withdraw(self, *, reason: str) -> None:
        self.closed_reason = reason


class Evidence(models.Model):
    """A link or note a person attached to an evidence criterion; who and when are kept."""

    review = models.ForeignKey(GateReview, on_delete=models.CASCADE, related_name="evidence")
    criterion = models.ForeignKey(Criterion, on_delete=models.PROTECT, related_name="+")
    # 2048 is what browsers and Django's URL validator accept; document links (SharePoint,
    # Confluence) routinely pass 500.
    url = models.URLField(max_length=2048, blank=True, validators=[validate_single_line])
    note = models.TextField(blank=True, validators=[validate_no_nul])
    attached_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    attached_at = models.DateTimeField()
    # Set when carried over from an earlier review of the same gate (after Recycle or withdrawal).
    carried_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["criterion__position", "attached_at", "id"]
        verbose_name_plural = "evidence"
        constraints = [
            models.CheckConstraint(
                condition=~Q(url="") | ~Q(note=""), name="evidence_has_link_or_note"
            ),
        ]

    def __str__(self) -> str:
        return self.url or self.note[:60]


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    # Closed without a decision: the review was decided by quorum or withdrawn meanwhile.
    VOID = "void", "Void"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class Approval(models.Model):
    review = models.ForeignKey(GateReview, on_delete=models.CASCADE, related_name="approvals")
    role = models.CharField(max_length=20, choices=GateRole.choices)
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="gate_approvals"
    )
    status = models.CharField(
        max_length=10, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    comment = models.TextField(blank=True, validators=[validate_no_nul])
    # The outcome a rejecting approver chose (recycle, hold, kill).
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    # Who actually decided: the approver, or their deputy (then both names are on record).
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField()
    # When the deadline sweep next looks at it: first the reminder (due_at less the reminder
    # lead), then the escalation (due_at), then never (null). Stored so the sweep reads only
    # what is due, not every pending approval.
    remind_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["review_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["review", "role"], name="approval_one_per_role"),
            models.CheckConstraint(
                condition=Q(status__in=ApprovalStatus.values), name="approval_status_valid"
            ),
            models.CheckConstraint(
                condition=(
                    Q(status__in=[ApprovalStatus.PENDING, ApprovalStatus.VOID])
                    & Q(decided_by__isnull=True)
                )
                | (
                    Q(status__in=[ApprovalStatus.APPROVED, ApprovalStatus.REJECTED])
                    & Q(decided_by__isnull=False)
                    & Q(decided_at__isnull=False)
                ),
                name="approval_decision_recorded",
            ),
        ]
        indexes = [
            models.Index(
                fields=["due_at"],
                condition=Q(status=ApprovalStatus.PENDING),
                name="approval_pending_due_idx",
            ),
            models.Index(
                fields=["remind_at"],
                condition=Q(status=ApprovalStatus.PENDING),
                name="approval_pending_remind_idx",
            ),
            models.Index(
                fields=["approver"],
                condition=Q(status=ApprovalStatus.PENDING),
                name="approval_pending_approver_idx",
            ),
        ]
        triggers = [
            _decision_logged(
                name="decision_logged",
                field="status",
                decided=[ApprovalStatus.APPROVED, ApprovalStatus.REJECTED],
                event="approval_decided",
                by="approval_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} approval of review #{self.review_id}"

    @property
    def on_behalf(self) -> bool:
        return self.decided_by_id is not None and self.decided_by_id != self.approver_id


class AlertKind(models.TextChoices):
    REMINDER = "reminder", "Reminder before due"
    ESCALATION = "escalation", "Escalation after due"


class ApprovalAlert(models.Model):
    """One row per alert sent for an approval: the unique pair makes "once" a database fact
    for the reminder and escalation sweeps."""

    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["approval", "kind"], name="approvalalert_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for approval #{self.approval_id}"


class GateCondition(models.Model):
    """A condition an approver set on a Go; a gate-condition milestone once the gate opens."""

    review = models.ForeignKey(GateReview, on_delete=models.CASCADE, related_name="conditions")
    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="conditions")
    title = models.CharField(max_length=200, validators=[validate_single_line])
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    due_at = models.DateTimeField()
    milestone = models.OneToOneField(
        Milestone, on_delete=models.PROTECT, null=True, blank=True, related_name="gate_condition"
    )

    class Meta:
        ordering = ["review_id", "due_at", "id"]

    def __str__(self) -> str:
        return self.title


class EventKind(models.TextChoices):
    OPENED = "opened", "Opened"
    EVIDENCE_ATTACHED = "evidence_attached", "Evidence attached"
    SUBMITTED = "submitted", "Submitted"
    APPROVAL_DECIDED = "approval_decided", "Approval decided"
    REVIEW_DECIDED = "review_decided", "Review decided"
    WITHDRAWN = "withdrawn", "Withdrawn"


class ReviewEvent(AppendOnlyModel):
    """Append-only log of everything that happened to a review.

    The ORM refuses updates and deletes, and on PostgreSQL SQL does too (AppendOnlyModel).
    PROTECT keeps the review itself from being deleted under its history.
    """

    review = models.ForeignKey(GateReview, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=30, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    # For a deputy's decision: the approver they acted for.
    on_behalf_of = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approval = models.ForeignKey(
        Approval, on_delete=models.PROTECT, null=True, blank=True, related_name="events"
    )
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(AppendOnlyModel.Meta):
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["review", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} on review #{self.review_id}"


class ApprovalInbox(Approval):
    """The approver's inbox in the admin: pending approvals they can decide now."""

    class Meta:
        proxy = True
        verbose_name = "approval in my inbox"
        verbose_name_plural = "approvals inbox"
