"""Business unit memberships: where business owners come from, and a service account's scope."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from gatekeeper.types import User
from programs.models import BusinessUnit
from programs.services._common import require_perm


def business_unit_members_set(
    *, actor: User | None, user: User, units: Iterable[BusinessUnit]
) -> None:
    """Make ``user`` a member of exactly ``units`` (PMO only).

    For a service account this is its whole scope (``programs.rules.in_service_scope``,
    ``programs.selectors``): the one place any caller, such as the integrations admin, changes it.
    """
    require_perm(actor, "programs.change_unit_membership", None)
    with transaction.atomic():
        user.business_units.set(list(units))  # type: ignore[attr-defined]
