"""Object permissions for gates (the `rules` package, DESIGN.md §1 Roles).

Separation of duties (submitter never approves, service accounts never approve, nobody decides
twice) is checked in the services with a reason for each refusal; these rules only say who is
in the room at all.
"""

from __future__ import annotations

from typing import Any

import rules

from gates.selectors import principals_of
from programs.roles import APPROVERS, INTEGRATIONS, PMO

is_admin = rules.is_superuser
is_pmo = rules.is_group_member(PMO)
is_approver_group = rules.is_group_member(APPROVERS)
is_staff_member = rules.is_staff


def _initiative_of(obj: Any) -> Any:
    review = getattr(obj, "review", None)
    if review is not None:
        return review.initiative
    return getattr(obj, "initiative", obj)


def _review_of(obj: Any) -> Any:
    return getattr(obj, "review", obj)


@rules.predicate
def is_service_account(user: Any) -> bool:
    return bool(user.groups.filter(name=INTEGRATIONS).exists())


@rules.predicate
def no_object(user: Any, obj: Any) -> bool:
    return obj is None


@rules.predicate
def involved_in_initiative(user: Any, obj: Any) -> bool:
    initiative = _initiative_of(obj)
    if initiative is None:
        return False
    return user.pk in (
        initiative.business_owner_id,
        initiative.sponsor_id,
        initiative.delivery_lead_id,
    )


@rules.predicate
def assigned_to_approval(user: Any, obj: Any) -> bool:
    if obj is None or not hasattr(obj, "approver_id"):
        return False
    return obj.approver_id in principals_of(user)


@rules.predicate
def approver_of_review(user: Any, obj: Any) -> bool:
    review = _review_of(obj)
    if review is None or getattr(review, "pk", None) is None or not hasattr(review, "approvals"):
        return False
    return review.approvals.filter(approver_id__in=principals_of(user)).exists()


@rules.predicate
def is_self(user: Any, obj: Any) -> bool:
    return obj is not None and getattr(obj, "pk", None) == user.pk


@rules.predicate
def submitted_it(user: Any, obj: Any) -> bool:
    review = _review_of(obj)
    return review is not None and getattr(review, "submitted_by_id", None) == user.pk


may_prepare = is_admin | is_pmo | involved_in_initiative

rules.add_perm("gates.open_review", may_prepare)
rules.add_perm("gates.submit_review", may_prepare)
rules.add_perm("gates.withdraw_review", may_prepare | submitted_it)
rules.add_perm("gates.attach_evidence", may_prepare)
rules.add_perm("gates.decide_approval", assigned_to_approval & ~is_service_account)
rules.add_perm("gates.revise_template", is_admin | is_pmo)
rules.add_perm("gates.manage_approvers", is_admin | is_pmo)
rules.add_perm("gates.delegate", is_admin | is_pmo | is_self)

# Admin model permissions: reading is wide for staff; writes go through services.
may_see_review = is_admin | is_pmo | involved_in_initiative | approver_of_review
rules.add_perm("gates.view_gatereview", may_see_review | (no_object & is_staff_member))
rules.add_perm("gates.export_evidence_pack", may_see_review)
rules.add_perm("gates.view_gate", is_staff_member)
rules.add_perm("gates.view_gatetemplate", is_staff_member)
rules.add_perm("gates.change_gatetemplate", is_admin | is_pmo)
# The template form's inlines: edits there never touch these rows, they become the next version.
for _model in ("criterion", "approverrule"):
    rules.add_perm(f"gates.view_{_model}", is_staff_member)
    for _action in ("add", "change", "delete"):
        rules.add_perm(f"gates.{_action}_{_model}", is_admin | is_pmo)
rules.add_perm(
    "gates.view_approval",
    is_admin | is_pmo | assigned_to_approval | (no_object & is_staff_member),
)
rules.add_perm("gates.view_approvalinbox", is_staff_member)
rules.add_perm("gates.view_gateapprover", is_admin | is_pmo)
rules.add_perm("gates.add_gateapprover", is_admin | is_pmo)
rules.add_perm("gates.change_gateapprover", is_admin | is_pmo)
rules.add_perm("gates.delete_gateapprover", is_admin | is_pmo)
rules.add_perm("gates.view_delegation", is_admin | is_pmo | is_approver_group)
