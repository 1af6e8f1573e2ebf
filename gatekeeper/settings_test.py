"""Settings for the test suite: real PostgreSQL and Redis on localhost (DESIGN.md §3).

Defaults are set before the main settings read the environment, so `pytest` alone also runs
against PostgreSQL; override DATABASE_URL / REDIS_URL to point elsewhere.
"""

import os

os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gatekeeper")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")

from gatekeeper.settings import *  # noqa: F403

# One test database per run: two runs against the same server (a developer's and CI's, or two
# terminals) must not drop each other's database. pytest-xdist appends its worker suffix to this.
RUN_DB_PREFIX = "test_gatekeeper_run"
DATABASES["default"].setdefault("TEST", {})  # noqa: F405
DATABASES["default"]["TEST"]["NAME"] = f"{RUN_DB_PREFIX}{os.getpid()}"  # noqa: F405

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
