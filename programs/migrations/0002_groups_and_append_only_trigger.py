from django.db import migrations

GROUPS = ("business-owners", "approvers", "pmo", "integrations")

TRIGGER_SQL = """
CREATE OR REPLACE FUNCTION programs_stagetransition_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'programs_stagetransition is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER programs_stagetransition_no_rewrite
    BEFORE UPDATE OR DELETE ON programs_stagetransition
    FOR EACH ROW EXECUTE FUNCTION programs_stagetransition_append_only();
"""
DROP_SQL = """
DROP TRIGGER IF EXISTS programs_stagetransition_no_rewrite ON programs_stagetransition;
DROP FUNCTION IF EXISTS programs_stagetransition_append_only();
"""


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in GROUPS:
        Group.objects.get_or_create(name=name)


def add_trigger(apps, schema_editor):
    # SQLite (the embedded default) relies on the ORM guard alone.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER_SQL, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("programs", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(create_groups, migrations.RunPython.noop),
        migrations.RunPython(add_trigger, drop_trigger),
    ]
