"""Initiatives, their success metrics and milestones, and the lifecycle (DESIGN.md §1).

Transition methods here only guard and change fields; services (programs/services/) lock the
row, call them, save, and write the transition record and outbox events.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import Q
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from gatekeeper.db import AppendOnlyModel, Guard, SafeFSMModelMixin, inserted_in_this_transaction
from gatekeeper.validators import validate_no_nul, validate_single_line
from programs import guards
from programs.stages import ACTIVE_STAGES, CANCELLABLE_STAGES, Stage


class BusinessUnit(models.Model):
    """A business line. Its members are the people a business owner must come from."""

    code = models.SlugField(max_length=32, unique=True, validators=[validate_single_line])
    name = models.CharField(max_length=120, unique=True, validators=[validate_single_line])
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="business_units"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class Health(models.TextChoices):
    GREEN = "green", "Green"
    AMBER = "amber", "Amber"
    RED = "red", "Red"


# On PostgreSQL no SQL moves an initiative without its record: it is born proposed, and at commit
# every change of stage must be explained by transition records written in the same transaction
# (a chain of them: an import may write the whole path and then set the stage once). Deferred,
# because the services save the initiative before they write the record.
_OPENS_PROPOSED = Guard(
    name="opens_proposed",
    operation=pgtrigger.Insert,
    when=pgtrigger.Before,
    condition=~pgtrigger.Q(new__stage=Stage.PROPOSED),
    func="""
        RAISE EXCEPTION 'initiative % must start in stage proposed, not %', NEW.key, NEW.stage
            USING ERRCODE = 'integrity_constraint_violation';
    """,
)
_STAGE_MOVE_RECORDED = Guard(
    name="stage_move_recorded",
    operation=pgtrigger.Update,
    when=pgtrigger.After,
    timing=pgtrigger.Deferred,
    condition=pgtrigger.Q(old__stage__df=pgtrigger.F("new__stage")),
    func=f"""
        IF NOT EXISTS (
            WITH RECURSIVE reached(stage) AS (
                SELECT OLD.stage::text
                UNION
                SELECT st.to_stage::text
                FROM programs_stagetransition st JOIN reached ON st.from_stage = reached.stage
                WHERE st.initiative_id = NEW.id AND {inserted_in_this_transaction("st")}
            )
            SELECT 1 FROM reached WHERE reached.stage = NEW.stage
        ) THEN
            RAISE EXCEPTION 'initiative % moved from % to % without a transition record',
                NEW.key, OLD.stage, NEW.stage
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NULL;
    """,  # noqa: S608 -- trigger DDL built from this module's constants, no input
)


class Initiative(ConcurrentTransitionMixin, SafeFSMModelMixin, models.Model):
    key = models.CharField(
        max_length=20,
        unique=True,
        help_text="Stable human key (AI-042) used by ticketing systems.",
        validators=[validate_single_line],
    )
    name = models.CharField(max_length=200, validators=[validate_single_line])
    summary = models.TextField(blank=True, validators=[validate_no_nul])
    business_unit = models.ForeignKey(
        BusinessUnit, on_delete=models.PROTECT, related_name="initiatives"
    )
    business_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="owned_initiatives",
    )
    sponsor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sponsored_initiatives",
    )
    delivery_lead = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="led_initiatives",
    )
    risk_tier = models.CharField(max_length=10, choices=RiskTier.choices, default=RiskTier.MEDIUM)
    target_workflow = models.TextField(
        blank=True,
        help_text="Which business process changes when this runs in operations.",
        validators=[validate_no_nul],
    )
    stage = FSMField(default=Stage.PROPOSED, choices=Stage.choices, protected=True, db_index=True)
    # Where `resume` returns to, and the clock of the stay it interrupted; set only while on
    # hold, so that resuming neither restarts the time in stage nor the stall deadline.
    held_from = models.CharField(max_length=20, choices=Stage.choices, blank=True)
    held_stage_entered_at = models.DateTimeField(null=True, blank=True)
    held_stall_at = models.DateTimeField(null=True, blank=True)
    stage_entered_at = models.DateTimeField()
    # When the stall sweep should call this initiative stalled: stage entry plus the time the
    # gate that opened the stage allows. Stored so the sweep reads only what is due.
    stall_at = models.DateTimeField(null=True, blank=True)
    health = models.CharField(max_length=10, choices=Health.choices, default=Health.GREEN)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=Q(stage__in=[s.value for s in Stage]), name="initiative_stage_valid"
            ),
            models.CheckConstraint(
                condition=(Q(stage=Stage.ON_HOLD) & ~Q(held_from=""))
                | (~Q(stage=Stage.ON_HOLD) & Q(held_from="")),
                name="initiative_held_from_only_on_hold",
            ),
            models.CheckConstraint(
                condition=Q(risk_tier__in=RiskTier.values), name="initiative_risk_tier_valid"
            ),
            models.CheckConstraint(
                condition=Q(health__in=Health.values), name="initiative_health_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["stage", "stage_entered_at"]),
            models.Index(
                fields=["stall_at"],
                condition=Q(stall_at__isnull=False),
                name="initiative_stall_idx",
            ),
        ]
        triggers = [_OPENS_PROPOSED, _STAGE_MOVE_RECORDED]

    def __str__(self) -> str:
        return f"{self.key} {self.name}"

    # --- lifecycle (pure: guard and change fields only) ----------------------------------------
    @transition(
        field=stage,
        source=Stage.PROPOSED,
        target=Stage.PILOT,
        conditions=[
            guards.has_business_owner,
            guards.has_metric_with_baseline_and_target,
            guards.gate_approved,
        ],
    )
    def start_pilot(self) -> None:
        """G1."""

    @transition(
        field=stage,
        source=Stage.PILOT,
        target=Stage.INTEGRATION,
        conditions=[guards.gate_approved],
    )
    def start_integration(self) -> None:
        """G2."""

    @transition(
        field=stage,
        source=Stage.INTEGRATION,
        target=Stage.HARDENING,
        conditions=[guards.gate_approved],
    )
    def start_hardening(self) -> None:
        """G3."""

    @transition(
        field=stage,
        source=Stage.HARDENING,
        target=Stage.OPERATIONS,
        conditions=[guards.gate_approved],
    )
    def start_operations(self) -> None:
        """G4."""

    @transition(field=stage, source=Stage.OPERATIONS, target=Stage.RETIRED)
    def retire(self) -> None:
        pass

    @transition(field=stage, source=list(ACTIVE_STAGES), target=Stage.ON_HOLD)
    def hold(self) -> None:
        self.held_from = self.stage
        self.held_stage_entered_at = self.stage_entered_at
        self.held_stall_at = self.stall_at

    @transition(
        field=stage,
        source=Stage.ON_HOLD,
        target=RETURN_VALUE(*ACTIVE_STAGES),
        conditions=[guards.knows_stage_to_resume],
    )
    def resume(self) -> str:
        back_to = self.held_from
        self.held_from = ""
        return back_to

    @transition(field=stage, source=list(CANCELLABLE_STAGES), target=Stage.CANCELLED)
    def cancel(self) -> None:
        self.held_from = ""
        self.held_stage_entered_at = None
        self.held_stall_at = None

    # Names of the forward (gated) transition out of each stage.
    FORWARD: ClassVar[dict[str, str]] = {
        Stage.PROPOSED: "start_pilot",
        Stage.PILOT: "start_integration",
        Stage.INTEGRATION: "start_hardening",
        Stage.HARDENING: "start_operations",
    }


class Direction(models.TextChoices):
    HIGHER = "higher", "Higher is better"
    LOWER = "lower", "Lower is better"


# Up to 99,999,999,999.9999: 15 significant digits, what a double holds exactly. SQLite (the
# embedded default) keeps a decimal as a double, so a value with more digits came back rounded,
# or not at all (reading 18 nines failed with InvalidOperation); with 15 every value the forms and
# the API accept is read back as written, on SQLite as on PostgreSQL.
METRIC_DIGITS = 15


class SuccessMetric(models.Model):
    initiative = models.ForeignKey(Initiative, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=200, validators=[validate_single_line])
    unit = models.CharField(max_length=40, blank=True, validators=[validate_single_line])
    baseline = models.DecimalField(
        max_digits=METRIC_DIGITS, decimal_places=4, null=True, blank=True
    )
    target = models.DecimalField(max_digits=METRIC_DIGITS, decimal_places=4, null=True, blank=True)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.HIGHER)
    current_value = models.DecimalField(
        max_digits=METRIC_DIGITS, decimal_places=4, null=True, blank=True
    )
    measured_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["initiative_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["initiative", "name"], name="metric_name_unique"),
            models.CheckConstraint(
                condition=Q(direction__in=Direction.values), name="metric_direction_valid"
            ),
            models.CheckConstraint(
                condition=Q(current_value__isnull=True) | Q(measured_at__isnull=False),
                name="metric_value_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name

    @property
    def on_target(self) -> bool | None:
        return metric_on_target(self.current_value, self.target, self.direction)


def metric_on_target(current_value: Any, target: Any, direction: str) -> bool | None:
    """Whether a metric's current value meets its target (None until both are known); also
    for a metric read as plain values, without its instance."""
    if current_value is None or target is None:
        return None
    if direction == Direction.HIGHER:
        return bool(current_value >= target)
    return bool(current_value <= target)


class MetricReading(models.Model):
    """History of recorded values; the metric keeps the latest for cheap reads."""

    metric = models.ForeignKey(SuccessMetric, on_delete=models.CASCADE, related_name="readings")
    value = models.DecimalField(max_digits=METRIC_DIGITS, decimal_places=4)
    measured_at = models.DateTimeField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["metric_id", "measured_at"]

    def __str__(self) -> str:
        return f"{self.value} at {self.measured_at:%Y-%m-%d}"


class MilestoneStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    WAIVED = "waived", "Waived"


class Milestone(models.Model):
    initiative = models.ForeignKey(Initiative, on_delete=models.CASCADE, related_name="milestones")
    stage = models.CharField(max_length=20, choices=Stage.choices)
    title = models.CharField(max_length=200, validators=[validate_single_line])
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="milestones"
    )
    due_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=MilestoneStatus.choices, default=MilestoneStatus.OPEN
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    waive_reason = models.TextField(blank=True, validators=[validate_no_nul])
    # A condition attached by a Conditional Go: the next gate stays closed while it is open.
    is_gate_condition = models.BooleanField(default=False)
    external_system = models.CharField(max_length=40, blank=True, validators=[validate_single_line])
    external_key = models.CharField(max_length=100, blank=True, validators=[validate_single_line])
    # Set when the linked ticket is deleted in its system: flagged for a person to decide, since
    # deleting a ticket says nothing about whether the work was done.
    external_deleted_at = models.DateTimeField(null=True, blank=True)
    # When the overdue sweep next looks at this milestone, and the alert level reached so far
    # (0 none, 1 owner alerted at due, 2 escalated); stored so sweeps read only what is due.
    next_alert_at = models.DateTimeField(null=True, blank=True)
    alert_level = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=MilestoneStatus.values), name="milestone_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status=MilestoneStatus.OPEN, completed_at__isnull=True)
                | (~Q(status=MilestoneStatus.OPEN) & Q(completed_at__isnull=False)),
                name="milestone_closed_has_completed_at",
            ),
            models.CheckConstraint(
                condition=~Q(status=MilestoneStatus.WAIVED) | ~Q(waive_reason=""),
                name="milestone_waived_has_reason",
            ),
            # 2 is MilestoneAlert.Level.ESCALATED (declared below), the last level there is.
            models.CheckConstraint(
                condition=Q(alert_level__lte=2),
                name="milestone_alert_level_known",
            ),
            models.UniqueConstraint(
                fields=["external_system", "external_key"],
                condition=~Q(external_key=""),
                name="milestone_external_ref_unique",
            ),
        ]
        indexes = [
            models.Index(
                fields=["due_at"],
                condition=Q(status=MilestoneStatus.OPEN),
                name="milestone_open_due_idx",
            ),
            models.Index(
                fields=["next_alert_at"],
                condition=Q(status=MilestoneStatus.OPEN),
                name="milestone_open_alert_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def is_overdue(self, now: Any) -> bool:
        return self.status == MilestoneStatus.OPEN and self.due_at < now


class ExternalReference(models.Model):
    """A ticket that stands for the initiative in Jira/ServiceNow; unique per system."""

    initiative = models.ForeignKey(
        Initiative, on_delete=models.CASCADE, related_name="external_refs"
    )
    system = models.CharField(max_length=40, validators=[validate_single_line])
    key = models.CharField(max_length=100, validators=[validate_single_line])
    url = models.URLField(blank=True, validators=[validate_single_line])

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["system", "key"], name="external_ref_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.system}:{self.key}"


class StageTransition(AppendOnlyModel):
    """Append-only record of every lifecycle move (who, when, from, to, why, which review).

    Refuses updates and deletes through the ORM, and on PostgreSQL in SQL too (AppendOnlyModel).
    """

    initiative = models.ForeignKey(Initiative, on_delete=models.PROTECT, related_name="transitions")
    transition = models.CharField(max_length=40, validators=[validate_single_line])
    from_stage = models.CharField(max_length=20, choices=Stage.choices)
    to_stage = models.CharField(max_length=20, choices=Stage.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    reason = models.TextField(blank=True, validators=[validate_no_nul])
    # Reference to gates.GateReview by id: programs may not import gates (DESIGN.md §2).
    gate_review_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta(AppendOnlyModel.Meta):
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["initiative", "created_at"])]

    def __str__(self) -> str:
        return f"{self.from_stage} → {self.to_stage}"


class MilestoneAlert(models.Model):
    """One row per alert level sent for a milestone's due date: the database, not the sweep,
    guarantees "once per level" however many sweeps race (CONVENTIONS.md §5)."""

    class Level(models.IntegerChoices):
        OVERDUE = 1, "Overdue (owner told)"
        ESCALATED = 2, "Escalated (business owner and PMO told)"

    milestone = models.ForeignKey(Milestone, on_delete=models.CASCADE, related_name="alerts")
    level = models.PositiveSmallIntegerField(choices=Level.choices)
    # Rescheduling a milestone starts its alerts over for the new date.
    due_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["milestone", "level", "due_at"], name="milestone_alert_once_per_level"
            )
        ]

    def __str__(self) -> str:
        return f"{self.milestone} level {self.level}"


class StallAlert(models.Model):
    """An initiative reported stalled, once per stay in a stage."""

    initiative = models.ForeignKey(Initiative, on_delete=models.CASCADE, related_name="stalls")
    stage = models.CharField(max_length=20, choices=Stage.choices)
    stage_entered_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["initiative", "stage_entered_at"], name="stall_alert_once_per_stay"
            )
        ]

    def __str__(self) -> str:
        return f"{self.initiative} stalled in {self.stage}"
