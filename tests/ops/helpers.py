from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import free_port

__all__ = ["PYTHON", "ROOT", "clean_env", "free_port", "manage"]

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

# Variables the test settings inject; a subprocess that must see the embedded defaults drops them.
_INJECTED = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_DEBUG",
    "SECRET_KEY",
    "SECURE_SSL_REDIRECT",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _INJECTED}
    env["DJANGO_SETTINGS_MODULE"] = "gatekeeper.settings"
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
