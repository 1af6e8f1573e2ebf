"""Representations of what selectors return, and validated inputs for the actions.

No serializer here saves anything: output serializers are read-only, input serializers only
validate and hand plain values to a service (DESIGN.md §2: the API holds no rule of its own).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.validators import ProhibitNullCharactersValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from gatekeeper.db import related_values_reader
from gates.models import (
    Approval,
    ApproverRule,
    Criterion,
    Decision,
    Evidence,
    GateReview,
    GateTemplate,
    Outcome,
)
from notifications.models import WebhookEndpoint
from programs.models import (
    METRIC_DIGITS,
    BusinessUnit,
    Direction,
    ExternalReference,
    Health,
    Initiative,
    MetricReading,
    Milestone,
    RiskTier,
    StageTransition,
    SuccessMetric,
    metric_on_target,
)
from programs.selectors import (
    external_refs_of,
    metrics_of,
    next_milestone_of,
    next_milestone_reader,
)
from programs.stages import Stage

# --- shared fields ----------------------------------------------------------------------------


class SafeSlugRelatedField(serializers.SlugRelatedField):  # type: ignore[type-arg]
    """Odd input (NUL, non-strings, too long) is a 400 here, never a database error."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str) or not data or len(data) > 150 or "\x00" in data:
            self.fail("invalid")
        return super().to_internal_value(data)


class Username(SafeSlugRelatedField):
    """A user named by username."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("slug_field", "username")
        if not kwargs.get("read_only"):
            kwargs.setdefault("queryset", get_user_model().objects.filter(is_active=True))
        super().__init__(**kwargs)


def _username(*, null: bool = False) -> Any:
    # ``null`` for nullable foreign keys, so the schema admits the nulls the responses carry.
    return Username(read_only=True, allow_null=null)


def _blank_or(choices: Any) -> Any:
    """A read-only choice that is blank until set: declared, because a read-only model field
    loses ``allow_blank`` and the schema would then refuse the blank the response carries."""
    return serializers.ChoiceField(choices=choices, allow_blank=True, read_only=True)


class Text(serializers.CharField):
    """Free text with a length cap (a body the size of a novel is refused, not stored)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 5000)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("trim_whitespace", True)
        super().__init__(**kwargs)
        if not any(isinstance(v, ProhibitNullCharactersValidator) for v in self.validators):
            self.validators.append(ProhibitNullCharactersValidator())


class SelectedList(serializers.ListSerializer):  # type: ignore[type-arg]
    """A nested read-only list that a selector reads from the object (``read(obj)``) instead of
    an attribute. Declared, unlike a SerializerMethodField building a serializer per call, its
    child serializer and that child's fields are built once per response, not once per row."""

    def __init__(self, *args: Any, read: Callable[[Any], Iterable[Any]], **kwargs: Any) -> None:
        self.read = read
        super().__init__(*args, **kwargs)

    def get_attribute(self, instance: Any) -> Any:
        return self.read(instance)


# --- initiatives --------------------------------------------------------------------------------


class ExternalRefSerializer(serializers.Serializer):  # type: ignore[type-arg]
    system = serializers.CharField(read_only=True)
    key = serializers.CharField(read_only=True)
    url = serializers.CharField(read_only=True)


class InitiativeMetricSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    """A success metric as its initiative lists it: where it started, where it must get, where
    it is now."""

    on_target = serializers.BooleanField(read_only=True, allow_null=True)

    class Meta:
        model = SuccessMetric
        fields = [
            "id",
            "name",
            "unit",
            "baseline",
            "target",
            "direction",
            "current_value",
            "measured_at",
            "on_target",
        ]
        read_only_fields = fields


class NextMilestoneSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """The open milestone due first; null when none is open. No "overdue" flag: the
    representation (and so its ETag) changes when the data does, not when the clock passes
    `due_at`."""

    id = serializers.IntegerField(read_only=True)
    title = serializers.CharField(read_only=True)
    stage = serializers.ChoiceField(choices=Stage.choices, read_only=True)
    due_at = serializers.DateTimeField(read_only=True)
    owner = serializers.CharField(read_only=True)

    def get_attribute(self, instance: Initiative) -> dict[str, Any] | None:
        return next_milestone_of(instance)


class InitiativeSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    business_unit = serializers.SlugRelatedField(slug_field="code", read_only=True)  # type: ignore[var-annotated]
    business_owner = _username(null=True)
    sponsor = _username(null=True)
    delivery_lead = _username(null=True)
    # Both lists come with the initiative's own row (programs.selectors.with_refs_and_metrics),
    # not from a prefetch query per relation.
    external_refs = SelectedList(
        child=ExternalRefSerializer(read_only=True), read=external_refs_of, read_only=True
    )
    held_from = _blank_or(Stage.choices)  # set only while on hold
    metrics = SelectedList(
        child=InitiativeMetricSerializer(read_only=True), read=metrics_of, read_only=True
    )
    # Declared, not a SerializerMethodField building a serializer per row.
    next_milestone = NextMilestoneSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Initiative
        fields = [
            "key",
            "name",
            "summary",
            "business_unit",
            "business_owner",
            "sponsor",
            "delivery_lead",
            "risk_tier",
            "target_workflow",
            "stage",
            "held_from",
            "stage_entered_at",
            "stall_at",
            "health",
            "external_refs",
            "metrics",
            "next_milestone",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


# The list's rows, read as plain values: what InitiativeSerializer gives for each initiative of
# a page, without building a model instance and walking DRF's fields per row (50 rows of 19
# fields with nested lists cost more than the page's SQL). InitiativeSerializer stays the
# contract: it documents the schema and represents one initiative (detail, writes, ETags), and
# tests/api/test_initiative_list.py holds these rows equal to it, field by field, in every shape.
INITIATIVE_LIST_COLUMNS = (
    "key",
    "name",
    "summary",
    "business_unit__code",
    "business_owner__username",
    "sponsor__username",
    "delivery_lead__username",
    "risk_tier",
    "target_workflow",
    "stage",
    "held_from",
    "stage_entered_at",
    "stall_at",
    "health",
    "external_refs_json",
    "metrics_json",
    "next_milestone_json",
    "created_at",
    "updated_at",
)
_REF_FIELDS = ("system", "key", "url")
# The stored columns the metric serializer shows; on_target is computed from them.
_METRIC_VALUES = tuple(f for f in InitiativeMetricSerializer.Meta.fields if f != "on_target")


@cache
def _metric_decimals() -> dict[str, Any]:
    # The metric serializer's own decimal fields (digits, places, rounding, string or not),
    # built once per process: their to_representation holds no per-request state.
    fields = InitiativeMetricSerializer().fields
    return {n: fields[n] for n in ("baseline", "target", "current_value")}


def _datetime_representation() -> Callable[[Any], Any]:
    """DRF's DateTimeField.to_representation (ISO 8601 in the current time zone, UTC as "Z"),
    with the zone read once for the page rather than per value."""
    zone = timezone.get_current_timezone() if settings.USE_TZ else None
    drf = serializers.DateTimeField(default_timezone=zone).to_representation
    if zone is None or api_settings.DATETIME_FORMAT != ISO_8601:
        return drf  # type: ignore[no-any-return]

    def stamp(value: Any) -> Any:
        # An aware datetime, what the database gives with USE_TZ, the way DRF writes it;
        # anything else as DRF writes it.
        if not isinstance(value, dt.datetime) or value.utcoffset() is None:
            return drf(value)
        try:
            text = value.astimezone(zone).isoformat()
        except OverflowError:
            return drf(value)  # DRF's own error for it
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return stamp


def initiative_list_rows(rows: Iterable[tuple[Any, ...]], *, db: str) -> list[dict[str, Any]]:
    """InitiativeSerializer's representation of each row of ``INITIATIVE_LIST_COLUMNS`` (a
    page of ``with_refs_and_metrics(with_next_milestone(...))`` read by ``values_list``,
    from database ``db``)."""
    stamp = _datetime_representation()
    decimals = _metric_decimals()
    baseline, target, current = (
        decimals["baseline"].to_representation,
        decimals["target"].to_representation,
        decimals["current_value"].to_representation,
    )
    read_refs = related_values_reader(ExternalReference, db=db, names=_REF_FIELDS)
    read_metrics = related_values_reader(SuccessMetric, db=db, names=_METRIC_VALUES)
    read_next = next_milestone_reader(db=db)
    page = []
    for (
        key,
        name,
        summary,
        unit,
        owner,
        sponsor,
        lead,
        risk_tier,
        workflow,
        stage,
        held_from,
        entered,
        stall_at,
        health,
        refs,
        metrics,
        upcoming,
        created,
        updated,
    ) in rows:
        page.append(
            {
                "key": key,
                "name": name,
                "summary": summary,
                "business_unit": unit,
                "business_owner": owner,
                "sponsor": sponsor,
                "delivery_lead": lead,
                "risk_tier": risk_tier,
                "target_workflow": workflow,
                "stage": stage,
                "held_from": held_from,
                "stage_entered_at": None if entered is None else stamp(entered),
                "stall_at": None if stall_at is None else stamp(stall_at),
                "health": health,
                "external_refs": read_refs(refs),
                "metrics": [
                    {
                        "id": m["id"],
                        "name": m["name"],
                        "unit": m["unit"],
                        "baseline": None if m["baseline"] is None else baseline(m["baseline"]),
                        "target": None if m["target"] is None else target(m["target"]),
                        "direction": m["direction"],
                        "current_value": (
                            None if m["current_value"] is None else current(m["current_value"])
                        ),
                        "measured_at": (
                            None if m["measured_at"] is None else stamp(m["measured_at"])
                        ),
                        "on_target": metric_on_target(
                            m["current_value"], m["target"], m["direction"]
                        ),
                    }
                    for m in read_metrics(metrics)
                ],
                "next_milestone": None
                if (nxt := read_next(upcoming)) is None
                else {
                    "id": nxt["id"],
                    "title": nxt["title"],
                    "stage": nxt["stage"],
                    "due_at": None if nxt["due_at"] is None else stamp(nxt["due_at"]),
                    "owner": nxt["owner"],
                },
                "created_at": None if created is None else stamp(created),
                "updated_at": None if updated is None else stamp(updated),
            }
        )
    return page


class MetricReadingSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    recorded_by = _username(null=True)

    class Meta:
        model = MetricReading
        fields = ["id", "metric", "value", "measured_at", "recorded_by", "recorded_at"]
        read_only_fields = fields


class SuccessMetricSerializer(InitiativeMetricSerializer):
    """A success metric on its own, naming its initiative."""

    initiative = serializers.SlugRelatedField(slug_field="key", read_only=True)  # type: ignore[var-annotated]

    class Meta(InitiativeMetricSerializer.Meta):
        fields = [
            "id",
            "initiative",
            *(f for f in InitiativeMetricSerializer.Meta.fields if f != "id"),
        ]
        read_only_fields = fields


class MilestoneSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    initiative = serializers.SlugRelatedField(slug_field="key", read_only=True)  # type: ignore[var-annotated]
    owner = _username()
    completed_by = _username(null=True)

    class Meta:
        model = Milestone
        fields = [
            "id",
            "initiative",
            "stage",
            "title",
            "owner",
            "due_at",
            "status",
            "completed_at",
            "completed_by",
            "waive_reason",
            "is_gate_condition",
            "external_system",
            "external_key",
            "created_at",
        ]
        read_only_fields = fields


class StageTransitionSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    initiative = serializers.SlugRelatedField(slug_field="key", read_only=True)  # type: ignore[var-annotated]
    actor = _username(null=True)

    class Meta:
        model = StageTransition
        fields = [
            "id",
            "initiative",
            "transition",
            "from_stage",
            "to_stage",
            "actor",
            "reason",
            "gate_review_id",
            "created_at",
        ]
        read_only_fields = fields


class TransitionOptionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(read_only=True)
    target = serializers.CharField(read_only=True)
    permitted = serializers.BooleanField(
        read_only=True, help_text="Whether the caller has the right to make this move at all."
    )
    allowed = serializers.BooleanField(
        read_only=True, help_text="Permitted and no unmet condition."
    )
    unmet = serializers.ListField(child=serializers.CharField(), read_only=True)


class TransitionRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    transition = serializers.ChoiceField(
        choices=[
            "start_pilot",
            "start_integration",
            "start_hardening",
            "start_operations",
            "hold",
            "resume",
            "cancel",
            "retire",
        ]
    )
    reason = Text(required=False, default="")
    expected_stage = serializers.ChoiceField(
        choices=Initiative._meta.get_field("stage").choices,
        required=False,
        help_text="The stage the caller saw; if the initiative moved since, the answer is 409.",
    )


class ReasonSerializer(serializers.Serializer):  # type: ignore[type-arg]
    reason = Text()


class MetricReadingRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    value = serializers.DecimalField(max_digits=METRIC_DIGITS, decimal_places=4)
    measured_at = serializers.DateTimeField(required=False)


class ScopedInitiativeField(SafeSlugRelatedField):
    """An initiative by key, looked up only among those the view passes as ``initiatives``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("slug_field", "key")
        kwargs.setdefault("queryset", Initiative.objects.none())
        super().__init__(**kwargs)

    def get_queryset(self) -> Any:
        scoped = self.parent.context.get("initiatives") if self.parent is not None else None
        return scoped if scoped is not None else Initiative.objects.none()


class InitiativeCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Business owner, sponsor, delivery lead and a risk tier other than medium are PMO's to
    name: anyone else naming them is refused (403) by the service."""

    key = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,19}$",
        max_length=20,
        required=False,
        help_text="Optional stable key (letters, digits, '_', '.', '-'); default AI-<number>.",
    )
    name = Text(max_length=200, allow_blank=False)
    summary = Text(required=False, default="")
    business_unit = SafeSlugRelatedField(slug_field="code", queryset=BusinessUnit.objects.all())
    business_owner = Username(required=False, allow_null=True, default=None)
    sponsor = Username(required=False, allow_null=True, default=None)
    delivery_lead = Username(required=False, allow_null=True, default=None)
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices, default=RiskTier.MEDIUM)
    target_workflow = Text(required=False, default="")


class InitiativeUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Only the fields sent are changed. Any other field (key, stage, dates...) is refused with
    a 400 naming it; the people, unit and risk tier are PMO-only (403 for anyone else)."""

    name = Text(max_length=200, allow_blank=False, required=False)
    summary = Text(required=False)
    target_workflow = Text(required=False)
    health = serializers.ChoiceField(choices=Health.choices, required=False)
    business_unit = SafeSlugRelatedField(
        slug_field="code", queryset=BusinessUnit.objects.all(), required=False
    )
    business_owner = Username(required=False, allow_null=True)
    sponsor = Username(required=False, allow_null=True)
    delivery_lead = Username(required=False, allow_null=True)
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices, required=False)


class MetricCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    initiative = ScopedInitiativeField(help_text="Key of the initiative the metric measures.")
    name = Text(max_length=200, allow_blank=False)
    unit = Text(max_length=40, required=False, default="")
    baseline = serializers.DecimalField(
        max_digits=METRIC_DIGITS, decimal_places=4, required=False, allow_null=True, default=None
    )
    target = serializers.DecimalField(
        max_digits=METRIC_DIGITS, decimal_places=4, required=False, allow_null=True, default=None
    )
    direction = serializers.ChoiceField(choices=Direction.choices, default=Direction.HIGHER)


class MetricUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Once G1 has passed, only PMO may move the baseline, target or direction (403)."""

    name = Text(max_length=200, allow_blank=False, required=False)
    unit = Text(max_length=40, required=False)
    baseline = serializers.DecimalField(
        max_digits=METRIC_DIGITS, decimal_places=4, required=False, allow_null=True
    )
    target = serializers.DecimalField(
        max_digits=METRIC_DIGITS, decimal_places=4, required=False, allow_null=True
    )
    direction = serializers.ChoiceField(choices=Direction.choices, required=False)


class MilestoneCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    initiative = ScopedInitiativeField(help_text="Key of the initiative.")
    title = Text(max_length=200, allow_blank=False)
    owner = Username()
    due_at = serializers.DateTimeField()
    stage = serializers.ChoiceField(
        choices=Stage.choices, required=False, help_text="Default: the initiative's stage."
    )
    external_system = serializers.CharField(
        max_length=40, required=False, default="", allow_blank=True
    )
    external_key = serializers.CharField(
        max_length=100, required=False, default="", allow_blank=True
    )


class MilestoneUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Reschedule or reassign an open milestone; fields not sent keep their value. A gate
    condition's date or owner is PMO's to move (403)."""

    title = Text(max_length=200, allow_blank=False, required=False)
    owner = Username(required=False)
    due_at = serializers.DateTimeField(required=False)


class ReopenSerializer(serializers.Serializer):  # type: ignore[type-arg]
    reason = Text(required=False, default="")


# --- webhook endpoints ------------------------------------------------------------------------


class WebhookEndpointSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    owner = _username()

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "name",
            "url",
            "event_types",
            "is_active",
            "owner",
            "disabled_reason",
            "disabled_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    """The representation returned once, at creation: the only time the secret is shown."""

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointWriteSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = Text(max_length=120, allow_blank=False)
    url = serializers.CharField(
        max_length=500, help_text="http(s) URL on a public address (private ones are refused)."
    )
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=100),
        max_length=100,
        required=False,
        default=list,
        help_text='Event types, e.g. ["review.submitted", "milestone.*"]; empty: every type.',
    )


class WebhookEndpointUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = Text(max_length=120, allow_blank=False, required=False)
    url = serializers.CharField(max_length=500, required=False)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=100), max_length=100, required=False
    )
    is_active = serializers.BooleanField(
        required=False, help_text="false disables it (its owner is told); true re-enables it."
    )


# --- gates ----------------------------------------------------------------------------------------


class CriterionSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = Criterion
        fields = ["position", "code", "text", "kind", "required", "risk_tiers"]
        read_only_fields = fields


class ApproverRuleSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = ApproverRule
        fields = ["role", "risk_tiers"]
        read_only_fields = fields


class GateTemplateSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    gate = serializers.SlugRelatedField(slug_field="code", read_only=True)  # type: ignore[var-annotated]
    gate_name = serializers.CharField(source="gate.name", read_only=True)
    from_stage = serializers.CharField(source="gate.from_stage", read_only=True)
    to_stage = serializers.CharField(source="gate.to_stage", read_only=True)
    criteria = CriterionSerializer(many=True, read_only=True)
    approvers = ApproverRuleSerializer(many=True, read_only=True)

    class Meta:
        model = GateTemplate
        fields = [
            "id",
            "gate",
            "gate_name",
            "from_stage",
            "to_stage",
            "version",
            "quorum_policy",
            "quorum_n",
            "decision_sla_business_days",
            "expected_stage_days",
            "criteria",
            "approvers",
            "note",
            "created_at",
        ]
        read_only_fields = fields


class ChecklistEvidenceSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    url = serializers.CharField()
    note = serializers.CharField()
    attached_by = serializers.DictField(allow_null=True)
    attached_at = serializers.DateTimeField()
    carried_from_evidence_id = serializers.IntegerField(allow_null=True)


class ChecklistItemSerializer(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField()
    text = serializers.CharField()
    kind = serializers.CharField()
    required = serializers.BooleanField()  # type: ignore[assignment]
    satisfied = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())
    evidence = ChecklistEvidenceSerializer(many=True)


class GateReviewSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    initiative = serializers.SlugRelatedField(slug_field="key", read_only=True)  # type: ignore[var-annotated]
    gate = serializers.SlugRelatedField(slug_field="code", read_only=True)  # type: ignore[var-annotated]
    template_version = serializers.IntegerField(source="template.version", read_only=True)
    submitted_by = _username(null=True)
    outcome = _blank_or(Outcome.choices)
    risk_tier = _blank_or(RiskTier.choices)  # frozen at submission

    class Meta:
        model = GateReview
        fields = [
            "id",
            "initiative",
            "gate",
            "template_version",
            "state",
            "outcome",
            "risk_tier",
            "created_at",
            "submitted_by",
            "submitted_at",
            "decided_at",
            "decision_summary",
            "closed_reason",
        ]
        read_only_fields = fields


class GateReviewDetailSerializer(GateReviewSerializer):
    checklist = serializers.SerializerMethodField()

    class Meta(GateReviewSerializer.Meta):
        fields = [*GateReviewSerializer.Meta.fields, "checklist"]
        read_only_fields = fields

    @extend_schema_field(ChecklistItemSerializer(many=True))
    def get_checklist(self, review: GateReview) -> list[dict[str, Any]]:
        return list(self.context["checklist"])


class ReviewOpenSerializer(serializers.Serializer):  # type: ignore[type-arg]
    initiative = SafeSlugRelatedField(
        slug_field="key",
        queryset=Initiative.objects.none(),  # the view scopes it to the caller
        help_text="Key of the initiative; the review is for the gate out of its current stage.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        scoped = self.context.get("initiatives")
        if scoped is not None:
            self.fields["initiative"].queryset = scoped  # type: ignore[attr-defined]


class EvidenceSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    criterion = serializers.SlugRelatedField(slug_field="code", read_only=True)  # type: ignore[var-annotated]
    attached_by = _username()

    class Meta:
        model = Evidence
        fields = ["id", "review", "criterion", "url", "note", "attached_by", "attached_at"]
        read_only_fields = fields


class EvidenceAttachSerializer(serializers.Serializer):  # type: ignore[type-arg]
    criterion = serializers.SlugField(max_length=60, help_text="Code of an evidence criterion.")
    url = serializers.URLField(max_length=500, required=False, default="", allow_blank=True)
    note = Text(required=False, default="")


class ConditionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    title = Text(max_length=200, allow_blank=False)
    owner = Username()
    due_at = serializers.DateTimeField()


class ApprovalSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    review = serializers.PrimaryKeyRelatedField(read_only=True)  # type: ignore[var-annotated]
    initiative = serializers.CharField(source="review.initiative.key", read_only=True)
    gate = serializers.CharField(source="review.gate.code", read_only=True)
    approver = _username()
    decided_by = _username(null=True)
    outcome = _blank_or(Outcome.choices)

    class Meta:
        model = Approval
        fields = [
            "id",
            "review",
            "initiative",
            "gate",
            "role",
            "approver",
            "status",
            "outcome",
            "comment",
            "decided_by",
            "decided_at",
            "due_at",
        ]
        read_only_fields = fields


def approval_representation(approval: Approval) -> dict[str, Any]:
    """``ApprovalSerializer(approval).data``, written directly: what every deciding call
    answers. DRF builds a model serializer's fields anew for each response (each model field's
    class and arguments worked out, each declared field copied), which cost a decision about
    1.5 ms of CPU, more than the decision's own approval update. The serializer stays the
    contract (the schema, the reads); tests/api/test_approval_representation.py holds the two
    equal, value for value and byte for byte once rendered."""
    stamp = _datetime_representation()
    review = approval.review
    decided_by = approval.decided_by
    return {
        "id": approval.pk,
        "review": approval.review_id,
        "initiative": str(review.initiative.key),
        "gate": str(review.gate.code),
        "role": str(approval.role),
        "approver": approval.approver.username,
        "status": str(approval.status),
        "outcome": str(approval.outcome),
        "comment": str(approval.comment),
        "decided_by": None if decided_by is None else decided_by.username,
        "decided_at": None if approval.decided_at is None else stamp(approval.decided_at),
        "due_at": stamp(approval.due_at),
    }


class DecisionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    decision = serializers.ChoiceField(choices=Decision.choices)
    comment = Text(required=False, default="")
    outcome = serializers.ChoiceField(choices=Outcome.choices, required=False, allow_null=True)
    conditions = ConditionSerializer(many=True, required=False, default=list, max_length=50)  # type: ignore[call-arg]


# --- portfolio ----------------------------------------------------------------------------------


class StageCountsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for stage in Initiative._meta.get_field("stage").choices or []:
            self.fields[stage[0]] = serializers.IntegerField()


class UnitCountsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    business_unit = serializers.CharField()
    by_stage = StageCountsSerializer()


class ConversionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    entered_pilot = serializers.IntegerField()
    reached_operations = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)


class MedianDaysSerializer(serializers.Serializer):  # type: ignore[type-arg]
    proposed = serializers.FloatField(allow_null=True)
    pilot = serializers.FloatField(allow_null=True)
    integration = serializers.FloatField(allow_null=True)
    hardening = serializers.FloatField(allow_null=True)


class PortfolioSummarySerializer(serializers.Serializer):  # type: ignore[type-arg]
    generated_at = serializers.DateTimeField()
    total = serializers.IntegerField()
    by_stage = StageCountsSerializer()
    by_business_unit = UnitCountsSerializer(many=True)
    overdue = serializers.IntegerField(help_text="Initiatives with an open milestone past due.")
    stalled = serializers.IntegerField(help_text="Initiatives past their stage's allowed time.")
    median_days_in_stage = MedianDaysSerializer()
    pilot_to_operations = ConversionSerializer()
