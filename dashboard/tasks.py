"""Thin Celery entry points for the dashboard (CONVENTIONS.md §4)."""

from celery import shared_task

from dashboard import selectors


@shared_task(name="dashboard.warm_flow", ignore_result=True)
def warm_flow() -> bool:
    return selectors.flow_warm()
