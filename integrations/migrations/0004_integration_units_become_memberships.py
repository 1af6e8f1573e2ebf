"""An integration's scope is its service account's business unit memberships alone: before its
own list of units goes (0005), make each account a member of every unit its integrations listed,
so nothing that was in scope falls out of it."""

from typing import Any

from django.db import migrations


def forwards(apps: Any, schema_editor: Any) -> None:
    Integration = apps.get_model("integrations", "Integration")
    for integration in Integration.objects.prefetch_related("business_units"):
        for unit in integration.business_units.all():
            unit.members.add(integration.service_user_id)


def backwards(apps: Any, schema_editor: Any) -> None:
    # The list comes back holding what the account's memberships say, the scope it had.
    Integration = apps.get_model("integrations", "Integration")
    BusinessUnit = apps.get_model("programs", "BusinessUnit")
    for integration in Integration.objects.all():
        units = BusinessUnit.objects.filter(members=integration.service_user_id)
        integration.business_units.set(units)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0003_input_validators_and_bounds"),
        ("programs", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
