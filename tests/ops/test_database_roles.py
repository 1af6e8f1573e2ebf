"""Production's two database roles (scripts/db_roles.sql, run by compose's postgres init):
migrations run as the owner; the app role writes rows but cannot switch the guards off."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql

from tests.ops.helpers import ROOT, clean_env, manage

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="needs psql")


@pytest.fixture(scope="module")
def roles_database(tmp_path_factory) -> Iterator[dict[str, str]]:
    suffix = secrets.token_hex(4)
    names = {
        "dbname": f"test_gk_roles_{suffix}",
        "owner": f"gk_owner_{suffix}",
        "app": f"gk_app_{suffix}",
        "owner_password": secrets.token_hex(12),
        "app_password": secrets.token_hex(12),
    }
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(names["dbname"])))
    try:
        variables = [arg for k, v in names.items() for arg in ("-v", f"{k}={v}")]
        result = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", names["dbname"], "-q",
             *variables, "-f", str(ROOT / "scripts" / "db_roles.sql")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        owner_url = f"postgres://{names['owner']}:{names['owner_password']}@127.0.0.1:5432/{names['dbname']}"
        migrated = manage(
            "migrate", "--noinput", env=clean_env(
                DJANGO_DEBUG="1",
                DATABASE_URL=owner_url,
                GATEKEEPER_VAR_DIR=str(tmp_path_factory.mktemp("var")),
            ),
            timeout=300,
        )  # fmt: skip
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        yield names
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(names["dbname"])
                )
            )
            for role in ("app", "owner"):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(names[role])))


@pytest.fixture
def app_connection(roles_database) -> Iterator[psycopg.Connection]:
    with psycopg.connect(
        host="127.0.0.1",
        port=5432,
        dbname=roles_database["dbname"],
        user=roles_database["app"],
        password=roles_database["app_password"],
        autocommit=True,
    ) as conn:
        yield conn


def test_the_app_role_is_no_superuser_and_owns_nothing(app_connection, roles_database):
    row = app_connection.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
        "WHERE rolname = current_user"
    ).fetchone()
    assert row == (False, False, False, False)
    owned = app_connection.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
        "WHERE r.rolname = current_user"
    ).fetchone()
    assert owned == (0,)


def test_the_app_role_runs_normal_writes_on_tables_the_owner_migrated(app_connection):
    # Tables created by the owner's migrations after the grants: default privileges cover them.
    group_id = app_connection.execute(
        "INSERT INTO auth_group (name) VALUES (%s) RETURNING id", ["role-test"]
    ).fetchone()[0]
    app_connection.execute("UPDATE auth_group SET name = 'role-test-2' WHERE id = %s", [group_id])
    app_connection.execute("DELETE FROM auth_group WHERE id = %s", [group_id])
    assert app_connection.execute("SELECT count(*) FROM programs_stagetransition").fetchone()


@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE programs_stagetransition",
        "TRUNCATE gates_reviewevent",
        "ALTER TABLE programs_stagetransition DISABLE TRIGGER ALL",
        "DROP TABLE programs_stagetransition",
        "SET session_replication_role = replica",
        "CREATE TABLE intruder (id int)",
    ],
)
def test_the_app_role_cannot_get_around_the_append_only_guards(app_connection, statement):
    with pytest.raises(errors.InsufficientPrivilege):
        app_connection.execute(statement)
