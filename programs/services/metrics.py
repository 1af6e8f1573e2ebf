"""Success metrics: defining what a gate judges an initiative against, and measuring it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from gatekeeper.errors import ValidationFailed
from gatekeeper.types import User
from programs import events
from programs.models import Direction, Initiative, MetricReading, SuccessMetric
from programs.services._common import (
    lock_initiative,
    parse_decimal,
    require_open,
    require_perm,
)
from programs.stages import Stage


def _check_direction(direction: str) -> None:
    if direction not in Direction.values:
        raise ValidationFailed(
            "Unknown direction.", errors={"direction": [f"one of {', '.join(Direction.values)}"]}
        )


# Units whose values are shares of a whole. Judged here, so the admin and the API agree.
_PERCENT_WORDS = frozenset({"percent", "percentage", "pct"})


def _is_percentage(unit: str) -> bool:
    words = unit.strip().lower().split()
    return unit.strip().startswith("%") or bool(words and words[0] in _PERCENT_WORDS)


def metric_values_check(*, unit: str, values: dict[str, Decimal | None]) -> None:
    """Refuse values ``unit`` cannot hold: a percentage lies between 0 and 100."""
    if not _is_percentage(unit):
        return
    wrong = {
        name: ["a percentage lies between 0 and 100"]
        for name, value in values.items()
        if value is not None and not Decimal(0) <= value <= Decimal(100)
    }
    if wrong:
        raise ValidationFailed(f"{unit!r} is a percentage: 0 to 100.", errors=wrong)


def metric_add(
    *,
    initiative: Initiative,
    actor: User | None,
    name: str,
    unit: str = "",
    baseline: Any = None,
    target: Any = None,
    direction: str = Direction.HIGHER,
) -> SuccessMetric:
    if not name.strip():
        raise ValidationFailed("A metric needs a name.", errors={"name": ["required"]})
    _check_direction(direction)
    numbers = {
        "baseline": parse_decimal(baseline, "baseline"),
        "target": parse_decimal(target, "target"),
    }
    metric_values_check(unit=unit, values=numbers)
    try:
        with transaction.atomic():
            locked = lock_initiative(initiative, None)
            require_perm(actor, "programs.change_initiative", locked)
            require_open(locked)
            return SuccessMetric.objects.create(
                initiative=locked,
                name=name.strip(),
                unit=unit,
                **numbers,
                direction=direction,
            )
    except IntegrityError as exc:
        raise ValidationFailed(
            f"{initiative.key} already has a metric named {name!r}.",
            errors={"name": ["already exists for this initiative"]},
        ) from exc


def metric_update(
    *, metric: SuccessMetric, actor: User | None, changes: dict[str, Any]
) -> SuccessMetric:
    """Edit a metric's definition. Once G1 has passed, the baseline and target are what the
    gate judged the pilot against: only PMO may move them, and the change is announced."""
    allowed = {"name", "unit", "baseline", "target", "direction"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValidationFailed(
            "These fields cannot be changed here.",
            errors={name: ["read-only"] for name in unknown},
        )
    if "name" in changes and not str(changes["name"] or "").strip():
        raise ValidationFailed("A metric needs a name.", errors={"name": ["required"]})
    if "direction" in changes:
        _check_direction(changes["direction"])
    values = {
        name: parse_decimal(value, name) if name in ("baseline", "target") else value
        for name, value in changes.items()
    }
    try:
        with transaction.atomic():
            locked = (
                SuccessMetric.objects.select_for_update(of=("self",))
                .select_related("initiative__business_unit")
                .get(pk=metric.pk)
            )
            initiative = locked.initiative
            require_perm(actor, "programs.change_initiative", initiative)
            # Direction too: flipping it turns a miss into a hit just as surely.
            moved = {
                name
                for name in ("baseline", "target", "direction")
                if name in values and values[name] != getattr(locked, name)
            }
            if moved and initiative.stage != Stage.PROPOSED:
                require_perm(actor, "programs.reassign_initiative", initiative)
            before = {name: str(getattr(locked, name)) for name in moved}
            for name, value in values.items():
                setattr(locked, name, value)
            metric_values_check(
                unit=locked.unit, values={"baseline": locked.baseline, "target": locked.target}
            )
            locked.save(update_fields=list(values))
            if moved:
                events.metric_redefined(locked, before=before).emit()
    except IntegrityError as exc:
        raise ValidationFailed(
            "Another metric of this initiative has that name.",
            errors={"name": ["already exists for this initiative"]},
        ) from exc
    metric.refresh_from_db()
    return locked


def metric_record_value(
    *,
    metric: SuccessMetric,
    actor: User | None,
    value: Any,
    measured_at: dt.datetime | None = None,
) -> MetricReading:
    number = parse_decimal(value, "value")
    if number is None:
        raise ValidationFailed("A value is required.", errors={"value": ["required"]})
    measured_at = measured_at or timezone.now()
    if measured_at > timezone.now() + dt.timedelta(minutes=5):
        raise ValidationFailed(
            "A measurement cannot be in the future.", errors={"measured_at": ["in the future"]}
        )
    with transaction.atomic():
        locked = (
            SuccessMetric.objects.select_for_update(of=("self",))
            .select_related("initiative")
            .get(pk=metric.pk)
        )
        require_perm(actor, "programs.change_initiative", locked.initiative)
        metric_values_check(unit=locked.unit, values={"value": number})
        reading = MetricReading.objects.create(
            metric=locked, value=number, measured_at=measured_at, recorded_by=actor
        )
        # Readings may arrive out of order (a backfill); the metric shows the latest measured.
        if locked.measured_at is None or measured_at >= locked.measured_at:
            locked.current_value = number
            locked.measured_at = measured_at
            locked.save(update_fields=["current_value", "measured_at"])
    metric.refresh_from_db()
    return reading
