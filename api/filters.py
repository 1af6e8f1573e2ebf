"""Query filters for the list endpoints (django-filter); bad values are 400s, never 500s."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

from gates.models import Approval, ApprovalStatus, Evidence, GateReview, ReviewState
from programs.models import (
    ExternalReference,
    Initiative,
    MetricReading,
    Milestone,
    MilestoneStatus,
    RiskTier,
    StageTransition,
    SuccessMetric,
)
from programs.stages import Stage


def _split_ref(value: str) -> tuple[str, str]:
    system, sep, key = value.partition(":")
    if not sep or not system or not key:
        raise ValidationError({"external_ref": ["expected SYSTEM:KEY, e.g. JIRA:AIOPS-12"]})
    return system, key


def _by_user(prefix: str, value: str) -> Q:
    # A short all-digit value is an id; anything else a username.
    if value.isdigit() and len(value) <= 18:
        return Q(**{f"{prefix}_id": int(value)}) | Q(**{f"{prefix}__username": value})
    return Q(**{f"{prefix}__username": value})


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend, which builds a view's filter set (a copy of each filter, a bound
    form, its validation) only when the query string may name one of its filters. Without any,
    every filter's value is empty and the filter set returns the queryset as it is (no filter
    here is required or filters on an empty value), so the list reads the same without the cost.
    A parameter that merely starts like a filter's name (a range filter's ``_min``, say) counts
    as naming it."""

    def filter_queryset(self, request: Any, queryset: QuerySet[Any], view: Any) -> Any:
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        names = tuple(filterset_class.base_filters)
        if not any(param.startswith(names) for param in request.query_params):
            return queryset
        return super().filter_queryset(request, queryset, view)


class InitiativeFilter(django_filters.FilterSet):
    stage = django_filters.MultipleChoiceFilter(choices=Stage.choices)
    business_unit = django_filters.CharFilter(field_name="business_unit__code", max_length=32)
    owner = django_filters.CharFilter(
        method="filter_owner", max_length=150, help_text="Business owner: username or id."
    )
    risk_tier = django_filters.MultipleChoiceFilter(choices=RiskTier.choices)
    overdue = django_filters.BooleanFilter(
        method="filter_overdue", help_text="Has an open milestone past its due date."
    )
    stalled = django_filters.BooleanFilter(
        method="filter_stalled", help_text="Has stayed in its stage past the allowed time."
    )
    updated_since = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    external_ref = django_filters.CharFilter(
        method="filter_external_ref", max_length=150, help_text="SYSTEM:KEY, e.g. JIRA:AIOPS-12"
    )

    class Meta:
        model = Initiative
        fields: list[str] = []

    def filter_owner(self, qs: QuerySet[Initiative], name: str, value: str) -> Any:
        return qs.filter(_by_user("business_owner", value))

    def filter_overdue(self, qs: QuerySet[Initiative], name: str, value: bool | None) -> Any:
        overdue = Milestone.objects.filter(
            initiative=OuterRef("pk"), status=MilestoneStatus.OPEN, due_at__lt=timezone.now()
        )
        return qs.filter(Exists(overdue)) if value else qs.exclude(Exists(overdue))

    def filter_stalled(self, qs: QuerySet[Initiative], name: str, value: bool | None) -> Any:
        stalled = Q(stall_at__lte=timezone.now())
        return qs.filter(stalled) if value else qs.exclude(stalled)

    def filter_external_ref(self, qs: QuerySet[Initiative], name: str, value: str) -> Any:
        system, key = _split_ref(value)
        refs = ExternalReference.objects.filter(initiative=OuterRef("pk"), system=system, key=key)
        return qs.filter(Exists(refs))


class MilestoneFilter(django_filters.FilterSet):
    initiative = django_filters.CharFilter(field_name="initiative__key", max_length=20)
    status = django_filters.MultipleChoiceFilter(choices=MilestoneStatus.choices)
    owner = django_filters.CharFilter(method="filter_owner", max_length=150)
    overdue = django_filters.BooleanFilter(method="filter_overdue")
    external_ref = django_filters.CharFilter(
        method="filter_external_ref", max_length=150, help_text="SYSTEM:KEY, e.g. JIRA:AIOPS-12"
    )

    class Meta:
        model = Milestone
        fields: list[str] = []

    def filter_owner(self, qs: QuerySet[Milestone], name: str, value: str) -> Any:
        return qs.filter(_by_user("owner", value))

    def filter_overdue(self, qs: QuerySet[Milestone], name: str, value: bool | None) -> Any:
        overdue = Q(status=MilestoneStatus.OPEN, due_at__lt=timezone.now())
        return qs.filter(overdue) if value else qs.exclude(overdue)

    def filter_external_ref(self, qs: QuerySet[Milestone], name: str, value: str) -> Any:
        system, key = _split_ref(value)
        return qs.filter(external_system=system, external_key=key)


class MetricFilter(django_filters.FilterSet):
    initiative = django_filters.CharFilter(field_name="initiative__key", max_length=20)

    class Meta:
        model = SuccessMetric
        fields: list[str] = []


class ReadingFilter(django_filters.FilterSet):
    measured_since = django_filters.IsoDateTimeFilter(field_name="measured_at", lookup_expr="gte")

    class Meta:
        model = MetricReading
        fields: list[str] = []


class StageTransitionFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = StageTransition
        fields: list[str] = []


class GateReviewFilter(django_filters.FilterSet):
    initiative = django_filters.CharFilter(field_name="initiative__key", max_length=20)
    gate = django_filters.CharFilter(field_name="gate__code", max_length=4)
    state = django_filters.MultipleChoiceFilter(choices=ReviewState.choices)

    class Meta:
        model = GateReview
        fields: list[str] = []


class ApprovalFilter(django_filters.FilterSet):
    review = django_filters.NumberFilter(field_name="review_id", min_value=1, max_value=2**62)
    initiative = django_filters.CharFilter(field_name="review__initiative__key", max_length=20)
    status = django_filters.MultipleChoiceFilter(choices=ApprovalStatus.choices)
    approver = django_filters.CharFilter(method="filter_approver", max_length=150)

    class Meta:
        model = Approval
        fields: list[str] = []

    def filter_approver(self, qs: QuerySet[Approval], name: str, value: str) -> Any:
        return qs.filter(_by_user("approver", value))


class EvidenceFilter(django_filters.FilterSet):
    review = django_filters.NumberFilter(field_name="review_id", min_value=1, max_value=2**62)
    criterion = django_filters.CharFilter(field_name="criterion__code", max_length=60)

    class Meta:
        model = Evidence
        fields: list[str] = []
