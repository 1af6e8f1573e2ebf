"""Creating an initiative and editing what it says about itself and who is accountable."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from gatekeeper.errors import ValidationFailed
from gatekeeper.types import User
from programs import events
from programs.models import BusinessUnit, Health, Initiative, RiskTier
from programs.selectors import stall_deadline
from programs.services._common import lock_initiative, require_open, require_perm
from programs.stages import Stage

# Fields a change form may edit; the stage, key and history never (they move only through the
# lifecycle services), and the ones that decide accountability or the approvers a gate needs
# only for PMO.
EDITABLE_FIELDS = frozenset(
    {
        "name",
        "summary",
        "target_workflow",
        "health",
        "sponsor",
        "delivery_lead",
        "business_owner",
        "business_unit",
        "risk_tier",
    }
)
# Sponsor and delivery lead may hold, cancel and prepare gate reviews, so naming them is PMO's
# call too, like the business owner.
PMO_ONLY_FIELDS = frozenset(
    {"business_owner", "business_unit", "risk_tier", "sponsor", "delivery_lead"}
)


def initiative_create(
    *,
    actor: User | None,
    name: str,
    business_unit: BusinessUnit,
    summary: str = "",
    key: str | None = None,
    business_owner: User | None = None,
    sponsor: User | None = None,
    delivery_lead: User | None = None,
    risk_tier: str = RiskTier.MEDIUM,
    target_workflow: str = "",
) -> Initiative:
    require_perm(actor, "programs.add_initiative", None)
    named = (business_owner, sponsor, delivery_lead)
    if any(person is not None for person in named) or risk_tier != RiskTier.MEDIUM:
        # The same PMO-only fields as on edit: who holds gate powers, how many approvers.
        require_perm(actor, "programs.reassign_initiative", None)
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = ["name is required"]
    if risk_tier not in RiskTier.values:
        errors["risk_tier"] = [f"must be one of {', '.join(RiskTier.values)}"]
    if key is not None and not key.strip():
        errors["key"] = ["key may not be blank"]
    if errors:
        raise ValidationFailed("The initiative has invalid fields.", errors=errors)
    try:
        with transaction.atomic():
            initiative = Initiative.objects.create(
                key=key or f"new-{uuid.uuid4().hex[:16]}",
                name=name.strip(),
                summary=summary,
                business_unit=business_unit,
                business_owner=business_owner,
                sponsor=sponsor,
                delivery_lead=delivery_lead,
                risk_tier=risk_tier,
                target_workflow=target_workflow,
                stage_entered_at=timezone.now(),
                stall_at=stall_deadline(Stage.PROPOSED, timezone.now()),
                created_by=actor,
            )
            if key is None:
                # The key derives from the primary key, which the database hands out race-free.
                initiative.key = f"AI-{initiative.pk:03d}"
                Initiative.objects.filter(pk=initiative.pk).update(key=initiative.key)
            events.initiative_created(initiative).emit()
    except IntegrityError as exc:
        raise ValidationFailed(
            f"An initiative with key {key!r} already exists.", errors={"key": ["already in use"]}
        ) from exc
    return initiative


def initiative_assign_owner(
    *, initiative: Initiative, actor: User | None, business_owner: User
) -> Initiative:
    with transaction.atomic():
        locked = lock_initiative(initiative, None)
        # The business owner approves G1 and G2: choosing them is PMO's call.
        require_perm(actor, "programs.reassign_initiative", locked)
        require_open(locked)
        previous = locked.business_owner_id
        locked.business_owner = business_owner
        locked.save(update_fields=["business_owner", "updated_at"])
        events.initiative_owner_assigned(locked, previous_owner_id=previous).emit()
    initiative.refresh_from_db()
    return initiative


def initiative_update(
    *, initiative: Initiative, actor: User | None, changes: dict[str, Any]
) -> Initiative:
    """Edit descriptive fields; refuses the stage, key and anything not in EDITABLE_FIELDS."""
    unknown = sorted(set(changes) - EDITABLE_FIELDS)
    if unknown:
        raise ValidationFailed(
            "These fields cannot be changed here.",
            errors={name: ["read-only"] for name in unknown},
        )
    errors: dict[str, list[str]] = {}
    if "name" in changes and not str(changes["name"] or "").strip():
        errors["name"] = ["required"]
    if "risk_tier" in changes and changes["risk_tier"] not in RiskTier.values:
        errors["risk_tier"] = [f"must be one of {', '.join(RiskTier.values)}"]
    if "health" in changes and changes["health"] not in Health.values:
        errors["health"] = [f"must be one of {', '.join(Health.values)}"]
    if errors:
        raise ValidationFailed("The initiative has invalid fields.", errors=errors)
    if not changes:
        return initiative
    with transaction.atomic():
        locked = lock_initiative(initiative, None)
        require_perm(actor, "programs.change_initiative", locked)
        if PMO_ONLY_FIELDS & set(changes):
            require_perm(actor, "programs.reassign_initiative", locked)
        require_open(locked)
        before = {name: _plain(getattr(locked, name)) for name in changes}
        for name, value in changes.items():
            setattr(locked, name, value)
        locked.save(update_fields=[*changes, "updated_at"])
        after = {name: _plain(getattr(locked, name)) for name in changes}
        events.initiative_updated(
            locked,
            changes={n: {"from": before[n], "to": after[n]} for n in changes},
            actor_id=getattr(actor, "pk", None),
        ).emit()
    initiative.refresh_from_db()
    return initiative


def _plain(value: Any) -> Any:
    return getattr(value, "pk", value)
