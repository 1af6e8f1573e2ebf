"""Prometheus metrics beyond django-prometheus' request/DB/cache ones, and the ``/metrics`` view.

Each business metric is counted in one place:

- ``observe_event`` (called by ``notifications.outbox.emit``, the one door every side effect
  goes through): events by type, and stage transitions and gate decisions derived from the
  ``initiative.stage_changed`` / ``review.decided`` payloads.
- Scrape-time collectors named in ``GATEKEEPER_METRICS_COLLECTORS`` (dotted paths, so the kernel
  imports no app), e.g. ``notifications.metrics.DeliveryBacklogCollector``: numbers read from
  the database when Prometheus scrapes, right whichever process did the work.
- Celery's task signals (``connect_task_signals``): sweep durations and rows handled.

``/metrics`` is not public outside debug: the caller must come from an allowed network
(``GATEKEEPER_METRICS_ALLOW``, CIDRs; loopback by default) or bring the bearer token
(``GATEKEEPER_METRICS_TOKEN``).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import prometheus_client
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.registry import Collector

EVENTS = Counter("gatekeeper_events_total", "Outbox events emitted, by type.", ["type"])
TRANSITIONS = Counter(
    "gatekeeper_stage_transitions_total",
    "Initiative stage moves, by from and to stage.",
    ["from_stage", "to_stage"],
)
DECISIONS = Counter(
    "gatekeeper_gate_decisions_total",
    "Gate review decisions, by gate and outcome.",
    ["gate", "outcome"],
)
SWEEP_SECONDS = Histogram(
    "gatekeeper_sweep_duration_seconds",
    "Wall time of one periodic sweep task.",
    ["task"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
SWEEP_ROWS = Counter(
    "gatekeeper_sweep_rows_total",
    "Rows a periodic sweep task handled (its return value).",
    ["task"],
)

# The periodic tasks whose run time and row count are observed (gatekeeper.celery.BEAT_SCHEDULE).
SWEEP_TASKS = frozenset(
    {
        "notifications.redispatch",
        "integrations.redispatch",
        "gates.sweep_approval_deadlines",
        "programs.sweep_overdue_milestones",
        "programs.sweep_stalled_initiatives",
    }
)


def observe_event(event_type: str, payload: dict[str, Any]) -> None:
    EVENTS.labels(type=event_type).inc()
    if event_type == "initiative.stage_changed":
        TRANSITIONS.labels(
            from_stage=str(payload.get("from_stage", "")), to_stage=str(payload.get("to_stage", ""))
        ).inc()
    elif event_type == "review.decided":
        review = payload.get("review")
        gate = review.get("gate", "") if isinstance(review, dict) else ""
        DECISIONS.labels(gate=str(gate), outcome=str(payload.get("outcome", ""))).inc()


def registry() -> CollectorRegistry:
    """What one scrape reports: every process's metrics when several share a directory
    (``PROMETHEUS_MULTIPROC_DIR``, gunicorn's workers or Celery's children), and the
    backlog read from the database."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        scraped = CollectorRegistry()
        multiprocess.MultiProcessCollector(scraped)
    else:
        scraped = prometheus_client.REGISTRY
    return scraped


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c, strict=False) for c in settings.GATEKEEPER_METRICS_ALLOW]


def _client_allowed(request: HttpRequest) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _allowed_networks())


def _token_ok(request: HttpRequest) -> bool:
    expected = settings.GATEKEEPER_METRICS_TOKEN
    if not expected:
        return False
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {expected}".encode())


def metrics_allowed(request: HttpRequest) -> bool:
    return settings.DEBUG or _client_allowed(request) or _token_ok(request)


@functools.cache
def _scrape_collectors() -> tuple[Collector, ...]:
    return tuple(import_string(path)() for path in settings.GATEKEEPER_METRICS_COLLECTORS)


class _Combined(Collector):
    def __init__(self, parts: Iterable[Any]) -> None:
        self.parts = list(parts)

    def collect(self) -> Iterator[Any]:
        for part in self.parts:
            yield from part.collect()


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        # 404, not 403: the endpoint is not advertised to the outside.
        return HttpResponse(status=404)
    output = prometheus_client.generate_latest(_Combined([registry(), *_scrape_collectors()]))  # type: ignore[arg-type]
    return HttpResponse(output, content_type=prometheus_client.CONTENT_TYPE_LATEST)


# --- Celery: sweep duration and rows ----------------------------------------------------------

_started: dict[str, float] = {}


def _task_prerun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    if task is not None and task.name in SWEEP_TASKS and task_id:
        _started[task_id] = time.monotonic()


def _task_postrun(
    task_id: str | None = None, task: Any = None, retval: Any = None, **kwargs: Any
) -> None:
    started = _started.pop(task_id or "", None)
    if started is None or task is None:
        return
    SWEEP_SECONDS.labels(task=task.name).observe(time.monotonic() - started)
    if isinstance(retval, int) and not isinstance(retval, bool):
        SWEEP_ROWS.labels(task=task.name).inc(retval)


def connect_task_signals() -> None:
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_task_prerun, weak=False, dispatch_uid="gatekeeper.metrics.prerun")
    task_postrun.connect(_task_postrun, weak=False, dispatch_uid="gatekeeper.metrics.postrun")


def start_worker_exporter(port: int) -> None:
    """Serve the worker's metrics (sweeps run there) on their own port: a worker has no web
    server, and with PROMETHEUS_MULTIPROC_DIR set this reports every child process."""
    prometheus_client.start_http_server(port, registry=registry())
