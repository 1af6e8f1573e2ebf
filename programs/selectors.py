"""Reads: what a caller may see (DESIGN.md §1 Roles) and what the lifecycle allows now."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import router
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from gatekeeper.compiled import CompiledRead
from gatekeeper.db import (
    Param,
    first_related_row,
    first_related_row_reader,
    related_rows,
    related_rows_from_json,
)
from programs.guards import Guard
from programs.models import (
    ExternalReference,
    Initiative,
    MetricReading,
    Milestone,
    MilestoneStatus,
    StageTransition,
    SuccessMetric,
)
from programs.ports import stage_budget
from programs.roles import INTEGRATIONS, PMO
from programs.rules import is_pmo
from programs.stages import ACTIVE_STAGES, GATE_INTO, Stage


def _sees_everything(user: Any) -> bool:
    # The permission rules' own predicate: it reads the user's group names once per user object
    # and keeps them on it, so a permission check earlier in the request (the dashboard's, say)
    # already answered this.
    return bool(user.is_superuser or is_pmo(user))


def pmo_memberships(user_id: Any) -> QuerySet[Any]:
    """The PMO group membership of the user ``user_id`` (a value, ``OuterRef`` or compiled
    ``Param``): ``_sees_everything``'s PMO rule for a statement that answers it with
    ``Exists`` instead of a query of its own."""
    return get_user_model().groups.through.objects.filter(user_id=user_id, group__name=PMO)


def _service_scope(user: Any, prefix: str = "") -> Q:
    """A service account's initiatives: those it created and every one of a business unit it
    is a member of (the PMO scopes an integration by adding its account to units). Nothing for
    anyone else: a person's unit membership says where owners come from, not what they see."""
    if not user.groups.filter(name=INTEGRATIONS).exists():
        return Q(pk__in=[])
    return Q(**{f"{prefix}created_by": user}) | Q(
        **{f"{prefix}business_unit__in": user.business_units.values("pk")}
    )


def initiatives_visible_to(user: Any) -> QuerySet[Initiative]:
    qs = Initiative.objects.select_related("business_unit", "business_owner")
    if not user.is_authenticated:
        return qs.none()
    if _sees_everything(user):
        return qs
    return qs.filter(
        Q(business_owner=user)
        | Q(sponsor=user)
        | Q(delivery_lead=user)
        | Q(milestones__owner=user)
        | _service_scope(user)
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
        | _service_scope(user, "initiative__")
    )


def _involved(user: Any, prefix: str = "") -> Q:
    return (
        Q(**{f"{prefix}business_owner": user})
        | Q(**{f"{prefix}sponsor": user})
        | Q(**{f"{prefix}delivery_lead": user})
    )


def initiatives_changeable_by(user: Any) -> QuerySet[Initiative]:
    """The initiatives ``user`` may change (programs.change_initiative): all for PMO, else those
    they own, sponsor or lead. Milestones are added and readings recorded on exactly these."""
    qs = Initiative.objects.select_related("business_unit", "business_owner")
    if not user.is_authenticated:
        return qs.none()
    if _sees_everything(user):
        return qs
    return qs.filter(_involved(user))


def milestones_changeable_by(user: Any) -> QuerySet[Milestone]:
    """The milestones ``user`` may change or waive (programs.change_milestone): all for PMO,
    else their own and those of initiatives they own, sponsor or lead. (A gate condition
    also needs programs.override_gate_condition to be waived.)"""
    qs = Milestone.objects.select_related("initiative", "owner")
    if not user.is_authenticated:
        return qs.none()
    if _sees_everything(user):
        return qs
    return qs.filter(Q(owner=user) | _involved(user, "initiative__"))


# --- the lifecycle ---------------------------------------------------------------------------


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
    for guard in spec.conditions:
        if isinstance(guard, Guard):
            reasons.extend(guard.explain(initiative))
        elif not guard(initiative):
            reasons.append(getattr(guard, "__name__", "a condition") + " is not met")
    return reasons


def available_transitions(initiative: Initiative) -> dict[str, list[str]]:
    """Each transition that exists from the current stage, mapped to its unmet guards."""
    result: dict[str, list[str]] = {}
    for spec in Initiative._meta.get_field("stage").get_all_transitions(Initiative):  # type: ignore[attr-defined]
        if spec.source in (initiative.stage,) and spec.name not in result:
            result[spec.name] = transition_unmet(initiative, spec.name)
    return result


def stall_deadline(
    stage: str, entered: dt.datetime, gate_review_id: int | None = None
) -> dt.datetime | None:
    """When a stay in ``stage`` that began at ``entered`` counts as stalled (None: never)."""
    if stage not in ACTIVE_STAGES:
        return None
    budget = stage_budget(stage, gate_review_id)
    return entered + budget if budget is not None else None


def metrics_missing_baseline_or_target(initiative: Initiative) -> list[str]:
    """Why no success metric of ``initiative`` can yet be judged (G1's own check); [] if one can."""
    if initiative.pk is None or not _JUDGED_METRIC(initiative_id=initiative.pk):  # unsaved: none
        return ["at least one success metric needs both a baseline and a target"]
    return []


def _judged_metric() -> QuerySet[SuccessMetric, int]:
    initiative = SuccessMetric._meta.get_field("initiative").target_field  # type: ignore[union-attr]
    return (
        SuccessMetric.objects.filter(
            initiative_id=Param("initiative_id", initiative),
            baseline__isnull=False,
            target__isnull=False,
        )
        .order_by()
        .values_list("pk", flat=True)[:1]
    )


# Compiled once per connection (gatekeeper.compiled): G1's guard asks it on every move into pilot.
_JUDGED_METRIC = CompiledRead(SuccessMetric, _judged_metric)


# --- what the admin and the API list ----------------------------------------------------------


def stage_transitions_visible_to(user: Any) -> QuerySet[StageTransition]:
    """Stage history of the initiatives ``user`` may see."""
    return StageTransition.objects.select_related("initiative", "actor").filter(
        initiative__in=initiatives_visible_to(user).values("pk")
    )


def metrics_recordable_by(user: Any) -> QuerySet[SuccessMetric]:
    """The metrics ``user`` may record a reading of: those of the initiatives they may change."""
    return SuccessMetric.objects.select_related("initiative").filter(
        initiative__in=initiatives_changeable_by(user).values("pk")
    )


def metrics_visible_to(user: Any) -> QuerySet[SuccessMetric]:
    return SuccessMetric.objects.select_related("initiative").filter(
        initiative__in=initiatives_visible_to(user).values("pk")
    )


def readings_visible_to(user: Any) -> QuerySet[MetricReading]:
    return MetricReading.objects.select_related("metric", "recorded_by").filter(
        metric__initiative__in=initiatives_visible_to(user).values("pk")
    )


@dataclass(frozen=True)
class TransitionOption:
    name: str
    target: str
    permitted: bool
    unmet: list[str]

    @property
    def allowed(self) -> bool:
        return self.permitted and not self.unmet


def transitions_for(*, initiative: Initiative, user: Any) -> list[TransitionOption]:
    """What ``user`` may do to the initiative now: each move from its stage, with every reason it
    can't run yet, including the caller's own lack of the right to move it."""
    permitted = bool(user.has_perm("programs.change_stage", initiative))
    options = []
    for name, unmet in available_transitions(initiative).items():
        spec = getattr(initiative, name)._django_fsm.get_transition(initiative.stage)
        target = spec.target if isinstance(spec.target, str) else initiative.held_from
        reasons = list(unmet)
        if not permitted:
            reasons.insert(0, f"you may not {name.replace('_', ' ')} {initiative.key}")
        options.append(TransitionOption(name, target or "", permitted, reasons))
    return options


# --- the initiative page ---------------------------------------------------------------------


def _days(n: int) -> str:
    return f"{n} day{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class StageClock:
    """How long the initiative has been in its stage against the time its gate allows."""

    stage: str  # the stage whose clock runs (the one held from, while on hold)
    days_in_stage: int
    budget_days: int | None  # None: the stage has no expected maximum
    summary: str  # "stalls in 12 days", "stalled 9 days ago"
    stalled: bool


def stage_clock(initiative: Initiative) -> StageClock | None:
    """The stage clock of the initiative page; None for a closed initiative. On hold the clock
    of the held stage stands still. The deadline is the stored one while the stall sweep has
    not reported it yet (it clears it when it does), else worked out again the same way."""
    paused = initiative.stage == Stage.ON_HOLD
    stage = initiative.held_from if paused else initiative.stage
    entered = initiative.held_stage_entered_at if paused else initiative.stage_entered_at
    stall_at = initiative.held_stall_at if paused else initiative.stall_at
    if entered is None or stage not in (*ACTIVE_STAGES, Stage.OPERATIONS):
        return None
    if stall_at is None:
        opened_by = (
            initiative.transitions.filter(to_stage=stage)
            .order_by("-created_at", "-id")
            .values_list("gate_review_id", flat=True)
            .first()
        )
        stall_at = stall_deadline(stage, entered, opened_by)
    until = initiative.stage_entered_at if paused else timezone.now()
    in_stage = (until - entered).days
    if stall_at is None:
        return StageClock(stage, in_stage, None, "no expected maximum for this stage", False)
    stalled = stall_at <= until
    # Whole days, rounded towards zero either side of the deadline.
    days = (until - stall_at).days if stalled else (stall_at - until).days
    summary = f"stalled {_days(days)} ago" if stalled else f"stalls in {_days(days)}"
    if paused:
        summary = f"clock paused while on hold: {_days(0 if stalled else days)} left"
    return StageClock(stage, in_stage, (stall_at - entered).days, summary, stalled)


_DIAGRAM_PATH = (*ACTIVE_STAGES, Stage.OPERATIONS, Stage.RETIRED)


def lifecycle_steps(initiative: Initiative) -> list[dict[str, Any]]:
    """The lifecycle diagram: each stage of the path (done, current or to come, with the gate
    into it), then the two ways off it, on hold and cancelled."""
    reached = {Stage.PROPOSED, *initiative.transitions.values_list("to_stage", flat=True)}
    steps = []
    for stage in _DIAGRAM_PATH:
        state = "current" if stage == initiative.stage else "done" if stage in reached else "todo"
        steps.append(
            {
                "label": Stage(stage).label,
                "state": state,
                "gate": GATE_INTO.get(stage, ""),
                "side": False,
            }
        )
    for stage in (Stage.ON_HOLD, Stage.CANCELLED):
        state = "current" if stage == initiative.stage else "done" if stage in reached else "todo"
        steps.append({"label": Stage(stage).label, "state": state, "gate": "", "side": True})
    return steps


def milestones_overdue_count(initiative: Initiative) -> int:
    return initiative.milestones.filter(
        status=MilestoneStatus.OPEN, due_at__lt=timezone.now()
    ).count()


# The next open milestone as a list row shows it: name → the milestone's field.
NEXT_MILESTONE = {
    "id": "id",
    "title": "title",
    "stage": "stage",
    "due_at": "due_at",
    "owner": "owner__username",
}


def with_next_milestone(qs: QuerySet[Initiative]) -> QuerySet[Initiative]:
    """Each initiative with its next open milestone (the earliest due) as one JSON annotation,
    ``next_milestone_json``, in the same query: a list of 50 then costs no query per row.
    ``next_milestone_of`` (or, for a page of plain rows, ``next_milestone_reader``) reads it."""
    return qs.annotate(next_milestone_json=_next_milestone())


@cache
def _next_milestone() -> Subquery:
    # Built once per process: annotate() resolves a copy of it for each queryset (the
    # subquery's query is cloned), so every request shares it without changing it, and does
    # not pay for building the subquery's queryset again.
    upcoming = Milestone.objects.filter(
        initiative=OuterRef("pk"), status=MilestoneStatus.OPEN
    ).order_by("due_at", "id")
    return first_related_row(upcoming, **NEXT_MILESTONE)


def next_milestone_reader(*, db: str) -> Callable[[str | None], dict[str, Any] | None]:
    """Reads a ``next_milestone_json`` annotation: the milestone's ``NEXT_MILESTONE`` values, or
    None when no milestone is open."""
    return first_related_row_reader(Milestone, db=db, **NEXT_MILESTONE)


def next_milestone_of(initiative: Initiative) -> dict[str, Any] | None:
    """The initiative's next open milestone, from ``with_next_milestone`` (a query without)."""
    if hasattr(initiative, "next_milestone_json"):
        text = initiative.next_milestone_json
    else:
        read = with_next_milestone(Initiative.objects.filter(pk=initiative.pk).only("pk"))
        text = getattr(read.first(), "next_milestone_json", None)
    db = initiative._state.db or router.db_for_read(Milestone)
    return next_milestone_reader(db=db)(text)


# Each list's order, the same whether read with the initiatives or on its own.
EXTERNAL_REFS_ORDER = ("system", "key")
METRICS_ORDER = ("name", "id")


def with_refs_and_metrics(qs: QuerySet[Initiative]) -> QuerySet[Initiative]:
    """Each initiative with its external references (by system and key) and success metrics (by
    name) in the same query, as JSON annotations that ``external_refs_of`` and ``metrics_of``
    read back: a list of 50 then costs no query per relation."""
    return qs.annotate(**_refs_and_metrics())


@cache
def _refs_and_metrics() -> dict[str, Coalesce]:
    # Built once per process, as _next_milestone.
    return {
        "external_refs_json": related_rows(
            ExternalReference, fk="initiative", ordering=EXTERNAL_REFS_ORDER
        ),
        "metrics_json": related_rows(SuccessMetric, fk="initiative", ordering=METRICS_ORDER),
    }


def external_refs_of(initiative: Initiative) -> list[ExternalReference]:
    """The initiative's external references, from ``with_refs_and_metrics`` (a query without)."""
    rows = getattr(initiative, "external_refs_json", None)
    if rows is None:
        return list(initiative.external_refs.order_by(*EXTERNAL_REFS_ORDER))
    return related_rows_from_json(ExternalReference, rows, fk="initiative", parent=initiative)


def metrics_of(initiative: Initiative) -> list[SuccessMetric]:
    """The initiative's success metrics, from ``with_refs_and_metrics`` (a query without)."""
    rows = getattr(initiative, "metrics_json", None)
    if rows is None:
        return list(initiative.metrics.order_by(*METRICS_ORDER))
    return related_rows_from_json(SuccessMetric, rows, fk="initiative", parent=initiative)
