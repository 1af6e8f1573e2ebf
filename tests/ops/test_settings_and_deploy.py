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


def _run_production(script: str, tmp_path) -> subprocess.CompletedProcess:
    env = clean_env(
        DJANGO_DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="localhost",
        GATEKEEPER_VAR_DIR=str(tmp_path),
    )
    return subprocess.run(
        [PYTHON, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def test_compose_healthcheck_passes_under_production_settings(tmp_path):
    """Run the compose web healthcheck's request against the app with production settings:
    readiness, so not ready before `migrate` and ready after."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    probe = compose["services"]["web"]["healthcheck"]["test"][-1]
    assert "/readyz" in probe and "Host" in probe
    script = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "from django.test import Client\n"
        "host = __import__('os').environ['ALLOWED_HOSTS'].split(',')[0]\n"
        "client = Client(HTTP_HOST=host, HTTP_ACCEPT='application/json')\n"
        "print(client.get('/readyz').status_code)\n"
        "call_command('migrate', verbosity=0)\n"
        "print(client.get('/readyz').status_code)\n"
        "print(client.get('/healthz').status_code)\n"
    )
    result = _run_production(script, tmp_path)
    assert result.stdout.split() == ["500", "200", "200"], result.stderr


def test_api_schema_and_docs_need_a_login_outside_debug(tmp_path):
    script = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "from django.contrib.auth import get_user_model\n"
        "from django.test import Client\n"
        "from django.conf import settings\n"
        "from django.test.utils import override_settings\n"
        "call_command('migrate', verbosity=0)\n"
        "# No collectstatic here: the manifest storage would refuse every asset URL.\n"
        "plain = 'django.contrib.staticfiles.storage.StaticFilesStorage'\n"
        "override_settings(STORAGES={**settings.STORAGES, 'staticfiles': {'BACKEND': plain}})"
        ".enable()\n"
        "client = Client(HTTP_HOST='localhost')\n"
        "paths = ['/api/schema/', '/api/docs/', '/api/redoc/']\n"
        "print(*[client.get(p, secure=True).status_code for p in paths])\n"
        "client.force_login(get_user_model().objects.create_user('reader'))\n"
        "print(*[client.get(p, secure=True).status_code for p in paths])\n"
    )
    result = _run_production(script, tmp_path)
    anonymous, signed_in = result.stdout.strip().splitlines()[-2:]
    assert all(code in {"401", "403"} for code in anonymous.split()), result.stdout + result.stderr
    assert signed_in.split() == ["200", "200", "200"], result.stdout + result.stderr


def test_compose_runs_migrations_as_the_owner_and_the_rest_as_the_app_role():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "gatekeeper_owner:" in services["migrate"]["environment"]["DATABASE_URL"]
    for name in ("web", "worker", "beat"):
        assert "gatekeeper_app:" in services[name]["environment"]["DATABASE_URL"]
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert "/readyz" in probe or "gatekeeper.probe" in probe
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("SECRET_KEY", "GATEKEEPER_OWNER_PASSWORD", "GATEKEEPER_APP_PASSWORD"):
        assert f"${{{secret}:?" in text  # required: compose refuses to start without it
    init = services["postgres"]["volumes"]
    assert any("docker-entrypoint-initdb.d" in v for v in init)
