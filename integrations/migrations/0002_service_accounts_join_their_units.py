"""Service accounts now see and act only within the business units they are members of (plus
what they created): make each integration's account a member of the units it was scoped to, so
tickets keep closing milestones after the upgrade."""

from typing import Any

from django.db import migrations


def forwards(apps: Any, schema_editor: Any) -> None:
    Integration = apps.get_model("integrations", "Integration")
    for integration in Integration.objects.prefetch_related("business_units"):
        for unit in integration.business_units.all():
            unit.members.add(integration.service_user_id)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0001_initial"),
        ("programs", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
