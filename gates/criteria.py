"""Automatic criteria: computed from the initiative's data every time they are read.

Each check returns the reasons it is unmet (empty when satisfied), so a refused submission can list
every one of them. Criterion.check_name refers to a key of CHECKS; a template revision may only
name checks that exist here.

Each check may have a describer (``DESCRIBERS``, same key) saying what it looked at — the metrics'
baseline and target, the owner and their business unit, the milestones still open — so a
decider sees the facts behind a tick, not only the tick. Describers are read only where a person
looks (the admin's checklist); the services' checks never pay for them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from programs.models import BusinessUnit, Initiative, Milestone, MilestoneStatus, SuccessMetric
from programs.selectors import metrics_missing_baseline_or_target

Check = Callable[[Initiative], list[str]]
Describe = Callable[[Initiative], list[str]]


def business_owner_from_business_line(initiative: Initiative) -> list[str]:
    owner_id = initiative.business_owner_id
    if owner_id is None:
        return ["a business owner must be assigned"]
    if not initiative.business_unit.members.filter(pk=owner_id).exists():
        return [
            f"the business owner must be a member of business unit "
            f"{initiative.business_unit.code} (the business line that will use it)"
        ]
    return []


def metric_with_baseline_and_target(initiative: Initiative) -> list[str]:
    # The same rule G1's lifecycle guard applies: one read, so the checklist and the guard
    # can never disagree.
    return metrics_missing_baseline_or_target(initiative)


def target_workflow_named(initiative: Initiative) -> list[str]:
    if not initiative.target_workflow.strip():
        return ["the target workflow (which business process changes) must be named"]
    return []


def stage_milestones_closed(initiative: Initiative) -> list[str]:
    open_titles = list(
        initiative.milestones.filter(
            stage=initiative.stage, status=MilestoneStatus.OPEN
        ).values_list("title", flat=True)
    )
    if open_titles:
        return [
            f"milestone '{title}' of stage {initiative.stage} is still open"
            for title in open_titles
        ]
    return []


def no_open_gate_conditions(initiative: Initiative) -> list[str]:
    open_titles = list(
        initiative.milestones.filter(
            is_gate_condition=True, status=MilestoneStatus.OPEN
        ).values_list("title", flat=True)
    )
    return [f"gate condition '{title}' is still open" for title in open_titles]


def pilot_results_measured(initiative: Initiative) -> list[str]:
    """Pilot results against the metrics: each metric with a target has a value measured since
    the pilot began, so the G2 panel compares results, not hopes."""
    targeted = initiative.metrics.filter(baseline__isnull=False, target__isnull=False)
    if not targeted.exists():
        return ["no success metric with baseline and target to measure the pilot against"]
    stale = targeted.exclude(measured_at__gte=initiative.stage_entered_at).values_list(
        "name", flat=True
    )
    return [f"metric '{name}' has no result measured during this stage" for name in stale]


CHECKS: dict[str, Check] = {
    "business_owner_from_business_line": business_owner_from_business_line,
    "metric_with_baseline_and_target": metric_with_baseline_and_target,
    "target_workflow_named": target_workflow_named,
    "stage_milestones_closed": stage_milestones_closed,
    "no_open_gate_conditions": no_open_gate_conditions,
    "pilot_results_measured": pilot_results_measured,
}


# --- what each check looked at (for people) -------------------------------------------------


def _number(value: Decimal | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value.normalize():f}"
    return f"{text} {unit}".strip()


def _metric_line(metric: SuccessMetric) -> str:
    return (
        f"{metric.name}: {_number(metric.baseline, metric.unit)} → "
        f"{_number(metric.target, metric.unit)}"
    )


def _person(user: object) -> str:
    get_full_name = getattr(user, "get_full_name", None)
    name = get_full_name() if get_full_name else ""
    return name or str(getattr(user, "username", user))


def describe_business_owner_from_business_line(initiative: Initiative) -> list[str]:
    unit = initiative.business_unit
    owner = initiative.business_owner
    if owner is None:
        return [f"No business owner yet; business unit {unit.name} ({unit.code})"]
    return [f"Business owner {_person(owner)}; business unit {unit.name} ({unit.code})"]


def describe_metric_with_baseline_and_target(initiative: Initiative) -> list[str]:
    if initiative.pk is None:
        return []
    lines = [_metric_line(m) for m in initiative.metrics.order_by("name")]
    return lines or ["No success metrics yet"]


def describe_target_workflow_named(initiative: Initiative) -> list[str]:
    workflow = initiative.target_workflow.strip()
    return [f"Target workflow: {workflow}"] if workflow else []


def _open_milestone_lines(rows: list[tuple[str, dt.datetime]]) -> list[str]:
    return [f"Open: {title} (due {timezone.localtime(due):%d %b %Y})" for title, due in rows]


def describe_stage_milestones_closed(initiative: Initiative) -> list[str]:
    rows = list(
        initiative.milestones.filter(stage=initiative.stage, status=MilestoneStatus.OPEN)
        .order_by("due_at", "title")
        .values_list("title", "due_at")
    )
    if not rows:
        return [f"No milestone of stage {initiative.get_stage_display()} is open"]
    return _open_milestone_lines(rows)


def describe_no_open_gate_conditions(initiative: Initiative) -> list[str]:
    rows = list(
        initiative.milestones.filter(is_gate_condition=True, status=MilestoneStatus.OPEN)
        .order_by("due_at", "title")
        .values_list("title", "due_at")
    )
    return _open_milestone_lines(rows) if rows else ["No gate condition is open"]


def describe_pilot_results_measured(initiative: Initiative) -> list[str]:
    lines = []
    for metric in initiative.metrics.filter(baseline__isnull=False, target__isnull=False).order_by(
        "name"
    ):
        result = (
            f"{_number(metric.current_value, metric.unit)} measured "
            f"{timezone.localtime(metric.measured_at):%d %b %Y}"
            if metric.current_value is not None and metric.measured_at is not None
            else "not measured"
        )
        lines.append(f"{_metric_line(metric)}; result {result}")
    return lines


DESCRIBERS: dict[str, Describe] = {
    "business_owner_from_business_line": describe_business_owner_from_business_line,
    "metric_with_baseline_and_target": describe_metric_with_baseline_and_target,
    "target_workflow_named": describe_target_workflow_named,
    "stage_milestones_closed": describe_stage_milestones_closed,
    "no_open_gate_conditions": describe_no_open_gate_conditions,
    "pilot_results_measured": describe_pilot_results_measured,
}


def describe_check(name: str, initiative: Initiative) -> list[str]:
    """What the check ``name`` looked at, one line per fact ([] when it has no describer)."""
    describe = DESCRIBERS.get(name)
    return describe(initiative) if describe is not None else []


def run_check(name: str, initiative: Initiative) -> list[str]:
    check = CHECKS.get(name)
    if check is None:
        return [f"automatic check '{name}' is unknown to this version of Gatekeeper"]
    return check(initiative)


# --- the same checks over many initiatives at once -----------------------------------------------
# The PMO dashboard asks why each stalled initiative is stuck: one query per check for the whole
# portfolio instead of one per initiative. Each gives exactly what its single version gives
# (tests/gates/test_criteria_bulk.py holds them to it), so the dashboard and a review's checklist
# can never disagree.

Verdicts = dict[int, list[str]]  # initiative pk -> unmet reasons
BulkCheck = Callable[[Sequence[Initiative]], Verdicts]


@dataclass
class CheckFacts:
    """What the bulk checks read about a set of initiatives, fetched by ``check_fact_queries``
    (run alone or inside a larger read) and judged by ``judge_bulk``."""

    members: set[tuple[int, int]]  # (business unit pk, user pk)
    open_milestones: list[tuple[int, str, str, bool]]  # initiative, stage, title, gate condition
    judged_metrics: list[tuple[int, str, Any]]  # initiative, name, measured_at


def check_fact_queries(initiatives: Sequence[Initiative]) -> dict[str, QuerySet[Any]]:
    """``values()`` querysets of the facts the bulk checks need about ``initiatives``."""
    pks = [i.pk for i in initiatives]
    owned = [i for i in initiatives if i.business_owner_id is not None]
    return {
        "members": BusinessUnit.members.through.objects.filter(
            businessunit_id__in={i.business_unit_id for i in owned},
            user_id__in={i.business_owner_id for i in owned},
        ).values("businessunit_id", "user_id"),
        "open_milestones": Milestone.objects.filter(
            initiative__in=pks, status=MilestoneStatus.OPEN
        ).values("initiative_id", "stage", "title", "is_gate_condition"),
        "judged_metrics": SuccessMetric.objects.filter(
            initiative__in=pks, baseline__isnull=False, target__isnull=False
        ).values("initiative_id", "name", "measured_at"),
    }


def check_facts_from(rows: dict[str, list[dict[str, Any]]]) -> CheckFacts:
    """``CheckFacts`` from what ``check_fact_queries`` read (by the same names)."""
    return CheckFacts(
        members={(r["businessunit_id"], r["user_id"]) for r in rows["members"]},
        open_milestones=[
            (r["initiative_id"], r["stage"], r["title"], r["is_gate_condition"])
            for r in rows["open_milestones"]
        ],
        judged_metrics=[
            (r["initiative_id"], r["name"], r["measured_at"]) for r in rows["judged_metrics"]
        ],
    )


def _facts(initiatives: Sequence[Initiative], *names: str) -> CheckFacts:
    queries = check_fact_queries(initiatives)
    return check_facts_from(
        {name: list(queries[name]) if name in names else [] for name in queries}
    )


def _business_owner_judged(initiatives: Sequence[Initiative], facts: CheckFacts) -> Verdicts:
    result: dict[int, list[str]] = {}
    for i in initiatives:
        if i.business_owner_id is None:
            result[i.pk] = ["a business owner must be assigned"]
        elif (i.business_unit_id, i.business_owner_id) not in facts.members:
            result[i.pk] = [
                f"the business owner must be a member of business unit "
                f"{i.business_unit.code} (the business line that will use it)"
            ]
        else:
            result[i.pk] = []
    return result


def _metric_judged(initiatives: Sequence[Initiative], facts: CheckFacts) -> Verdicts:
    judged = {pk for pk, _, _ in facts.judged_metrics}
    # programs' own read words it; an unsaved initiative has no metrics and costs no query.
    missing = metrics_missing_baseline_or_target(Initiative())
    return {i.pk: [] if i.pk in judged else list(missing) for i in initiatives}


def _target_workflow_judged(initiatives: Sequence[Initiative], facts: CheckFacts) -> Verdicts:
    return {i.pk: target_workflow_named(i) for i in initiatives}


def _stage_milestones_judged(initiatives: Sequence[Initiative], facts: CheckFacts) -> Verdicts:
    stage_of = {i.pk: i.stage for i in initiatives}
    result: dict[int, list[str]] = {pk: [] for pk in stage_of}
    for pk, stage, title, _ in facts.open_milestones:
        if pk in stage_of and stage == stage_of[pk]:
            result[pk].append(f"milestone '{title}' of stage {stage} is still open")
    return result


def _gate_conditions_judged(initiatives: Sequence[Initiative], facts: CheckFacts) -> Verdicts:
    result: dict[int, list[str]] = {i.pk: [] for i in initiatives}
    for pk, _, title, is_gate_condition in facts.open_milestones:
        if is_gate_condition and pk in result:
            result[pk].append(f"gate condition '{title}' is still open")
    return result


def _pilot_results_judged(initiatives: Sequence[Initiative], facts: CheckFacts) -> Verdicts:
    targeted: dict[int, list[tuple[str, Any]]] = {i.pk: [] for i in initiatives}
    for pk, name, measured_at in facts.judged_metrics:
        if pk in targeted:
            targeted[pk].append((name, measured_at))
    result: dict[int, list[str]] = {}
    for i in initiatives:
        if not targeted[i.pk]:
            result[i.pk] = [
                "no success metric with baseline and target to measure the pilot against"
            ]
            continue
        result[i.pk] = [
            f"metric '{name}' has no result measured during this stage"
            for name, measured_at in targeted[i.pk]
            if measured_at is None or measured_at < i.stage_entered_at
        ]
    return result


# Each check's judgement from the facts, and which facts it reads.
_JUDGES: dict[
    str, tuple[Callable[[Sequence[Initiative], CheckFacts], Verdicts], tuple[str, ...]]
] = {
    "business_owner_from_business_line": (_business_owner_judged, ("members",)),
    "metric_with_baseline_and_target": (_metric_judged, ("judged_metrics",)),
    "target_workflow_named": (_target_workflow_judged, ()),
    "stage_milestones_closed": (_stage_milestones_judged, ("open_milestones",)),
    "no_open_gate_conditions": (_gate_conditions_judged, ("open_milestones",)),
    "pilot_results_measured": (_pilot_results_judged, ("judged_metrics",)),
}


def _bulk(name: str) -> BulkCheck:
    judge, needs = _JUDGES[name]
    return lambda initiatives: judge(initiatives, _facts(initiatives, *needs))


def judge_bulk(name: str, initiatives: Sequence[Initiative], facts: CheckFacts) -> Verdicts:
    """``run_check_bulk`` from facts already read (``check_fact_queries``): no query."""
    if not initiatives:
        return {}
    found = _JUDGES.get(name)
    if found is None:
        return {i.pk: run_check(name, i) for i in initiatives}  # unknown: no query either
    return found[0](initiatives, facts)


BULK_CHECKS: dict[str, BulkCheck] = {name: _bulk(name) for name in _JUDGES}


def run_check_bulk(name: str, initiatives: Sequence[Initiative]) -> Verdicts:
    """``run_check`` for each of ``initiatives`` (by pk), in a query or two however many."""
    if not initiatives:
        return {}
    check = BULK_CHECKS.get(name)
    if check is None:
        return {i.pk: run_check(name, i) for i in initiatives}  # unknown: no query either
    return check(initiatives)
