"""Every write to initiatives, metrics and milestones (CONVENTIONS.md §1-3).

Each use case: one transaction, the initiative row locked, the pure transition called, the
append-only record and the outbox event written before commit. Callers pass the instance they
hold; if it is stale (someone else moved the initiative meanwhile) they get a Conflict instead of
silently acting on a state they never saw.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from gatekeeper.errors import Conflict, PermissionDenied, TransitionRefused, ValidationFailed
from notifications.outbox import emit
from programs.conditions import Condition
from programs.models import (
    BusinessUnit,
    Direction,
    Health,
    Initiative,
    MetricReading,
    Milestone,
    MilestoneStatus,
    RiskTier,
    StageTransition,
    SuccessMetric,
)
from programs.ports import gate_verdict, notify_stage_change, stage_budget
from programs.stages import ACTIVE_STAGES, NEXT_STAGE, TERMINAL_STAGES, Stage

User = Any  # a django.contrib.auth user; None means the system (a sweep or a decided review)

# --- reading transition conditions --------------------------------------------------------


def transition_unmet(initiative: Initiative, name: str) -> list[str]:
    """Every reason the named transition cannot run now; empty when it can."""
    method = getattr(initiative, name, None)
    meta = getattr(method, "_django_fsm", None)
    if meta is None:
        raise ValueError(f"{name!r} is not a lifecycle transition")
    spec = meta.get_transition(initiative.stage)
    if spec is None:
        return [f"'{name}' is not possible from stage '{initiative.stage}'"]
    reasons: list[str] = []
    for condition in spec.conditions:
        if isinstance(condition, Condition):
            reasons.extend(condition.explain(initiative))
        elif not condition(initiative):
            reasons.append(getattr(condition, "__name__", "a condition") + " is not met")
    return reasons


def available_transitions(initiative: Initiative) -> dict[str, list[str]]:
    """Each transition that exists from the current stage, mapped to its unmet conditions."""
    result: dict[str, list[str]] = {}
    for spec in Initiative._meta.get_field("stage").get_all_transitions(Initiative):  # type: ignore[attr-defined]
        if spec.source in (initiative.stage,) and spec.name not in result:
            result[spec.name] = transition_unmet(initiative, spec.name)
    return result


# --- helpers ----------------------------------------------------------------------------


def stall_deadline(
    stage: str, entered: dt.datetime, gate_review_id: int | None = None
) -> dt.datetime | None:
    """When a stay in ``stage`` that began at ``entered`` counts as stalled (None: never)."""
    if stage not in ACTIVE_STAGES:
        return None
    budget = stage_budget(stage, gate_review_id)
    return entered + budget if budget is not None else None


def _people(initiative: Initiative) -> list[dict[str, Any]]:
    seen: dict[int, dict[str, Any]] = {}
    for role in ("business_owner", "sponsor", "delivery_lead"):
        user = getattr(initiative, role)
        if user is not None and user.pk not in seen:
            seen[user.pk] = {"user_id": user.pk, "email": user.email, "role": role}
    return list(seen.values())


def initiative_summary(initiative: Initiative) -> dict[str, Any]:
    return {
        "id": initiative.pk,
        "key": initiative.key,
        "name": initiative.name,
        "stage": initiative.stage,
        "business_unit": initiative.business_unit.code,
    }


def _require_perm(actor: User | None, perm: str, obj: Any) -> None:
    if actor is None:
        return
    if not actor.has_perm(perm, obj):
        raise PermissionDenied(f"{actor} may not do this ({perm}) on {obj}")


def _lock(initiative: Initiative, expected_stage: str | None) -> Initiative:
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


def _run_transition(
    *,
    initiative: Initiative,
    name: str,
    actor: User | None,
    reason: str,
    expected_stage: str | None,
    gate_review_id: int | None = None,
    perm: str | None = None,
) -> StageTransition:
    now = timezone.now()
    try:
        with transaction.atomic():
            locked = _lock(initiative, expected_stage)
            if perm is not None:
                # Checked on the locked row: a role just taken away can't still act.
                _require_perm(actor, perm, locked)
            unmet = transition_unmet(locked, name)
            if unmet:
                raise TransitionRefused(
                    f"{locked.key} cannot {name.replace('_', ' ')} from '{locked.stage}'",
                    unmet=unmet,
                )
            from_stage = locked.stage
            target = NEXT_STAGE.get(from_stage)
            if name == Initiative.FORWARD.get(from_stage) and target is not None:
                gate_review_id = gate_verdict(locked, target).review_id or gate_review_id
            hold_started = locked.stage_entered_at
            getattr(locked, name)()
            if name == "resume":
                _restore_clock(locked, paused=now - hold_started, now=now)
            else:
                locked.stage_entered_at = now
                locked.stall_at = stall_deadline(locked.stage, now, gate_review_id)
            locked.save()
            record = StageTransition.objects.create(
                initiative=locked,
                transition=name,
                from_stage=from_stage,
                to_stage=locked.stage,
                actor=actor,
                reason=reason,
                gate_review_id=gate_review_id,
            )
            emit(
                "initiative.stage_changed",
                {
                    "initiative": initiative_summary(locked),
                    "from_stage": from_stage,
                    "to_stage": locked.stage,
                    "transition": name,
                    "reason": reason,
                    "actor_id": getattr(actor, "pk", None),
                    "gate_review_id": gate_review_id,
                    "recipients": _people(locked),
                },
                key=f"initiative.stage_changed:{record.pk}",
            )
            if locked.stage in TERMINAL_STAGES:
                # Nobody acts on a closed initiative's milestones: take them off the sweep.
                Milestone.objects.filter(
                    initiative=locked, status=MilestoneStatus.OPEN, next_alert_at__isnull=False
                ).update(next_alert_at=None)
            notify_stage_change(locked, from_stage, locked.stage)
    except TransitionNotAllowed as exc:  # a condition changed between our check and the call
        raise TransitionRefused(str(exc), unmet=[str(exc)]) from exc
    except ConcurrentTransition as exc:
        raise Conflict(f"{initiative.key} was moved by someone else; reload and try again") from exc
    initiative.refresh_from_db()
    return record


def _restore_clock(initiative: Initiative, *, paused: dt.timedelta, now: dt.datetime) -> None:
    """Back from hold: the stay goes on from when it began, and the stall deadline moves out by
    the time spent on hold (a hold pauses the clock; it must not reset it)."""
    initiative.stage_entered_at = initiative.held_stage_entered_at or now
    if initiative.held_stall_at is not None:
        initiative.stall_at = initiative.held_stall_at + paused
    else:
        opened_by = (
            StageTransition.objects.filter(initiative=initiative, to_stage=initiative.stage)
            .exclude(gate_review_id=None)
            .order_by("-id")
            .values_list("gate_review_id", flat=True)
            .first()
        )
        entered = initiative.stage_entered_at
        initiative.stall_at = stall_deadline(initiative.stage, entered, opened_by)
    initiative.held_stage_entered_at = None
    initiative.held_stall_at = None


# --- initiatives --------------------------------------------------------------------------


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
    _require_perm(actor, "programs.add_initiative", None)
    named = (business_owner, sponsor, delivery_lead)
    if any(person is not None for person in named) or risk_tier != RiskTier.MEDIUM:
        # The same PMO-only fields as on edit: who holds gate powers, how many approvers.
        _require_perm(actor, "programs.reassign_initiative", None)
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
            emit(
                "initiative.created",
                {"initiative": initiative_summary(initiative), "recipients": _people(initiative)},
                key=f"initiative.created:{initiative.pk}",
            )
    except IntegrityError as exc:
        raise ValidationFailed(
            f"An initiative with key {key!r} already exists.", errors={"key": ["already in use"]}
        ) from exc
    return initiative


def initiative_assign_owner(
    *, initiative: Initiative, actor: User | None, business_owner: User
) -> Initiative:
    with transaction.atomic():
        locked = _lock(initiative, None)
        # The business owner approves G1 and G2: choosing them is PMO's call.
        _require_perm(actor, "programs.reassign_initiative", locked)
        if locked.stage in TERMINAL_STAGES:
            raise TransitionRefused(
                f"{locked.key} is {locked.stage}", unmet=["the initiative is closed"]
            )
        previous = locked.business_owner_id
        locked.business_owner = business_owner
        locked.save(update_fields=["business_owner", "updated_at"])
        emit(
            "initiative.owner_assigned",
            {
                "initiative": initiative_summary(locked),
                "previous_owner_id": previous,
                "recipients": _people(locked),
            },
            key=f"initiative.owner_assigned:{locked.pk}:{business_owner.pk}:{timezone.now().isoformat()}",
        )
    initiative.refresh_from_db()
    return initiative


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
        locked = _lock(initiative, None)
        _require_perm(actor, "programs.change_initiative", locked)
        if PMO_ONLY_FIELDS & set(changes):
            _require_perm(actor, "programs.reassign_initiative", locked)
        if locked.stage in TERMINAL_STAGES:
            raise TransitionRefused(
                f"{locked.key} is {locked.stage}", unmet=["the initiative is closed"]
            )
        before = {name: _plain(getattr(locked, name)) for name in changes}
        for name, value in changes.items():
            setattr(locked, name, value)
        locked.save(update_fields=[*changes, "updated_at"])
        after = {name: _plain(getattr(locked, name)) for name in changes}
        emit(
            "initiative.updated",
            {
                "title": f"{locked.key} {locked.name} was updated",
                "initiative": initiative_summary(locked),
                "changes": {n: {"from": before[n], "to": after[n]} for n in changes},
                "actor_id": getattr(actor, "pk", None),
                "admin_url": f"/admin/programs/initiative/{locked.pk}/change/",
                "recipients": _people(locked),
            },
            key=f"initiative.updated:{locked.pk}:{uuid.uuid4().hex}",
        )
    initiative.refresh_from_db()
    return initiative


def _plain(value: Any) -> Any:
    return getattr(value, "pk", value)


def initiative_advance(
    *,
    initiative: Initiative,
    actor: User | None,
    reason: str = "",
    expected_stage: str | None = None,
    gate_review_id: int | None = None,
) -> StageTransition:
    """Move through the gate out of the current stage; refused unless that gate is approved."""
    stage = expected_stage or initiative.stage
    name = Initiative.FORWARD.get(stage)
    if name is None:
        raise TransitionRefused(
            f"{initiative.key} cannot advance from '{stage}'",
            unmet=[f"no gate leads out of '{stage}'"],
        )
    return _run_transition(
        # A decided review moves the initiative as the system (actor None); a person who
        # presses the button after approval needs the same right as for any stage change.
        perm="programs.change_stage",
        initiative=initiative,
        name=name,
        actor=actor,
        reason=reason,
        expected_stage=expected_stage,
        gate_review_id=gate_review_id,
    )


def _require_reason(reason: str, what: str) -> None:
    if not reason.strip():
        raise ValidationFailed(f"A reason is required to {what}.", errors={"reason": ["required"]})


def initiative_hold(
    *,
    initiative: Initiative,
    actor: User | None,
    reason: str,
    expected_stage: str | None = None,
    gate_review_id: int | None = None,
) -> StageTransition:
    _require_reason(reason, "put an initiative on hold")
    return _run_transition(
        perm="programs.change_stage",
        initiative=initiative,
        name="hold",
        actor=actor,
        reason=reason,
        expected_stage=expected_stage,
        gate_review_id=gate_review_id,
    )


def initiative_resume(
    *,
    initiative: Initiative,
    actor: User | None,
    reason: str = "",
    expected_stage: str | None = None,
) -> StageTransition:
    return _run_transition(
        perm="programs.change_stage",
        initiative=initiative,
        name="resume",
        actor=actor,
        reason=reason,
        expected_stage=expected_stage,
    )


def initiative_cancel(
    *,
    initiative: Initiative,
    actor: User | None,
    reason: str,
    expected_stage: str | None = None,
    gate_review_id: int | None = None,
) -> StageTransition:
    _require_reason(reason, "cancel an initiative")
    return _run_transition(
        perm="programs.change_stage",
        initiative=initiative,
        name="cancel",
        actor=actor,
        reason=reason,
        expected_stage=expected_stage,
        gate_review_id=gate_review_id,
    )


def initiative_retire(
    *, initiative: Initiative, actor: User | None, reason: str, expected_stage: str | None = None
) -> StageTransition:
    _require_reason(reason, "retire an initiative")
    return _run_transition(
        perm="programs.change_stage",
        initiative=initiative,
        name="retire",
        actor=actor,
        reason=reason,
        expected_stage=expected_stage,
    )


# --- metrics ---------------------------------------------------------------------------------


def _decimal(value: Any, field: str) -> Decimal | None:
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
    if direction not in Direction.values:
        raise ValidationFailed(
            "Unknown direction.", errors={"direction": [f"one of {', '.join(Direction.values)}"]}
        )
    try:
        with transaction.atomic():
            locked = _lock(initiative, None)
            _require_perm(actor, "programs.change_initiative", locked)
            if locked.stage in TERMINAL_STAGES:
                raise TransitionRefused(
                    f"{locked.key} is {locked.stage}", unmet=["the initiative is closed"]
                )
            return SuccessMetric.objects.create(
                initiative=locked,
                name=name.strip(),
                unit=unit,
                baseline=_decimal(baseline, "baseline"),
                target=_decimal(target, "target"),
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
    if "direction" in changes and changes["direction"] not in Direction.values:
        raise ValidationFailed(
            "Unknown direction.", errors={"direction": [f"one of {', '.join(Direction.values)}"]}
        )
    values = {
        name: _decimal(value, name) if name in ("baseline", "target") else value
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
            _require_perm(actor, "programs.change_initiative", initiative)
            # Direction too: flipping it turns a miss into a hit just as surely.
            moved = {
                name
                for name in ("baseline", "target", "direction")
                if name in values and values[name] != getattr(locked, name)
            }
            if moved and initiative.stage != Stage.PROPOSED:
                _require_perm(actor, "programs.reassign_initiative", initiative)
            before = {name: str(getattr(locked, name)) for name in moved}
            for name, value in values.items():
                setattr(locked, name, value)
            locked.save(update_fields=list(values))
            if moved:
                emit(
                    "metric.redefined",
                    {
                        "title": f"{initiative.key}: success metric '{locked.name}' redefined",
                        "initiative": initiative_summary(initiative),
                        "metric": {"id": locked.pk, "name": locked.name},
                        "changes": {
                            n: {"from": before[n], "to": str(getattr(locked, n))} for n in moved
                        },
                        "recipients": _people(initiative),
                    },
                    key=f"metric.redefined:{locked.pk}:{uuid.uuid4().hex}",
                )
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
    number = _decimal(value, "value")
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
        _require_perm(actor, "programs.change_initiative", locked.initiative)
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


# --- milestones ------------------------------------------------------------------------------


def milestone_add(
    *,
    initiative: Initiative,
    actor: User | None,
    title: str,
    owner: User,
    due_at: dt.datetime,
    stage: str | None = None,
    is_gate_condition: bool = False,
    external_system: str = "",
    external_key: str = "",
) -> Milestone:
    errors: dict[str, list[str]] = {}
    if not title.strip():
        errors["title"] = ["required"]
    if stage is not None and stage not in Stage.values:
        errors["stage"] = ["unknown stage"]
    if bool(external_system) != bool(external_key):
        errors["external_key"] = ["external system and key go together"]
    if timezone.is_naive(due_at):
        errors["due_at"] = ["must include a time zone"]
    if errors:
        raise ValidationFailed("The milestone has invalid fields.", errors=errors)
    try:
        with transaction.atomic():
            locked = Initiative.objects.select_for_update().get(pk=initiative.pk)
            _require_perm(actor, "programs.change_initiative", locked)
            if locked.stage in TERMINAL_STAGES:
                raise TransitionRefused(
                    f"{locked.key} is {locked.stage}", unmet=["the initiative is closed"]
                )
            return Milestone.objects.create(
                initiative=locked,
                stage=stage or (locked.held_from or locked.stage),
                title=title.strip(),
                owner=owner,
                due_at=due_at,
                is_gate_condition=is_gate_condition,
                external_system=external_system,
                external_key=external_key,
                next_alert_at=due_at,
            )
    except IntegrityError as exc:
        raise ValidationFailed(
            f"Ticket {external_system}:{external_key} is already linked to a milestone.",
            errors={"external_key": ["already linked"]},
        ) from exc


def milestone_update(
    *, milestone: Milestone, actor: User | None, title: str, owner: User, due_at: dt.datetime
) -> Milestone:
    """Edit an open milestone; moving its due date restarts its overdue alerts from level 0."""
    if not title.strip():
        raise ValidationFailed("A milestone needs a title.", errors={"title": ["required"]})
    if timezone.is_naive(due_at):
        raise ValidationFailed("Invalid due date.", errors={"due_at": ["must include a time zone"]})
    with transaction.atomic():
        locked = (
            Milestone.objects.select_for_update(of=("self",))
            .select_related("initiative")
            .get(pk=milestone.pk)
        )
        _require_perm(actor, "programs.change_milestone", locked)
        if locked.is_gate_condition:
            _require_perm(actor, "programs.override_gate_condition", locked)
        if locked.status != MilestoneStatus.OPEN:
            raise Conflict(f"Milestone '{locked.title}' is {locked.status}; it can't be edited")
        if locked.due_at != due_at:
            locked.next_alert_at = due_at
            locked.alert_level = 0
        locked.title = title.strip()
        locked.owner = owner
        locked.due_at = due_at
        locked.save()
    milestone.refresh_from_db()
    return locked


def _close_milestone(
    *, milestone: Milestone, actor: User | None, status: str, reason: str = ""
) -> Milestone:
    with transaction.atomic():
        locked = (
            Milestone.objects.select_for_update(of=("self",))
            .select_related("initiative", "initiative__business_unit")
            .get(pk=milestone.pk)
        )
        if status == MilestoneStatus.DONE:
            _require_perm(actor, "programs.complete_milestone", locked)
        else:
            _require_perm(actor, "programs.change_milestone", locked)
            if locked.is_gate_condition:
                _require_perm(actor, "programs.override_gate_condition", locked)
        if locked.status == status:
            return locked  # repeated request (a ticket webhook retried): already done
        if locked.status != MilestoneStatus.OPEN:
            raise Conflict(f"Milestone '{locked.title}' is already {locked.status}")
        locked.status = status
        locked.completed_at = timezone.now()
        locked.completed_by = actor
        locked.waive_reason = reason
        locked.next_alert_at = None
        locked.save()
        emit(
            f"milestone.{status}",
            {
                "initiative": initiative_summary(locked.initiative),
                "milestone": {"id": locked.pk, "title": locked.title, "status": status},
                "recipients": [{"user_id": locked.owner_id, "role": "milestone_owner"}],
            },
            key=f"milestone.{status}:{locked.pk}",
        )
    milestone.refresh_from_db()
    return locked


def milestone_complete(*, milestone: Milestone, actor: User | None) -> Milestone:
    return _close_milestone(milestone=milestone, actor=actor, status=MilestoneStatus.DONE)


def milestone_waive(*, milestone: Milestone, actor: User | None, reason: str) -> Milestone:
    _require_reason(reason, "waive a milestone")
    return _close_milestone(
        milestone=milestone, actor=actor, status=MilestoneStatus.WAIVED, reason=reason
    )


__all__ = [
    "available_transitions",
    "initiative_advance",
    "initiative_assign_owner",
    "initiative_cancel",
    "initiative_create",
    "initiative_hold",
    "initiative_resume",
    "initiative_retire",
    "initiative_update",
    "metric_add",
    "metric_record_value",
    "metric_update",
    "milestone_add",
    "milestone_complete",
    "milestone_update",
    "milestone_waive",
    "transition_unmet",
]


# --- ticketing ---
# Services a ticketing integration drives (integrations/ calls them with its service account).
# Like milestone_complete they are idempotent, so a replayed webhook changes nothing twice.


def milestone_reopen(*, milestone: Milestone, actor: User | None, reason: str) -> Milestone:
    """Put a done milestone back to open (its ticket was reopened); open already is a no-op.

    Its overdue alerts start over from level 0 at its due date, as when milestone_update moves
    the date. A waived milestone stays waived: that was a person's decision, not a ticket's.
    """
    from programs.recipients import dedupe, person  # appended section: keeps merges simple

    with transaction.atomic():
        locked = (
            Milestone.objects.select_for_update(of=("self",))
            .select_related("initiative", "initiative__business_unit", "owner")
            .get(pk=milestone.pk)
        )
        # Reopening undoes a completion, so whoever may complete it may reopen it.
        _require_perm(actor, "programs.complete_milestone", locked)
        if locked.status == MilestoneStatus.OPEN:
            return locked
        if locked.status != MilestoneStatus.DONE:
            raise Conflict(f"Milestone '{locked.title}' is {locked.status}; it can't be reopened")
        now = timezone.now()
        locked.status = MilestoneStatus.OPEN
        locked.completed_at = None
        locked.completed_by = None
        locked.next_alert_at = locked.due_at
        locked.alert_level = 0
        locked.save()
        emit(
            "milestone.reopened",
            {
                "initiative": initiative_summary(locked.initiative),
                "milestone": {"id": locked.pk, "title": locked.title, "status": locked.status},
                "reason": reason,
                "summary": f"Milestone '{locked.title}' was reopened: {reason}",
                "recipients": dedupe([person(locked.owner, "milestone_owner")]),
            },
            # A milestone may be reopened more than once; each time is its own fact.
            key=f"milestone.reopened:{locked.pk}:{now.isoformat()}",
        )
    milestone.refresh_from_db()
    return locked


def milestone_flag_ticket_deleted(*, milestone: Milestone, actor: User | None) -> Milestone:
    """Record that the milestone's linked ticket was deleted and tell its owner (once).

    The status is left alone: a deleted ticket neither proves the work done nor undone, so a
    person decides (complete, waive, or link another ticket).
    """
    from programs.recipients import dedupe, person  # appended section: keeps merges simple

    with transaction.atomic():
        locked = (
            Milestone.objects.select_for_update(of=("self",))
            .select_related("initiative", "initiative__business_unit", "owner")
            .get(pk=milestone.pk)
        )
        _require_perm(actor, "programs.complete_milestone", locked)
        if locked.external_deleted_at is not None:
            return locked
        locked.external_deleted_at = timezone.now()
        locked.save(update_fields=["external_deleted_at"])
        ticket = f"{locked.external_system}:{locked.external_key}"
        emit(
            "milestone.ticket_deleted",
            {
                "initiative": initiative_summary(locked.initiative),
                "milestone": {"id": locked.pk, "title": locked.title, "status": locked.status},
                "ticket": {"system": locked.external_system, "key": locked.external_key},
                "summary": (
                    f"Ticket {ticket} linked to milestone '{locked.title}' was deleted. "
                    "Complete or waive the milestone, or link it to another ticket."
                ),
                "recipients": dedupe([person(locked.owner, "milestone_owner")]),
            },
            key=f"milestone.ticket_deleted:{locked.pk}",
        )
    milestone.refresh_from_db()
    return locked


__all__ += ["milestone_flag_ticket_deleted", "milestone_reopen"]
