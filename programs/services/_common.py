"""What every programs service does before it writes: lock, check the right, validate input."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from gatekeeper.errors import Conflict, PermissionDenied, TransitionRefused, ValidationFailed
from gatekeeper.types import User
from programs.models import Initiative
from programs.stages import TERMINAL_STAGES


def require_perm(actor: User | None, perm: str, obj: Any) -> None:
    """Refuse unless ``actor`` holds ``perm`` on ``obj``; None (the system) always may."""
    if actor is None:
        return
    if not actor.has_perm(perm, obj):
        raise PermissionDenied(f"{actor} may not do this ({perm}) on {obj}")


def require_reason(reason: str, what: str) -> None:
    """``what`` completes "A reason is required to ...", e.g. "cancel an initiative"."""
    if not reason.strip():
        raise ValidationFailed(f"A reason is required to {what}.", errors={"reason": ["required"]})


def require_open(initiative: Initiative) -> None:
    """Refuse changes to a cancelled or retired initiative."""
    if initiative.stage in TERMINAL_STAGES:
        raise TransitionRefused(
            f"{initiative.key} is {initiative.stage}", unmet=["the initiative is closed"]
        )


def lock_initiative(initiative: Initiative, expected_stage: str | None) -> Initiative:
    """The initiative's row, locked for this transaction; a Conflict if it left the stage the
    caller saw (``expected_stage``, else the stage of the instance the caller holds)."""
    locked = (
        Initiative.objects.select_for_update(of=("self",))
        .select_related("business_unit", "business_owner", "sponsor", "delivery_lead")
        .get(pk=initiative.pk)
    )
    expected = expected_stage if expected_stage is not None else initiative.stage
    if locked.stage != expected:
        raise Conflict(
            f"{locked.key} is in stage '{locked.stage}', not '{expected}': "
            "it was moved by someone else; reload and try again"
        )
    return locked


def parse_decimal(value: Any, field: str) -> Decimal | None:
    """``value`` as a finite Decimal; None for blank; a ValidationFailed naming ``field``."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValidationFailed(
            f"{field} is not a number", errors={field: ["not a number"]}
        ) from None
    if not number.is_finite():
        raise ValidationFailed(f"{field} must be finite", errors={field: ["must be finite"]})
    return number
