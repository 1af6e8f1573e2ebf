"""/healthz is liveness (always 200 while the process answers); /readyz is readiness."""

from __future__ import annotations

import pytest
from django.test import Client

from gatekeeper import health
from gatekeeper.celery import app
from tests.ops.helpers import free_port

pytestmark = pytest.mark.django_db


def _ready(client: Client):
    return client.get("/readyz", HTTP_ACCEPT="application/json")


def test_ready_on_the_migrated_test_database(client):
    response = _ready(client)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body.values()) == {"OK"}
    assert any(name.startswith("DatabaseMigrated") for name in body)
    assert any(name.startswith("CeleryBroker") for name in body)
    assert any(name.startswith("Cache") for name in body)


def test_not_ready_while_a_migration_is_unapplied(client, monkeypatch):
    monkeypatch.setattr(
        health.MigrationExecutor,
        "migration_plan",
        lambda self, targets, clean_start=False: [(object(), False)],
    )
    response = _ready(client)
    assert response.status_code == 500
    assert "1 unapplied migration" in str(response.json())
    # Liveness does not care: the process is up, a restart would not help.
    assert client.get("/healthz").status_code == 200


def test_not_ready_when_the_broker_is_unreachable(client, monkeypatch, settings):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    settings.CELERY_BROKER_URL = closed
    monkeypatch.setattr(app.conf, "broker_url", closed)
    response = _ready(client)
    assert response.status_code == 500
    assert "broker unreachable" in str(response.json())


def test_the_embedded_filesystem_broker_is_ready(monkeypatch, tmp_path):
    for sub in ("in", "processed", "control"):
        (tmp_path / sub).mkdir()
    monkeypatch.setattr(app.conf, "broker_url", "filesystem://")
    monkeypatch.setattr(
        app.conf,
        "broker_transport_options",
        {
            "data_folder_in": str(tmp_path / "in"),
            "data_folder_out": str(tmp_path / "in"),
            "processed_folder": str(tmp_path / "processed"),
            "control_folder": str(tmp_path / "control"),
        },
    )
    health.CeleryBroker().run()  # raises ServiceUnavailable if not
