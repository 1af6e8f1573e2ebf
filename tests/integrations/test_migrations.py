"""0004/0005: an integration's own unit list becomes its service account's memberships."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from programs.models import BusinessUnit

BEFORE = [("integrations", "0003_input_validators_and_bounds")]
AFTER = [("integrations", "0005_remove_integration_business_units")]


def migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def leaf() -> Iterator[None]:
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_units_listed_on_an_integration_become_its_accounts_memberships_and_back(leaf):
    apps = migrate(BEFORE)
    user_model = apps.get_model("auth", "User")
    unit_model = apps.get_model("programs", "BusinessUnit")
    integration_model = apps.get_model("integrations", "Integration")
    bot = user_model.objects.create(username="jira-bot")
    listed = unit_model.objects.create(code="listed", name="Listed")
    joined = unit_model.objects.create(code="joined", name="Joined")
    unit_model.objects.create(code="other", name="Other")
    joined.members.add(bot)
    integration = integration_model.objects.create(
        name="Jira", slug="jira", kind="jira", service_user=bot
    )
    integration.business_units.add(listed)  # added in the admin, the account forgotten

    migrate(AFTER)
    codes = BusinessUnit.objects.filter(members=bot.pk).values_list("code", flat=True)
    assert sorted(codes) == ["joined", "listed"]

    apps = migrate(BEFORE)
    integration = apps.get_model("integrations", "Integration").objects.get()
    assert sorted(integration.business_units.values_list("code", flat=True)) == [
        "joined",
        "listed",
    ]
