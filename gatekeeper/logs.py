"""Structured logging: one configuration for web, worker and beat (django-structlog).

JSON lines in production so a log pipeline can index ``request_id``, ``user_id``,
``initiative``, ``event_type`` …; readable ``key=value`` lines in development. Standard-library
loggers (Django, Celery, ``logging.getLogger(__name__)`` in our apps) go through the same
formatter, so their lines carry the bound context too.

Context is bound in one place per layer: django-structlog's request middleware (request id,
user id), its Celery receivers (task id, the request id of the web request that queued the
task), ``notifications.outbox.emit`` (event type and key, initiative key) and
``notifications.services.deliveries_attempt`` (per delivery sent: its id, event type, channel).
``bind_event`` below is what the latter two call.
"""

from __future__ import annotations

from typing import Any

import structlog

_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.stdlib.ExtraAdder(),
]


def logging_config(*, json: bool, level: str) -> dict[str, Any]:
    """The ``LOGGING`` dict: every record rendered by structlog, JSON or console."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    processors: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json:
        processors.append(structlog.processors.format_exc_info)
    processors.append(renderer)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": processors,
                "foreign_pre_chain": _SHARED_PROCESSORS,
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # django-structlog logs one line per request itself; Django's own would repeat it.
            "django.server": {"level": "WARNING"},
            # Likewise per task: its task_started and task_succeeded lines (with the task id,
            # the duration and the bound event, delivery and initiative) say what Celery's
            # "Received task" and "Task ... succeeded" say. Those were two more JSON lines per
            # outbox delivery, about 0.1 ms of a worker's CPU each. Celery's warnings and
            # errors (a failure, a time limit) still come through.
            "celery.worker.strategy": {"level": "WARNING"},
            "celery.app.trace": {"level": "WARNING"},
        },
    }


def configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def bind_event(event_type: str, payload: dict[str, Any] | None = None, **extra: Any) -> None:
    """Bind what lets one approval be followed across web and worker: the event type and the
    initiative's key (from the payload, as ``programs.events.initiative_summary`` shapes it)."""
    context: dict[str, Any] = {"event_type": event_type, **extra}
    initiative = (payload or {}).get("initiative")
    if isinstance(initiative, dict) and initiative.get("key"):
        context["initiative"] = initiative["key"]
    structlog.contextvars.bind_contextvars(**context)
