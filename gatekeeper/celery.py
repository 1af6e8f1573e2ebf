import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gatekeeper.settings")

app = Celery("gatekeeper")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="gatekeeper.ping")
def ping() -> str:
    """Liveness probe for the worker: `make run`'s smoke test and ops checks use it."""
    return "pong"
