"""Settings for the bench scripts: the test settings plus the bench-only apps.

The peer model (``bench.peer``) and django-fsm-log live only here, never in the production
settings. Each run migrates its own database, ``bench_gatekeeper_<pid>``: never a name the test
suite uses (its conftest drops stale ``test_gatekeeper_run*`` databases), and the bench drops it
when it ends.
"""

import os

# Outbox dispatches go to their own Redis database, purged when a bench ends, so queued
# messages never reach a test run's or a developer's worker.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")

from gatekeeper.settings_test import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "django_fsm_log", "bench", "bench.peer"]  # noqa: F405
DATABASES["default"]["TEST"]["NAME"] = os.environ.get(  # noqa: F405
    "BENCH_DB_NAME", f"bench_gatekeeper_{os.getpid()}"
)
# The bench measures the app, not request logging.
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
# django-fsm-log logs every FSM model once installed; Gatekeeper keeps its own records
# (StageTransition, ReviewEvent) and is measured as it runs in production: without it.
DJANGO_FSM_LOG_IGNORED_MODELS = ["programs.models.Initiative", "gates.models.GateReview"]
# The app's URLs with the reads bench's bare list endpoint (bench.views) in front.
ROOT_URLCONF = "bench.urls"
