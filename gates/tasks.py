"""Thin Celery entry points for gates' periodic work (CONVENTIONS.md §4)."""

from celery import shared_task

from gates import sweeps


@shared_task(name="gates.sweep_approval_deadlines", ignore_result=True)
def sweep_approval_deadlines() -> int:
    return sweeps.sweep_approval_deadlines()
