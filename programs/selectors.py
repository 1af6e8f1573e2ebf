"""Reads, scoped to what the caller may see (DESIGN.md §1 Roles)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from programs.models import Initiative, Milestone
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
