"""The app's settings plus the bench's no-op task, so the same workers can run both."""

from gatekeeper.settings import *  # noqa: F403

CELERY_IMPORTS = ["bench.delivery.tasks"]
