"""Object permissions for initiatives (the `rules` package, DESIGN.md §1 Roles)."""

from __future__ import annotations

from typing import Any

import rules

from programs.roles import BUSINESS_OWNERS, INTEGRATIONS, PMO

is_pmo = rules.is_group_member(PMO)
is_business_owner_group = rules.is_group_member(BUSINESS_OWNERS)
is_integration = rules.is_group_member(INTEGRATIONS)


def _initiative_of(obj: Any) -> Any:
    return getattr(obj, "initiative", obj)


@rules.predicate
def owns_initiative(user: Any, obj: Any) -> bool:
    initiative = _initiative_of(obj)
    return initiative is not None and initiative.business_owner_id == user.pk


@rules.predicate
def sponsors_or_leads(user: Any, obj: Any) -> bool:
    initiative = _initiative_of(obj)
    return initiative is not None and user.pk in (
        initiative.sponsor_id,
        initiative.delivery_lead_id,
    )


@rules.predicate
def owns_milestone(user: Any, obj: Any) -> bool:
    return getattr(obj, "owner_id", None) == user.pk


@rules.predicate
def in_service_scope(user: Any, obj: Any) -> bool:
    """The same scope as the selectors give a service account: initiatives it created, and those
    of a business unit it is a member of. What it can't see, it can't act on."""
    initiative = _initiative_of(obj)
    if initiative is None:
        return False
    return bool(
        initiative.created_by_id == user.pk
        or user.business_units.filter(pk=initiative.business_unit_id).exists()
    )


@rules.predicate
def no_object(user: Any, obj: Any) -> bool:
    """Asked "may they view/change some initiatives?" (admin index) rather than a given one."""
    return obj is None


is_admin = rules.is_superuser
involved = owns_initiative | sponsors_or_leads
is_staff_member = rules.is_staff
service_scoped = is_integration & in_service_scope

rules.add_perm(
    "programs.add_initiative", is_admin | is_pmo | is_business_owner_group | is_integration
)
rules.add_perm(
    "programs.view_initiative",
    is_admin | is_pmo | involved | service_scoped | (no_object & is_staff_member),
)
# Service accounts create initiatives and close milestones from tickets; they never edit an
# initiative (they could otherwise name themselves sponsor and gain its decisions).
rules.add_perm(
    "programs.change_initiative",
    is_admin | is_pmo | involved | (no_object & is_staff_member),
)
rules.add_perm(
    "programs.view_milestone",
    is_admin | is_pmo | involved | owns_milestone | service_scoped | (no_object & is_staff_member),
)
rules.add_perm(
    "programs.view_stagetransition",
    is_admin | is_pmo | involved | service_scoped | (no_object & is_staff_member),
)
# Hold, resume, cancel and retire are business decisions: not for service accounts.
rules.add_perm("programs.change_stage", is_admin | is_pmo | owns_initiative | sponsors_or_leads)
# Metric definitions are edited on the initiative's page by whoever may change the initiative
# (metric_update additionally keeps post-G1 baselines and targets for PMO).
for _action in ("add", "change"):
    rules.add_perm(
        f"programs.{_action}_successmetric",
        is_admin | is_pmo | involved | (no_object & is_staff_member),
    )
rules.add_perm(
    "programs.view_successmetric",
    is_admin | is_pmo | involved | service_scoped | (no_object & is_staff_member),
)

# Who is accountable (business owner, unit) and how risky it is (which approvers a gate needs).
rules.add_perm("programs.reassign_initiative", is_admin | is_pmo)
# A service account's unit memberships are its scope (in_service_scope above), so only PMO
# grants or takes them away.
rules.add_perm("programs.change_unit_membership", is_admin | is_pmo)
rules.add_perm("programs.add_milestone", is_admin | is_pmo | is_business_owner_group)
rules.add_perm(
    "programs.change_milestone",
    is_admin | is_pmo | involved | owns_milestone | (no_object & is_staff_member),
)
# Marking done is what a ticket closing does, so service accounts may do that much, within
# their scope (the initiatives the selectors show them).
rules.add_perm(
    "programs.complete_milestone",
    is_admin | is_pmo | involved | owns_milestone | service_scoped,
)
# A Conditional Go's conditions bind the people they name: only PMO may waive or move one.
rules.add_perm("programs.override_gate_condition", is_admin | is_pmo)
