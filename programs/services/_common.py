"""What every programs service does before it writes: lock, check the right, validate input."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import DecimalValidator
from django.db import transaction
from django.db.models import QuerySet

from gatekeeper.compiled import CompiledRead, Param
from gatekeeper.errors import Conflict, PermissionDenied, TransitionRefused, ValidationFailed
from gatekeeper.types import User
from programs.models import METRIC_DIGITS, Initiative
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


_JOINED = ("business_unit", "business_owner", "sponsor", "delivery_lead")


def _drop_stale_joins(locked: Initiative) -> None:
    """Forget joined rows that don't match the locked row's foreign keys.

    When the lock had to wait for a concurrent change, PostgreSQL re-reads the locked row but
    keeps the joined rows it read before waiting: an owner changed meanwhile would come back as
    the old person. The ids on the locked row are current, so a mismatch is detectable for free;
    dropping the cached object makes Django load the right one if it is used.
    """
    for name in _JOINED:
        field = Initiative._meta.get_field(name)
        current = getattr(locked, field.attname)  # type: ignore[union-attr]
        cached = field.get_cached_value(locked, default=None)  # type: ignore[union-attr]
        if getattr(cached, "pk", None) != current:
            field.delete_cached_value(locked)  # type: ignore[union-attr]


def _lock() -> QuerySet[Initiative]:
    return (
        Initiative.objects.select_for_update(of=("self",))
        .select_related(*_JOINED)
        .filter(pk=Param("pk", Initiative._meta.pk))  # type: ignore[arg-type]
        .order_by()
    )


# Compiled once per connection (gatekeeper.compiled): every move starts with this statement.
_LOCK = CompiledRead(Initiative, _lock)


def lock_initiative(
    initiative: Initiative, expected_stage: str | None, *, held: bool = False
) -> Initiative:
    """The initiative's row, locked for this transaction; a Conflict if it left the stage the
    caller saw (``expected_stage``, else the stage of the instance the caller holds).

    ``held``: the caller already locked the row (``select_for_update``) in the transaction under
    way and hands over that instance; it is used as it is, without locking it a second time.
    """
    if held:
        if not transaction.get_connection().in_atomic_block:
            raise RuntimeError("a held initiative lock needs the transaction that took it")
        locked = initiative
    else:
        # Not get(): its LIMIT makes PostgreSQL plan the joins for a partial fetch, which costs
        # more than running this one-row statement (see gates.services._common.lock_review).
        rows = _LOCK(pk=initiative.pk)
        if not rows:
            raise Initiative.DoesNotExist(f"no initiative #{initiative.pk}")
        locked = rows[0]
        _drop_stale_joins(locked)
    expected = expected_stage if expected_stage is not None else initiative.stage
    if locked.stage != expected:
        raise Conflict(
            f"{locked.key} is in stage '{locked.stage}', not '{expected}': "
            "it was moved by someone else; reload and try again"
        )
    return locked


def reload_from(target: Initiative, source: Initiative) -> None:
    """``target.refresh_from_db()`` without the round trip: ``source`` is the same row as this
    transaction just locked, read and saved, so it holds what the database would return.

    Mirrors Django's ``refresh_from_db`` (fields, cached foreign keys, reverse caches) and
    django-fsm's (the state snapshot its concurrency check compares against).
    """
    target._prefetched_objects_cache = {}  # type: ignore[attr-defined]
    for field in Initiative._meta.concrete_fields:
        # A protected FSM field refuses an assignment over a value the instance already holds
        # (as in gatekeeper.db.SafeFSMModelMixin.refresh_from_db): take it out of the way first.
        target.__dict__.pop(field.attname, None)
        setattr(target, field.attname, getattr(source, field.attname))
        if field.is_relation:
            if field.is_cached(source):
                field.set_cached_value(target, field.get_cached_value(source))
            elif field.is_cached(target):
                field.delete_cached_value(target)
    for rel in Initiative._meta.related_objects:
        if rel.is_cached(target):
            rel.delete_cached_value(target)
    target._state.db = source._state.db
    target._state.adding = False
    target._update_initial_state()


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
    try:
        DecimalValidator(METRIC_DIGITS, 4)(number)
    except DjangoValidationError as exc:
        raise ValidationFailed(
            f"{field}: {exc.messages[0]}", errors={field: exc.messages}
        ) from None
    return number
