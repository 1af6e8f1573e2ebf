"""programs' answer to ``notifications.audience``: an endpoint's owner is sent the events about
the initiatives they may see through the API (``selectors.initiatives_visible_to``)."""

from __future__ import annotations

from collections.abc import Set

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q

from programs import selectors


class ProgramsAudience:
    def sees_everything(self, user: str) -> Q:
        # The selectors' rule (superuser or PMO) as a condition, so the endpoints' read answers
        # it for every owner in the same statement.
        memberships = selectors.pmo_memberships(OuterRef(f"{user}_id"))
        # A deactivated account (someone who left, an integration switched off) sees nothing:
        # its endpoints are sent nothing about initiatives until someone active owns them.
        active = Q(**{f"{user}__is_active": True})
        return active & (Q(**{f"{user}__is_superuser": True}) | Q(Exists(memberships)))

    def visible(self, user_id: int, initiative_ids: Set[int]) -> set[int]:
        user = get_user_model()._default_manager.filter(pk=user_id, is_active=True).first()
        if user is None:
            return set()
        scope = selectors.initiatives_visible_to(user).filter(pk__in=initiative_ids)
        return set(scope.values_list("pk", flat=True))
