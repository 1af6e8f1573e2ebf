"""Several ORM querysets read in one statement, each as it would have read alone.

The dashboard shows many small panels; one round trip per panel made the page cost twenty-odd
queries. On PostgreSQL each queryset is compiled as the ORM would run it, wrapped as a JSON array
subquery, and every array comes back in one row of one statement; the rows are then turned back
into what the queryset yields (model instances with their ``select_related`` relations and
annotations, or ``values()`` dicts). Elsewhere (SQLite, ``make run``) each runs on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import JSONField, QuerySet
from django.db.models.query import (  # type: ignore[attr-defined]  # not in django-stubs
    ModelIterable,
    ValuesIterable,
    get_related_populators,
)


def read_together(
    querysets: Mapping[str, QuerySet[Any, Any]], *, also: Sequence[str] = ()
) -> dict[str, list[Any]]:
    """``{name: list(queryset)}`` in one statement on PostgreSQL. ``also`` are SQL expressions
    without parameters evaluated first in the same statement (``set_config`` calls for a read
    that follows in the same transaction)."""
    db = next(iter(querysets.values())).db if querysets else "default"
    connection = connections[db]
    if connection.vendor != "postgresql":
        return {name: list(qs) for name, qs in querysets.items()}
    columns: list[str] = list(also)
    params: list[Any] = []
    readers = {}
    quote = connection.ops.quote_name
    for name, qs in querysets.items():
        if qs._iterable_class not in (ModelIterable, ValuesIterable):
            raise TypeError(f"{name}: only model and values() querysets are read together")
        if qs.db != db:
            raise ValueError(f"{name}: every queryset must read from {db!r}")
        compiler = qs.query.get_compiler(using=db)
        try:
            sql, qs_params = compiler.as_sql(with_col_aliases=True)
        except EmptyResultSet:  # e.g. ``pk__in=[]``: the ORM answers [] without a query
            continue
        aliases = [alias for _, _, alias in compiler.select]
        row = ", ".join(f"t.{quote(alias)}" for alias in aliases)
        # json_agg reads the subquery's rows in the order its ORDER BY gives them. Only the
        # ORM's compiled SQL and its column aliases go in; values stay parameters.
        columns.append(
            f"(SELECT COALESCE(json_agg(json_build_array({row})), '[]')::text FROM ({sql}) t)"  # noqa: S608
        )
        params.extend(qs_params)
        readers[name] = (qs, compiler)
    if not readers and not also:
        return {name: [] for name in querysets}
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(columns), params)
        values = cursor.fetchone()[len(also) :]
    read = {
        name: _rebuild(qs, compiler, json.loads(text, parse_float=Decimal))
        for (name, (qs, compiler)), text in zip(readers.items(), values, strict=True)
    }
    return {name: read.get(name, []) for name in querysets}


def _typed(field: Any, value: Any) -> Any:
    # What the driver would have handed the ORM: JSON has no datetimes or decimals, so each
    # value goes through its field's to_python (a JSON column arrives decoded already).
    if value is None or isinstance(field, JSONField):
        return value
    return field.to_python(value)


def _rebuild(qs: QuerySet[Any, Any], compiler: Any, rows: list[list[Any]]) -> list[Any]:
    fields = [expression.output_field for expression, _, _ in compiler.select]
    typed = [[_typed(f, v) for f, v in zip(fields, row, strict=True)] for row in rows]
    if qs._iterable_class is ValuesIterable:
        query = qs.query
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        return [dict(zip(names, row, strict=True)) for row in typed]
    # ModelIterable's own steps, on rows already fetched.
    select, klass_info = compiler.select, compiler.klass_info
    annotation_col_map = compiler.annotation_col_map
    model = klass_info["model"]
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    init_list = [f[0].target.attname for f in select[start:end]]
    populators = get_related_populators(klass_info, select, qs.db)
    instances = []
    for row in typed:
        obj = model.from_db(qs.db, init_list, row[start:end])
        for populator in populators:
            populator.populate(row, obj)
        for attr, position in (annotation_col_map or {}).items():
            setattr(obj, attr, row[position])
        instances.append(obj)
    return instances
