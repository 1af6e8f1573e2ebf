from django.db import migrations

TRIGGER_SQL = """
CREATE OR REPLACE FUNCTION gates_reviewevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'gates_reviewevent is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER gates_reviewevent_no_rewrite
    BEFORE UPDATE OR DELETE ON gates_reviewevent
    FOR EACH ROW EXECUTE FUNCTION gates_reviewevent_append_only();
"""
DROP_SQL = """
DROP TRIGGER IF EXISTS gates_reviewevent_no_rewrite ON gates_reviewevent;
DROP FUNCTION IF EXISTS gates_reviewevent_append_only();
"""


def add_trigger(apps, schema_editor):
    # SQLite (the embedded default) relies on the ORM guard alone.
    if schema_editor.connection.vendor == "postgresql":
        # params=None: the SQL contains a literal % that must not be read as a placeholder.
        schema_editor.execute(TRIGGER_SQL, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [("gates", "0002_seed_gates")]

    operations = [migrations.RunPython(add_trigger, drop_trigger)]
