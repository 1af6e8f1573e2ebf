"""Thin Celery entry points for programs' periodic sweeps (CONVENTIONS.md §4)."""

from celery import shared_task

from programs import sweeps


@shared_task(name="programs.sweep_overdue_milestones", ignore_result=True)
def sweep_overdue_milestones() -> int:
    return sweeps.sweep_overdue_milestones()


@shared_task(name="programs.sweep_stalled_initiatives", ignore_result=True)
def sweep_stalled_initiatives() -> int:
    return sweeps.sweep_stalled_initiatives()
