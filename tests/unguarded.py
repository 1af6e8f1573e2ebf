"""Test setup that writes a state straight into the tables, past the database guards.

Some tests put rows into a state no service would write (an initiative moved with no transition
record, a review decided with no log entry) to show that the code does not trust what it reads.
PostgreSQL refuses such writes at commit, and a test's teardown checks deferred constraints the
same way; inside this block the statement fires no triggers at all (replica mode, which only a
superuser may set, as the test database's owner is).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction


@contextmanager
def unguarded() -> Iterator[None]:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
        yield
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = origin")
