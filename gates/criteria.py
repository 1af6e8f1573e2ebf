"""Automatic criteria: computed from the initiative's data every time they are read.

Each check returns the reasons it is unmet (empty when satisfied), so a refused submission can list
every one of them. Criterion.check_name refers to a key of CHECKS; a template revision may only
name checks that exist here.
"""

from __future__ import annotations

from collections.abc import Callable

from programs.models import Initiative, MilestoneStatus
from programs.selectors import metrics_missing_baseline_or_target

Check = Callable[[Initiative], list[str]]


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


def run_check(name: str, initiative: Initiative) -> list[str]:
    check = CHECKS.get(name)
    if check is None:
        return [f"automatic check '{name}' is unknown to this version of Gatekeeper"]
    return check(initiative)
