"""gatekeeper.compiled: a read compiled once per connection gives what its queryset gives, for
every call's values, and keeps the ORM's refusals."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import CharField, Exists, OuterRef, QuerySet, Value
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from gatekeeper.compiled import CompiledRead, Param
from programs.models import Initiative, SuccessMetric
from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory

pytestmark = pytest.mark.django_db


def _joined(*, key: Any, with_metric: Any, locked: bool = False) -> QuerySet[Initiative]:
    queryset = Initiative.objects.all()
    if locked:
        queryset = queryset.select_for_update(of=("self",))
    return (
        queryset.select_related("business_unit", "business_owner", "sponsor")
        .filter(key=key)
        .annotate(
            has_metric=Exists(
                SuccessMetric.objects.filter(initiative=OuterRef("pk"), name=with_metric)
            ),
            label=Value("x", output_field=CharField()),
        )
        .order_by("pk")
    )


def _params() -> dict[str, Any]:
    key_field = Initiative._meta.get_field("key")
    name_field = SuccessMetric._meta.get_field("name")
    return {"key": Param("key", key_field), "with_metric": Param("metric", name_field)}  # type: ignore[arg-type]


def _snapshot(rows: list[Initiative]) -> list[tuple[Any, ...]]:
    """Every column, each joined row as attached (not reloaded), and the annotations."""
    out = []
    for row in rows:
        fields = tuple(getattr(row, f.attname) for f in Initiative._meta.concrete_fields)
        joined = tuple(
            (name, Initiative._meta.get_field(name).get_cached_value(row, None))  # type: ignore[union-attr]
            for name in ("business_unit", "business_owner", "sponsor")
        )
        pks = tuple((name, getattr(obj, "pk", None)) for name, obj in joined)
        out.append((fields, pks, row.has_metric, row.label, row._state.adding, row._state.db))  # type: ignore[attr-defined]
    return out


def test_each_call_gives_what_the_queryset_gives_for_its_values() -> None:
    sponsor = UserFactory(username="sponsor")
    first = InitiativeFactory(name="First", sponsor=sponsor)
    second = InitiativeFactory(name="Second")
    SuccessMetricFactory(initiative=first, name="Cycle time")
    read = CompiledRead(Initiative, lambda: _joined(**_params()))

    for key, metric in [
        (first.key, "Cycle time"),
        (second.key, "Cycle time"),
        (first.key, "Accuracy"),
        ("AI-none", "Cycle time"),
    ]:
        expected = list(_joined(key=key, with_metric=metric))
        with CaptureQueriesContext(connection) as queries:
            got = read(key=key, metric=metric)
        assert len(queries) == 1  # the joined rows came with it
        assert _snapshot(got) == _snapshot(expected)
    # The joined rows are attached: reading them costs nothing more.
    with CaptureQueriesContext(connection) as queries:
        row = read(key=first.key, metric="Cycle time")[0]
        assert (row.sponsor, row.business_unit.code) == (sponsor, first.business_unit.code)  # type: ignore[union-attr]
    assert len(queries) == 1


def test_built_once_per_connection_and_values_rows_too() -> None:
    initiative = InitiativeFactory()
    built = []

    def build() -> Any:
        built.append(threading.get_ident())
        return Initiative.objects.filter(pk=Param("pk", Initiative._meta.pk)).values_list(  # type: ignore[arg-type]
            "key", "stage"
        )

    read = CompiledRead(Initiative, build)
    assert read(pk=initiative.pk) == [(initiative.key, initiative.stage)]
    assert read(pk=initiative.pk + 1000) == []
    assert len(built) == 1

    # Another thread has its own connection, so its own compiled statement.
    seen: list[Any] = []

    def elsewhere() -> None:
        try:
            seen.append(read(pk=initiative.pk))
        finally:
            connection.close()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert len(built) == 2
    assert len(seen) == 1  # it ran (the row is not visible there: this test's transaction)


def test_a_locking_read_still_needs_a_transaction() -> None:
    initiative = InitiativeFactory()
    read = CompiledRead(Initiative, lambda: _joined(locked=True, **_params()))
    with transaction.atomic():
        sql_rows = read(key=initiative.key, metric="x")
    assert [r.pk for r in sql_rows] == [initiative.pk]
    # pytest-django's test transaction counts as one; leave it to see the refusal.
    connection.in_atomic_block, was = False, connection.in_atomic_block
    try:
        with pytest.raises(TransactionManagementError):
            read(key=initiative.key, metric="x")
    finally:
        connection.in_atomic_block = was


def test_the_kept_statement_locks_the_row() -> None:
    initiative = InitiativeFactory()
    read = CompiledRead(Initiative, lambda: _joined(locked=True, **_params()))
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        read(key=initiative.key, metric="x")
        read(key=initiative.key, metric="x")
    statements = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    assert len(statements) == 2
    assert all('FOR UPDATE OF "programs_initiative"' in sql for sql in statements)
