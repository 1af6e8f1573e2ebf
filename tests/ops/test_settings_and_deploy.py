"""Settings come from the environment and fail loudly; production settings pass check --deploy."""

from __future__ import annotations

import secrets
import subprocess

import pytest
import yaml

from tests.ops.helpers import PYTHON, ROOT, clean_env, manage


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DJANGO_DEBUG", "maybe"),
        ("EMAIL_PORT", "twenty-five"),
        ("DATABASE_URL", "not a url at all"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("SITE_URL", "ftp://example.com"),
    ],
)
def test_bad_environment_value_stops_start_naming_the_variable(variable, value, tmp_path):
    env = clean_env(**{"DJANGO_DEBUG": "1", "GATEKEEPER_VAR_DIR": str(tmp_path), variable: value})
    result = manage("check", env=env)
    assert result.returncode != 0
    assert variable in result.stderr


def test_secret_key_required_outside_debug(tmp_path):
    result = manage("check", env=clean_env(DJANGO_DEBUG="0", GATEKEEPER_VAR_DIR=str(tmp_path)))
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = clean_env(
        DJANGO_DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="gatekeeper.example.com",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
        REDIS_URL="redis://127.0.0.1:6379/0",
        GATEKEEPER_VAR_DIR=str(tmp_path),
    )
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_no_missing_migrations(tmp_path):
    env = clean_env(DJANGO_DEBUG="1", GATEKEEPER_VAR_DIR=str(tmp_path))
    result = manage("makemigrations", "--check", "--dry-run", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_runs_the_production_shape():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat"} <= set(services)
    assert "gunicorn" in services["web"]["command"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "gatekeeper", "worker"]
    assert "beat" in services["beat"]["command"]
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://")
        assert env["DJANGO_DEBUG"] == "0"
    # Compose and the Procfile start the same programs.
    procfile = (ROOT / "Procfile").read_text()
    for program in (
        "gunicorn gatekeeper.wsgi",
        "celery -A gatekeeper worker",
        "celery -A gatekeeper beat",
    ):
        assert program in procfile


def test_compose_healthcheck_passes_under_production_settings(tmp_path):
    """Run the compose web healthcheck's request against the app with production settings."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    probe = compose["services"]["web"]["healthcheck"]["test"][-1]
    assert "/healthz" in probe and "Host" in probe
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "host = __import__('os').environ['ALLOWED_HOSTS'].split(',')[0]\n"
        "response = Client(HTTP_HOST=host).get('/healthz')\n"
        "print(response.status_code)\n"
    )
    env = clean_env(
        DJANGO_DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="localhost",
        GATEKEEPER_VAR_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [PYTHON, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "200", result.stderr
