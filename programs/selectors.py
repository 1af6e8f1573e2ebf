"""Reads, scoped to what the caller may see (DESIGN.md §1 Roles)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from programs.models import (
    Initiative,
    MetricReading,
    Milestone,
    StageTransition,
    SuccessMetric,
)
from programs.roles import PMO


def _sees_everything(user: Any) -> bool:
    return bool(user.is_superuser or user.groups.filter(name=PMO).exists())


def initiatives_visible_to(user: Any) -> QuerySet[Initiative]:
    qs = Initiative.objects.select_related("business_unit", "business_owner")
    if not user.is_authenticated:
        return qs.none()
    if _sees_everything(user):
        return qs
    return qs.filter(
        Q(business_owner=user) | Q(sponsor=user) | Q(delivery_lead=user) | Q(milestones__owner=user)
    ).distinct()


def milestones_visible_to(user: Any) -> QuerySet[Milestone]:
    qs = Milestone.objects.select_related("initiative", "owner")
    if not user.is_authenticated:
        return qs.none()
    if _sees_everything(user):
        return qs
    return qs.filter(
        Q(owner=user)
        | Q(initiative__business_owner=user)
        | Q(initiative__sponsor=user)
        | Q(initiative__delivery_lead=user)
    )


# --- API reads (appended for api/) ---------------------------------------------------------


def metrics_visible_to(user: Any) -> QuerySet[SuccessMetric]:
    return SuccessMetric.objects.select_related("initiative").filter(
        initiative__in=initiatives_visible_to(user).values("pk")
    )


def readings_visible_to(user: Any) -> QuerySet[MetricReading]:
    return MetricReading.objects.select_related("metric", "recorded_by").filter(
        metric__initiative__in=initiatives_visible_to(user).values("pk")
    )


def stage_transitions_visible_to(user: Any) -> QuerySet[StageTransition]:
    return StageTransition.objects.select_related("initiative", "actor").filter(
        initiative__in=initiatives_visible_to(user).values("pk")
    )


@dataclass(frozen=True)
class TransitionOption:
    name: str
    target: str
    permitted: bool
    unmet: list[str]

    @property
    def allowed(self) -> bool:
        return self.permitted and not self.unmet


def transitions_for(*, initiative: Initiative, user: Any) -> list[TransitionOption]:
    """What ``user`` may do to the initiative now: each move from its stage, with every reason it
    can't run yet, including the caller's own lack of the right to move it."""
    from programs import services as programs_services  # services may read selectors

    permitted = bool(user.has_perm("programs.change_stage", initiative))
    options = []
    for name, unmet in programs_services.available_transitions(initiative).items():
        spec = getattr(initiative, name)._django_fsm.get_transition(initiative.stage)
        target = spec.target if isinstance(spec.target, str) else initiative.held_from
        reasons = list(unmet)
        if not permitted:
            reasons.insert(0, f"you may not {name.replace('_', ' ')} {initiative.key}")
        options.append(TransitionOption(name, target or "", permitted, reasons))
    return options
