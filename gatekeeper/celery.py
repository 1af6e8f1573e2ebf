import os
from typing import Any

from celery import Celery
from celery.signals import worker_init
from django_structlog.celery.steps import DjangoStructLogInitStep

from gatekeeper import celery_django
from gatekeeper.env import env_int

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gatekeeper.settings")

# Celery's Django fix-up, keeping a worker's database connection between tasks that succeeded
# (gatekeeper.celery_django says why that is safe and what it saves).
app = Celery("gatekeeper", fixups=[celery_django.fixup])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Worker-side log context (task id, the queuing request's id) from django-structlog.
app.steps["worker"].add(DjangoStructLogInitStep)


@worker_init.connect
def _worker_metrics(**kwargs: Any) -> None:
    from django.conf import settings

    from gatekeeper import metrics

    metrics.connect_task_signals()
    if settings.GATEKEEPER_WORKER_METRICS_PORT:
        metrics.start_worker_exporter(settings.GATEKEEPER_WORKER_METRICS_PORT)


def _every(task: str, env_name: str, default_seconds: int) -> dict[str, Any]:
    seconds = env_int(env_name, default_seconds, minimum=1)
    return {
        "task": task,
        "schedule": float(seconds),
        # A sweep queued while no worker was running is stale once the next one is due; let
        # the broker drop it instead of running a backlog of identical sweeps. `expires` is
        # read by Celery's default scheduler, `expire_seconds` by django-celery-beat's.
        "options": {"expires": seconds, "expire_seconds": seconds},
    }


# The periodic work, in code (DESIGN.md §2). Each interval is overridable by env. `celery beat`
# with django-celery-beat's DatabaseScheduler (`make run`, compose) writes these entries into
# its PeriodicTask table on start, where admins can see and pause them; a pause survives
# restarts (the sync updates the schedule, never the `enabled` flag). Sweeps are idempotent,
# so the intervals trade latency for load only.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "notifications.redispatch": _every(
        "notifications.redispatch", "GATEKEEPER_SCHEDULE_REDISPATCH_SECONDS", 30
    ),
    "integrations.redispatch": _every(
        "integrations.redispatch", "GATEKEEPER_SCHEDULE_INBOUND_REDISPATCH_SECONDS", 30
    ),
    "gates.sweep_approval_deadlines": _every(
        "gates.sweep_approval_deadlines", "GATEKEEPER_SCHEDULE_APPROVAL_DEADLINES_SECONDS", 300
    ),
    "programs.sweep_overdue_milestones": _every(
        "programs.sweep_overdue_milestones", "GATEKEEPER_SCHEDULE_OVERDUE_MILESTONES_SECONDS", 300
    ),
    "programs.sweep_stalled_initiatives": _every(
        "programs.sweep_stalled_initiatives",
        "GATEKEEPER_SCHEDULE_STALLED_INITIATIVES_SECONDS",
        3600,
    ),
    "dashboard.warm_flow": _every(
        "dashboard.warm_flow", "GATEKEEPER_SCHEDULE_DASHBOARD_FLOW_SECONDS", 300
    ),
    "api.purge_expired_tokens": _every(
        "api.purge_expired_tokens", "GATEKEEPER_SCHEDULE_TOKEN_PURGE_SECONDS", 3600
    ),
    "api.purge_idempotency_keys": _every(
        "api.purge_idempotency_keys", "GATEKEEPER_SCHEDULE_IDEMPOTENCY_PURGE_SECONDS", 3600
    ),
}


@app.on_after_configure.connect
def _install_beat_schedule(sender: Celery, **kwargs: Any) -> None:
    # Set after Django's settings load (not at import: settings import this package). A
    # CELERY_BEAT_SCHEDULE in settings still wins, entry by entry.
    sender.conf.beat_schedule = {**BEAT_SCHEDULE, **(sender.conf.beat_schedule or {})}


@app.task(name="gatekeeper.ping")
def ping() -> str:
    """Liveness probe for the worker: `make run`'s smoke test and ops checks use it."""
    return "pong"
