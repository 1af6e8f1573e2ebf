"""Real headless Chromium (Debian's package) driven by Playwright against live_server."""

from __future__ import annotations

import importlib
import os
import shutil

import pytest
from django.apps import apps

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
    for module, function in (
        ("programs.migrations.0002_groups_and_append_only_trigger", "create_groups"),
        ("gates.migrations.0002_seed_gates", "seed"),
    ):
        getattr(importlib.import_module(module), function)(apps, None)
