"""Real headless Chromium (Debian's package) driven by Playwright against live_server."""

from __future__ import annotations

import importlib
import os
import shutil

import pytest
from django.apps import apps
from django.contrib.contenttypes.models import ContentType

# live_server runs Django in a thread while Playwright's sync API holds an event loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture
def login(live_server, page):
    def _login(username: str, password: str = "pw") -> None:
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")

    return _login


@pytest.fixture(autouse=True)
def seeded_data(transactional_db):
    """Re-run the data migrations' seeds (idempotent) if an earlier flush took them.

    serialized_rollback can't restore them here: once Playwright's event loop runs in this
    thread, Django's context-local connection handler hands out a fresh connection object that
    lacks the serialized copy of the seed data.
    """
    # The live server runs in this process and shares its content type cache, which an earlier
    # flush can leave naming rows that are gone (a flush with post_migrate inhibited keeps the
    # cache, and a rolled-back test may have cached a row it created): the admin's log entry
    # then points at a missing content type and its save fails at commit. Read them afresh.
    ContentType.objects.clear_cache()
    for module, function in (
        ("programs.migrations.0002_groups_and_append_only_trigger", "create_groups"),
        ("gates.migrations.0002_seed_gates", "seed"),
    ):
        getattr(importlib.import_module(module), function)(apps, None)
