"""Model building blocks shared by the apps (a kernel module, below every app in the layering).

Also the PostgreSQL guards those models declare (``Meta.triggers``, installed by migrations through
django-pgtrigger; SQLite, the embedded default, has none and relies on the ORM guards alone).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import pgtrigger
from django.db import IntegrityError, NotSupportedError, connections, models, router, transaction
from django.db.models import F, Func, OuterRef, Subquery, Value
from django.db.models.expressions import RawSQL
from django.db.models.fields import AutoFieldMixin
from django.db.models.functions import Coalesce, JSONObject
from django.db.models.sql import UpdateQuery
from django.utils import timezone
from django_fsm import (
    ConcurrentTransition,
    ConcurrentTransitionMixin,
    FSMFieldMixin,
    FSMModelMixin,
)
from pgtrigger import compiler

M = TypeVar("M", bound=models.Model)

# --- database guards --------------------------------------------------------------------------


class GuardTriggerSql(compiler.UpsertTriggerSql):
    """pgtrigger's installation SQL without its escape hatch.

    pgtrigger's own triggers return early when the session setting ``pgtrigger.ignore`` names
    them, and any SQL the app runs can set it: a guard against SQL that SQL can switch off is no
    guard. Migrations reference this template, so it must never change; write a new class instead.
    """

    def get_template(self) -> str:
        return """
            CREATE OR REPLACE FUNCTION {pgid}()
            RETURNS TRIGGER AS $$
                {declare}
                BEGIN
                    {func}
                END;
            $$ LANGUAGE plpgsql;

            DROP TRIGGER IF EXISTS {pgid} ON {table};
            CREATE {constraint} TRIGGER {pgid}
                {when} {operation} ON {table}
                {timing}
                {referencing}
                FOR EACH {level} {condition}
                EXECUTE PROCEDURE {execute};

            COMMENT ON TRIGGER {pgid} ON {table} IS '{hash}';
        """


def _unignorable(compiled: compiler.Trigger) -> compiler.Trigger:
    return compiler.Trigger(name=compiled.name, sql=GuardTriggerSql(**compiled.sql.kwargs))


class Protect(pgtrigger.Protect):
    """``pgtrigger.Protect`` that ``pgtrigger.ignore`` cannot turn off."""

    def compile(self, model: Any) -> compiler.Trigger:
        return _unignorable(super().compile(model))


class Guard(pgtrigger.Trigger):
    """``pgtrigger.Trigger`` that ``pgtrigger.ignore`` cannot turn off."""

    def compile(self, model: Any) -> compiler.Trigger:
        return _unignorable(super().compile(model))


_TOP_XID = "pg_current_xact_id()::text::bigint"
_XID_SPAN = 2**32  # xmin is a 32-bit transaction id: the low half of the 64-bit one


def inserted_in_this_transaction(alias: str) -> str:
    """SQL, true when the visible row ``alias`` was inserted by the current transaction.

    Its ``xmin`` is then our top-level transaction id or, for a row written inside a savepoint
    (every nested ``transaction.atomic``), one of our subtransactions' ids, which are newer;
    ``ahead`` is how far newer, read modulo 2**32 (ids older than ours come out past 2**31:
    someone else's). A newer id is ours if no transaction with that id had finished when the
    query's snapshot was taken (a visible row of another transaction is from a finished one);
    otherwise ``pg_xact_status`` tells, since only our own unfinished transaction can show a
    visible row while still in progress. The snapshot bound also keeps ``pg_xact_status`` from
    being asked about an id not yet assigned, which is an error.
    """
    ahead = f"(({alias}.xmin::text::bigint - {_TOP_XID} % {_XID_SPAN} + {_XID_SPAN}) % {_XID_SPAN})"
    return (
        f"(CASE WHEN {ahead} >= {_XID_SPAN // 2} THEN false"
        f" WHEN {_TOP_XID} + {ahead} >= pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
        " THEN true"
        f" ELSE pg_xact_status(({_TOP_XID} + {ahead})::text::xid8)"
        " IS NOT DISTINCT FROM 'in progress' END)"
    )


# --- history and versioned rows -----------------------------------------------------------


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise TypeError(f"{self.model.__name__} records are append-only and cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError(f"{self.model.__name__} records are append-only and cannot be deleted")


class AppendOnlyModel(models.Model):
    """A history record: written once, never edited or deleted through the ORM.

    On PostgreSQL a trigger refuses updates and deletes in SQL too, so not even raw queries from
    the app rewrite history. A subclass's ``Meta`` extends ``AppendOnlyModel.Meta`` to keep it.
    """

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True
        triggers = [Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError(f"{type(self).__name__} records are append-only and cannot be edited")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError(f"{type(self).__name__} records are append-only and cannot be deleted")


class ImmutableModel(models.Model):
    """Rows that a later version supersedes rather than edits."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError(f"{type(self).__name__} is immutable; revise the template to change it")
        super().save(*args, **kwargs)


# --- state machines -------------------------------------------------------------------------


class SafeFSMModelMixin(FSMModelMixin):
    """``FSMModelMixin`` whose ``refresh_from_db`` leaves protected state fields protected.

    django-fsm's version switches ``protected`` off on the field (shared by every thread) while
    it reloads, and not back on if the reload raises: meanwhile, or from then on, any thread may
    assign the state directly. The descriptor only refuses an assignment over a value the instance
    already holds, so this reload takes the instance's own values out of the way instead (still
    reloading them, not treating them as deferred) and puts back any the reload did not replace.
    """

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        held = {
            f.name: self.__dict__.pop(f.name)
            for f in self._meta.concrete_fields
            if isinstance(f, FSMFieldMixin) and f.protected and f.name in self.__dict__
        }
        outer = self.__dict__.get("_fsm_reloading", frozenset())
        self.__dict__["_fsm_reloading"] = outer | held.keys()
        try:
            # Past FSMModelMixin: its flag-flipping version is the one being replaced.
            super(FSMModelMixin, self).refresh_from_db(*args, **kwargs)
        finally:
            if outer:
                self.__dict__["_fsm_reloading"] = outer
            else:
                del self.__dict__["_fsm_reloading"]
            for name, value in held.items():
                self.__dict__.setdefault(name, value)

    def get_deferred_fields(self) -> set[str]:
        return super().get_deferred_fields() - self.__dict__.get("_fsm_reloading", frozenset())


# --- inserts that happen once -------------------------------------------------------------


def create_once(model: type[models.Model], **fields: Any) -> bool:
    """Insert a row whose unique constraint says "this happened"; False if it already had.

    The savepoint keeps a duplicate from aborting the caller's transaction, so a sweep that
    races another (or repeats itself) just moves on: "once" is the database's fact.
    """
    try:
        with transaction.atomic():
            model._default_manager.create(**fields)
    except IntegrityError:
        return False
    return True


def insert_ignoring_conflicts(
    objs: Sequence[models.Model],
    *,
    fields: Sequence[str] | None = None,
    conflict: str | None = None,
    returning: Sequence[str],
    returning_sql: str = "",
) -> list[tuple[Any, ...]]:
    """Insert rows of one model in one statement, skipping each one a unique constraint refuses
    (all constraints, or the one on the ``conflict`` field); the ``returning`` columns (plus the
    ``returning_sql`` expression, computed by the same statement) of the rows inserted.

    ``INSERT ... ON CONFLICT DO NOTHING``: a duplicate is skipped, not an error, so neither the
    caller's transaction nor the other rows are lost to it, and no savepoint is needed. The
    objects are not changed. One statement's parameters are bounded (65,535 on PostgreSQL):
    callers pass a chunk, not thousands of rows.
    """
    if not objs:
        return []
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    by_name = {f.name: f for f in model._meta.concrete_fields}
    written = (
        [by_name[name] for name in fields]
        if fields is not None
        else [f for f in model._meta.concrete_fields if not f.primary_key]
    )
    quote = connection.ops.quote_name
    target = f"({quote(by_name[conflict].column)}) " if conflict else ""
    columns = [quote(by_name[name].column) for name in returning]
    if returning_sql:
        columns.append(returning_sql)
    sql = _insert_sql(
        connection,
        model,
        written,
        len(objs),
        f"ON CONFLICT {target}DO NOTHING RETURNING {', '.join(columns)}",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _insert_params(objs, written, connection))
        return list(cursor.fetchall())


def _insert_sql(
    connection: Any, model: type[models.Model], written: Sequence[Any], rows: int, tail: str
) -> str:
    """``INSERT INTO`` the model's table, the ``written`` fields' columns, ``rows`` rows of
    placeholders, then ``tail`` (conflict handling, ``RETURNING``)."""
    quote = connection.ops.quote_name
    one_row = f"({', '.join(['%s'] * len(written))})"
    return (
        f"INSERT INTO {quote(model._meta.db_table)} "  # noqa: S608 -- names from the model
        f"({', '.join(quote(f.column) for f in written)}) "
        f"VALUES {', '.join([one_row] * rows)} {tail}"
    )


def _insert_params(objs: Sequence[models.Model], written: Sequence[Any], connection: Any) -> list:
    """The values of ``objs`` for ``written``, prepared as the ORM prepares an insert's."""
    return [
        f.get_db_prep_save(f.pre_save(obj, add=True), connection) for obj in objs for f in written
    ]


def mark_saved(obj: models.Model, pk: Any, alias: str) -> None:
    """``obj``, which the caller just inserted with SQL of its own (a multi-row or one-statement
    write the ORM can't express), as the ORM leaves an instance it saved: its new primary key,
    no longer adding, bound to the database ``alias``."""
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = alias


def create_once_many(objs: Sequence[models.Model], *, returning: str) -> set[Any]:
    """``create_once`` for many rows of one model in one statement: insert each unless its unique
    constraint says it already happened, and return the ``returning`` column (one that tells the
    rows apart, such as the foreign key each row is about) of the rows actually inserted."""
    return {row[0] for row in insert_ignoring_conflicts(objs, returning=[returning])}


def insert_rows(objs: Sequence[models.Model]) -> None:
    """``bulk_create`` of a few new rows of one model, for the write paths a person waits on:
    one ``INSERT ... RETURNING`` whose text is kept per model and row count, each object then
    marked saved with its new key (as ``bulk_create`` leaves them; no signals, as it sends none).

    ``bulk_create`` spent about 1.5 ms of CPU on a deciding approval's two log entries, most of
    it preparing its general case (batches, conflicts, fields returned by database defaults);
    this does what those two rows need.
    """
    if not objs:
        return
    model = type(objs[0])
    meta = model._meta
    if not isinstance(meta.pk, AutoFieldMixin) or any(
        getattr(f, "generated", False) or f.has_db_default() for f in meta.concrete_fields
    ):
        # The key and every other column come from here: no database-made values but the id.
        raise TypeError(f"{model.__name__}: insert_rows takes models with an auto id only")
    db = router.db_for_write(model)
    connection = connections[db]
    written = [f for f in meta.concrete_fields if not f.primary_key]

    def compile_() -> tuple[str, tuple[Any, ...]]:
        returning = f"RETURNING {connection.ops.quote_name(meta.pk.column)}"  # type: ignore[union-attr]
        return _insert_sql(connection, model, written, len(objs), returning), ()

    sql, _ = _compiled(("insert_rows", db, model, len(objs)), compile_)
    with connection.cursor() as cursor:
        cursor.execute(sql, _insert_params(objs, written, connection))
        keys = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, keys, strict=True):
        mark_saved(obj, pk, db)


def update_row(obj: models.Model, fields: Sequence[str]) -> bool:
    """``obj.save(update_fields=fields)`` through a statement compiled once per model and set of
    fields, the values bound per call; False if the row is gone. For plain models on the write
    paths a person waits on (no signals are sent, and a model that overrides ``save`` is
    refused): the ORM's save prepared a one-row UPDATE with about 1 ms of CPU, more than
    PostgreSQL spends running it."""
    if type(obj).save is not models.Model.save:
        raise TypeError(f"{type(obj).__name__} has a save() of its own; call it")
    return _update_one(obj, tuple(fields), {})


def save_transitioned(obj: ConcurrentTransitionMixin) -> None:
    """``obj.save()`` after a transition of a django-fsm-2 ``ConcurrentTransitionMixin`` model,
    through a statement compiled once per model: every column written, and only while the row's
    state fields still hold the values ``obj`` was read with; ``ConcurrentTransition`` if they
    changed since, as that mixin's ``save`` raises. No signals are sent.

    For the state changes a person waits on (a review decided), where the ORM's save spent
    about 1.2 ms of CPU preparing one UPDATE."""
    model = type(obj)
    meta = model._meta
    initial: dict[str, Any] = obj._ConcurrentTransitionMixin__initial_states  # type: ignore[attr-defined]
    names = tuple(f.name for f in meta.concrete_fields if not f.primary_key)
    if not _update_one(obj, names, initial):
        if model._default_manager.filter(pk=obj.pk).exists():
            raise ConcurrentTransition(
                "Cannot save object! The state has been changed since fetched from the database!"
            )
        raise model.DoesNotExist(f"no {meta.object_name} #{obj.pk}")  # type: ignore[attr-defined]
    obj._update_initial_state()


def _update_one(obj: models.Model, names: tuple[str, ...], where: dict[str, Any]) -> bool:
    """One row's ``names`` fields written from ``obj``, where its primary key is ``obj``'s and
    each column of ``where`` (attnames) holds the value given; True if the row was written."""
    meta = obj._meta
    values = {name: meta.get_field(name).pre_save(obj, add=False) for name in names}  # type: ignore[union-attr]
    return _update_by_pk(type(obj), obj.pk, values, where)


def _update_by_pk(
    model: type[models.Model], pk: Any, values: dict[str, Any], where: dict[str, Any]
) -> bool:
    """``filter(pk=pk, **where).update(**values)`` for one row, through a statement compiled
    once per model, fields set and columns matched; True if the row was written.

    Each value is bound per call, except an expression (``F(...)``), which stays in the
    compiled statement and is part of its shape; ``where``'s keys are attnames."""
    db = router.db_for_write(model)
    connection = connections[db]
    shape = _finish_shape(values)
    conditions = tuple(where)

    def compile_() -> tuple[str, tuple[Any, ...]]:
        meta = model._meta
        columns = {f.attname: f for f in meta.concrete_fields}
        match = models.Q(
            pk=Param("__pk", meta.pk),  # type: ignore[arg-type]
            **{name: Param(f"__where_{name}", columns[name]) for name in conditions},
        )
        return _update_sql(model, db, match, _finish_fields(model, shape))

    sql, template = _compiled(("update_by_pk", db, model, shape, conditions), compile_)
    bound = {**values, "__pk": pk}
    bound.update((f"__where_{name}", value) for name, value in where.items())
    with connection.cursor() as cursor:
        cursor.execute(sql, bind_params(template, bound, connection))
        return bool(cursor.rowcount == 1)


# --- claimed work: statements compiled once, values bound per call ---------------------------


class Param(models.Expression):
    """A named value in a statement that is compiled once per process and run many times.

    Compiling an UPDATE through the ORM costs more CPU than PostgreSQL spends running it, and the
    outbox's workers run the same few statements for every delivery. ``claim``,
    ``claim_and_read`` and ``finish_claim`` therefore keep the SQL the ORM compiles for a
    statement's shape and bind the values that change from call to call (the time, a row's id,
    a claim token) at each call, prepared by ``field`` as the ORM prepares a value for that
    column (``get_db_prep_value``). A caller writes such a value into its ``claimable`` Q as a
    Param and passes the value in ``params``. ``gatekeeper.compiled.CompiledRead`` does the same
    for the locking reads of the write paths.
    """

    def __init__(self, name: str, field: models.Field) -> None:
        super().__init__(output_field=field)
        self.name = name

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        return "%s", [self]

    def bind(self, value: Any, connection: Any) -> Any:
        return self.output_field.get_db_prep_value(value, connection, prepared=False)


class ParamList(Param):
    """A ``Param`` that is a list of values of ``field`` (bound as one array parameter)."""

    def bind(self, value: Any, connection: Any) -> Any:
        prep = self.output_field.get_db_prep_value
        return [prep(v, connection, prepared=False) for v in value]


class EqualsAny(models.Expression):
    """``column = ANY(array)``: a filter on a list of values bound as one parameter, so the
    statement's text is the same however many values there are (and compiled once)."""

    conditional = True
    output_field = models.BooleanField()

    def __init__(self, column: Any, values: Any) -> None:
        super().__init__()
        self.column, self.values = column, values

    def get_source_expressions(self) -> list[Any]:
        return [self.column, self.values]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        self.column, self.values = exprs

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        column, column_params = compiler.compile(self.column)
        values, values_params = compiler.compile(self.values)
        return f"{column} = ANY({values})", [*column_params, *values_params]


# (alias, model, where, values, ...) -> (sql, params with Params in place). Bounded: a caller
# passing plain values that change per call gets correct statements, just no reuse.
_statements: dict[Any, tuple[str, tuple[Any, ...]]] = {}
_STATEMENTS_KEPT = 256


def _compiled(key: Any, compile_: Any) -> tuple[str, tuple[Any, ...]]:
    try:
        return _statements[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable value (a list, say): compiled, not kept
        return compile_()
    if len(_statements) >= _STATEMENTS_KEPT:
        _statements.clear()
    statement = _statements[key] = compile_()
    return statement


def bind_params(params: Sequence[Any], values: dict[str, Any], connection: Any) -> list[Any]:
    """A compiled statement's parameters with each ``Param`` replaced by its value, bound."""
    return [p.bind(values[p.name], connection) if isinstance(p, Param) else p for p in params]


def _update_sql(
    model: type[models.Model], db: str, where: models.Q, values: dict[str, Any]
) -> tuple[str, tuple[Any, ...]]:
    """Compile the UPDATE the ORM sends for ``filter(where).update(**values)``.

    Only for filters on the model's own columns: a filter that needs a join would make the ORM
    read the ids first, which this single statement does not do.
    """
    update = model._default_manager.using(db).filter(where).query.chain(UpdateQuery)
    assert isinstance(update, UpdateQuery)
    update.add_update_values(values)
    sql, params = update.get_compiler(db).as_sql()
    return sql, tuple(params)


def _claim_where_and_set(
    model: type[models.Model],
    claimable: Any,
    status: str,
    values: dict[str, Any] | None,
    rows: Any = None,
) -> tuple[models.Q, dict[str, Any]]:
    """The claim's WHERE and SET, with its per-call values (the row's id, the claim's token and
    time) as Params; made only when a statement is compiled. ``rows``: a condition picking the
    rows instead of the one ``pk``."""
    meta = model._meta
    claimed_at = Param("__claimed_at", meta.get_field("claimed_at"))  # type: ignore[arg-type]
    if rows is None:
        rows = models.Q(pk=Param("__pk", meta.pk))  # type: ignore[arg-type]
    where = models.Q(claimable) & rows
    return where, {
        **(values or {}),
        "status": status,
        "claimed_at": claimed_at,
        "claim_token": Param("__claim_token", meta.get_field("claim_token")),  # type: ignore[arg-type]
        "attempts": F("attempts") + 1,
        "updated_at": claimed_at,
    }


def _claim_key(
    kind: str,
    db: str,
    model: type[models.Model],
    claimable: Any,
    status: str,
    values: dict[str, Any] | None,
    related: tuple[str, ...] = (),
) -> tuple[Any, ...]:
    return (kind, db, model, claimable, status, tuple((values or {}).items()), related)


def _claim_bound(pk: Any, params: dict[str, Any] | None) -> tuple[dict[str, Any], uuid.UUID]:
    token = uuid.uuid4()
    bound = {**(params or {}), "__pk": pk, "__claimed_at": timezone.now(), "__claim_token": token}
    return bound, token


def claim(
    model: type[models.Model],
    *,
    pk: Any,
    claimable: Any,
    status: str,
    values: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> uuid.UUID | None:
    """Claim one row of a work table (the outbox's deliveries, the inbound inbox) for this
    worker: a conditional UPDATE that sets ``status``, a fresh ``claim_token`` and the claim
    time and counts the attempt (and sets ``values``, if given). Returns the token, or None
    when the row is not claimable now (done, not due, or another worker holds it).

    The WHERE (``claimable``, a Q on the table's own columns, with ``params`` the values of any
    ``Param`` in it) is re-checked under the row lock on PostgreSQL, so of two racing workers
    the second sees the first one's fresh claim and updates nothing. Writes that finish the work
    filter on the token (``finish_claim``), so a worker whose lease ran out can't overwrite the
    one that took over.
    """
    db = router.db_for_write(model)
    connection = connections[db]

    def compile_() -> tuple[str, tuple[Any, ...]]:
        where, fields = _claim_where_and_set(model, claimable, status, values)
        return _update_sql(model, db, where, fields)

    sql, template = _compiled(_claim_key("claim", db, model, claimable, status, values), compile_)
    bound, token = _claim_bound(pk, params)
    with connection.cursor() as cursor:
        cursor.execute(sql, bind_params(template, bound, connection))
        claimed = cursor.rowcount
    return token if claimed == 1 else None


def claim_and_read(
    model: type[M],
    *,
    pk: Any,
    claimable: Any,
    status: str,
    related: tuple[str, ...] = (),
    values: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[uuid.UUID, M] | None:
    """``claim``, returning the token and the claimed row with its ``related`` foreign keys'
    rows attached (as ``select_related`` would), or None if the row was not claimable.

    On PostgreSQL it is one statement: the claim's UPDATE (the same conditional UPDATE as
    ``claim``, built by the ORM, so its WHERE is on the claimed table itself and re-checked
    under the row lock) returns the row, joined to the related rows in the same round trip.
    The row comes from RETURNING, so it is the claimed version, not the statement's snapshot.
    Elsewhere: the claim, then one read.
    """
    db = router.db_for_write(model)
    connection = connections[db]
    manager = model._default_manager
    if connection.vendor != "postgresql":
        token = claim(
            model, pk=pk, claimable=claimable, status=status, values=values, params=params
        )
        if token is None:
            return None
        return token, manager.using(db).select_related(*related).get(pk=pk)

    def compile_() -> tuple[str, tuple[Any, ...]]:
        where, fields = _claim_where_and_set(model, claimable, status, values)
        return _claimed_and_joined(model, db, related, where, fields)

    sql, template = _compiled(
        _claim_key("claim_and_read", db, model, claimable, status, values, related), compile_
    )
    bound, token = _claim_bound(pk, params)
    with connection.cursor() as cursor:
        cursor.execute(sql, bind_params(template, bound, connection))
        row = cursor.fetchone()
    if row is None:
        return None
    return token, _read_joined(model, connection, db, related, row)


def claim_and_read_many(
    model: type[M],
    *,
    pks: Sequence[Any],
    claimable: Any,
    status: str,
    related: tuple[str, ...] = (),
    values: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> list[tuple[uuid.UUID, M]]:
    """``claim_and_read`` for several rows at once: those of ``pks`` that are claimable now,
    each with its token, in the order of their primary keys.

    On PostgreSQL it is one statement, and one token for all the rows it claimed. The rows are
    locked first, in primary-key order and skipping any another transaction holds (a worker
    claiming or finishing it, a sweep marking it): two claims of overlapping lists then never
    wait on each other in opposite orders (a deadlock), and a row skipped is someone else's
    now. The claim's WHERE is re-checked on each locked row, as in ``claim``. For one row, and
    on other databases: ``claim_and_read`` per row.
    """
    if not pks:
        return []
    db = router.db_for_write(model)
    connection = connections[db]
    if connection.vendor != "postgresql" or len(set(pks)) == 1:
        # One row: its claim alone, a plain UPDATE by primary key (nothing to order locks for).
        claimed = (
            claim_and_read(
                model,
                pk=pk,
                claimable=claimable,
                status=status,
                related=related,
                values=values,
                params=params,
            )
            for pk in sorted(set(pks))
        )
        return [c for c in claimed if c is not None]

    def compile_() -> tuple[str, tuple[Any, ...]]:
        meta = model._meta
        quote = connection.ops.quote_name
        table, pk_column = quote(meta.db_table), quote(meta.pk.column)  # type: ignore[union-attr]
        # The rows the statement's first part locked (its name, not a value).
        locked_ids = f"SELECT {pk_column} FROM locked"  # noqa: S608
        locked = models.Q(pk__in=RawSQL(locked_ids, ()))  # noqa: S611
        where, fields = _claim_where_and_set(model, claimable, status, values, rows=locked)
        sql, update_params = _claimed_and_joined(model, db, related, where, fields)
        pks_param = ParamList("__pks", meta.pk)  # type: ignore[arg-type]
        lock = (
            # Names from the model's meta; the ids are one bound array.
            f"WITH locked AS (SELECT {pk_column} FROM {table} "  # noqa: S608
            f"WHERE {pk_column} = ANY(%s) ORDER BY {pk_column} FOR UPDATE SKIP LOCKED), "
        )
        return (
            f"{lock}{sql.removeprefix('WITH ')} ORDER BY claimed.{pk_column}",
            (pks_param, *update_params),
        )

    sql, template = _compiled(
        _claim_key("claim_and_read_many", db, model, claimable, status, values, related), compile_
    )
    bound, token = _claim_bound(None, params)
    bound["__pks"] = list(pks)
    with connection.cursor() as cursor:
        cursor.execute(sql, bind_params(template, bound, connection))
        rows = cursor.fetchall()
    return [(token, _read_joined(model, connection, db, related, row)) for row in rows]


def _claimed_and_joined(
    model: type[models.Model],
    db: str,
    related: tuple[str, ...],
    where: models.Q,
    fields: dict[str, Any],
) -> tuple[str, tuple[Any, ...]]:
    """The claim's UPDATE returning the claimed rows, each joined to its ``related`` rows:
    ``WITH claimed AS (UPDATE ... RETURNING ...) SELECT ... FROM claimed LEFT JOIN ...``."""
    connection = connections[db]
    parts = _claim_parts(model, related)
    update_sql, update_params = _update_sql(model, db, where, fields)
    quote = connection.ops.quote_name
    columns = [
        f"{alias}.{quote(f.column)}"
        for part, alias, _fk in parts
        for f in part._meta.concrete_fields
    ]
    joins = [
        f"LEFT JOIN {quote(part._meta.db_table)} {alias} "
        f"ON {alias}.{quote(fk.target_field.column)} = claimed.{quote(fk.column)}"
        for part, alias, fk in parts
        if fk is not None
    ]
    returning = ", ".join(quote(f.column) for f in model._meta.concrete_fields)
    sql = (
        # Names from the models' meta, values only as parameters (the ORM built the UPDATE).
        f"WITH claimed AS ({update_sql} RETURNING {returning}) "  # noqa: S608
        f"SELECT {', '.join(columns)} FROM claimed {' '.join(joins)}"
    )
    return sql, update_params


def _read_joined(
    model: type[M], connection: Any, db: str, related: tuple[str, ...], row: Sequence[Any]
) -> M:
    """The claimed row of a ``_claimed_and_joined`` result, its related rows attached."""
    parts = _claim_parts(model, related)
    columns = list(row)
    instances: list[models.Model | None] = []
    start = 0
    for part, attnames, pk_index, converters in _row_readers(connection, parts):
        converted = columns[start : start + len(attnames)]
        start += len(attnames)
        for index, col, column_converters in converters:
            for converter in column_converters:
                converted[index] = converter(converted[index], col, connection)
        instances.append(
            None if converted[pk_index] is None else part.from_db(db, attnames, converted)
        )
    claimed = instances[0]
    assert isinstance(claimed, model)
    for name, instance in zip(related, instances[1:], strict=True):
        # The cache select_related would fill: reading the attribute costs no query.
        model._meta.get_field(name).set_cached_value(claimed, instance)  # type: ignore[union-attr]
    return claimed


def _claim_parts(
    model: type[models.Model], related: tuple[str, ...]
) -> list[tuple[type[models.Model], str, models.ForeignKey | None]]:
    """(model, table alias, the foreign key's column on the claimed row or None for the row)."""
    parts: list[tuple[type[models.Model], str, models.ForeignKey | None]] = [
        (model, "claimed", None)
    ]
    for i, name in enumerate(related):
        fk = model._meta.get_field(name)
        if not isinstance(fk, models.ForeignKey):
            raise TypeError(f"{model.__name__}.{name} is not a foreign key")
        parts.append((fk.related_model, f"r{i}", fk))  # type: ignore[arg-type]
    return parts


def _finish_shape(values: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """What a finishing statement's SQL depends on: the fields it sets, and the expression of
    each one set to one (a plain value is bound per call, so it keeps no place in the key)."""
    return tuple(
        (name, value if hasattr(value, "resolve_expression") else None)
        for name, value in values.items()
    )


def _finish_fields(model: type[models.Model], shape: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    meta = model._meta
    return {
        name: expression or Param(name, meta.get_field(name))  # type: ignore[arg-type]
        for name, expression in shape
    }


def finish_claim(model: type[models.Model], *, pk: Any, token: uuid.UUID, **values: Any) -> bool:
    """Write the outcome of claimed work, only while the claim is still ours: one UPDATE of the
    row filtered on its ``claim_token``, so a worker whose lease ran out (and whose row another
    worker took over) writes nothing. False if nothing was written.

    Compiled once per set of fields written; each value is bound per call (an expression such
    as ``F(...)`` stays in the compiled statement and is part of its shape).
    """
    return _update_by_pk(model, pk, values, {"claim_token": token})


def finish_claims(
    model: type[models.Model], *, pks: Sequence[Any], token: uuid.UUID, **values: Any
) -> int:
    """``finish_claim`` for several rows claimed with one token (``claim_and_read_many``), in
    one UPDATE; how many rows were written (those whose claim was still ``token``)."""
    if not pks:
        return 0
    db = router.db_for_write(model)
    connection = connections[db]
    if connection.vendor != "postgresql":
        return sum(finish_claim(model, pk=pk, token=token, **values) for pk in pks)
    shape = _finish_shape(values)

    def compile_() -> tuple[str, tuple[Any, ...]]:
        meta = model._meta
        where = models.Q(
            EqualsAny(F("pk"), ParamList("__pks", meta.pk)),  # type: ignore[arg-type]
            claim_token=Param("__claim_token", meta.get_field("claim_token")),  # type: ignore[arg-type]
        )
        fields = _finish_fields(model, shape)
        return _update_sql(model, db, where, fields)

    sql, template = _compiled(("finish_claims", db, model, shape), compile_)
    bound = {**values, "__pks": list(pks), "__claim_token": token}
    with connection.cursor() as cursor:
        cursor.execute(sql, bind_params(template, bound, connection))
        return int(cursor.rowcount)


_Reader = tuple[type[models.Model], list[str], int, list[tuple[int, Any, list[Any]]]]
_readers: dict[tuple[Any, ...], list[_Reader]] = {}


def _row_readers(
    connection: Any, parts: list[tuple[type[models.Model], str, models.ForeignKey | None]]
) -> list[_Reader]:
    """Per part of a joined row: its model, field names, where its pk is, and what the ORM's
    compiler applies to each column it reads (a JSON field's decoding, say), for the columns
    that need anything; worked out once per process, not per row."""
    key = (connection.alias, *((part, alias) for part, alias, _fk in parts))
    readers = _readers.get(key)
    if readers is None:
        readers = []
        for part, alias, _fk in parts:
            fields_ = part._meta.concrete_fields
            converters = []
            for index, field in enumerate(fields_):
                col = field.get_col(alias)
                found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                if found:
                    converters.append((index, col, found))
            attnames = [f.attname for f in fields_]
            readers.append((part, attnames, fields_.index(part._meta.pk), converters))
        _readers[key] = readers
    return readers


# --- related rows read with their parent --------------------------------------------------


class _RowsAsJSON(Func):
    """Every row of the subquery it is the select list of, as one JSON array (text; NULL when
    there is none), each row as ``row``, in the order of ``ordering``.

    It aggregates the whole subquery, which has no GROUP BY: hence a Func and not an Aggregate,
    which would make Django group the subquery's rows. Text, not json: PostgreSQL's json has no
    equality, and a scoped list is SELECT DISTINCT.
    """

    output_field = models.TextField()

    def __init__(self, row: Any, *, ordering: Sequence[str]) -> None:
        super().__init__(row, *(F(name) for name in ordering))

    def _compiled(self, compiler: Any, connection: Any) -> tuple[str, str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        for expression in self.get_source_expressions():
            sql, expression_params = compiler.compile(expression)
            parts.append(sql)
            params.extend(expression_params)
        return parts[0], ", ".join(parts[1:]), params

    def as_sql(self, compiler: Any, connection: Any, *args: Any, **extra: Any) -> Any:
        raise NotSupportedError(f"related_rows() is not implemented on {connection.vendor}")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        row, order, params = self._compiled(compiler, connection)
        return f"JSON_AGG({row} ORDER BY {order})::text", params

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        # SQLite before 3.44 has no ORDER BY inside an aggregate. Over a window ordered by the
        # keys whose frame is every row, each row carries all of them, in that order
        # (related_rows keeps one of those rows).
        row, order, params = self._compiled(compiler, connection)
        return (
            f"JSON_GROUP_ARRAY({row}) OVER (ORDER BY {order} "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)",
            params,
        )


def related_rows(model: type[models.Model], *, fk: str, ordering: Sequence[str]) -> Coalesce:
    """An annotation for a queryset of the model ``model.<fk>`` points to: each row's ``model``
    rows, every concrete field, as a JSON array (text, "[]" when there are none) in the order
    of ``ordering`` (which should end in a unique field, as a prefetch's ordering would).

    A correlated subquery in the page's own query, where a prefetch costs one query per
    relation; ``related_rows_from_json`` turns it back into instances. Meant for a page of
    rows with a few children each, not for thousands.
    """
    row = JSONObject(**{f.attname: F(f.attname) for f in model._meta.concrete_fields})
    rows = (
        model._default_manager.filter(**{fk: OuterRef("pk")})
        .order_by()
        .values(rows=_RowsAsJSON(row, ordering=ordering))[:1]
    )
    return Coalesce(Subquery(rows), Value("[]"), output_field=models.TextField())


# Decimals as Decimal, never float; one decoder for every row rather than one per json.loads.
_DECODE = json.JSONDecoder(parse_float=Decimal).decode


def _values_reader(
    fields: Sequence[tuple[str, Any]], *, db: str
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A reader of one JSON object's values (``(name, model field)`` pairs) as a query would
    have read them: each value goes through its field's ``to_python`` (decimals, parsed as
    Decimal, never float, lose no digit), and a datetime SQLite stored without an offset is in
    the connection's time zone, as the ORM reads it. The zone is looked up once, so a page
    reads its rows without doing it per row."""
    zone = connections[db].timezone  # None without USE_TZ: datetimes are then naive
    converters = [(name, field.to_python) for name, field in fields]

    def read(row: dict[str, Any]) -> dict[str, Any]:
        values = {}
        for name, to_python in converters:
            value = to_python(row[name])
            if zone is not None and isinstance(value, dt.datetime) and timezone.is_naive(value):
                value = timezone.make_aware(value, zone)
            values[name] = value
        return values

    return read


def related_values_reader(
    model: type[models.Model], *, db: str, names: Sequence[str] | None = None
) -> Callable[[str], list[dict[str, Any]]]:
    """A reader of what a ``related_rows`` annotation of ``model`` rows holds: each row's values
    of ``names`` (attnames; default every concrete field), as a query would have read them."""
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    read_row = _values_reader([(name, by_attname[name]) for name in (names or by_attname)], db=db)

    def read(text: str) -> list[dict[str, Any]]:
        return [read_row(row) for row in _DECODE(text)]

    return read


def first_related_row(queryset: models.QuerySet[Any], **fields: str) -> Subquery:
    """An annotation: the first row of ``queryset`` (filtered on an ``OuterRef`` and ordered)
    as one JSON object of ``fields`` (name → the field's path, e.g. ``owner="owner__username"``),
    as text; NULL when there is none. One correlated subquery, where an annotation per field
    would run the same ordered lookup once per field; ``first_related_row_reader`` reads it."""
    row = JSONObject(**{name: _looked_up(queryset.model, path) for name, path in fields.items()})
    return Subquery(queryset.values(row=row)[:1], output_field=models.TextField())


def _looked_up(model: type[models.Model], path: str) -> Any:
    """``path``'s value for the row the subquery picks. Across a foreign key (``owner__username``)
    it is looked up by that row's key, in a subquery of its own: joined instead, the planner
    may join every open row's owner (a hash join over the whole user table, per initiative)
    before it sorts and keeps one, which made the list's page statement 3 to 4 times slower
    (7 to 8 ms against 2 at 20k initiatives). The base manager reads it, as a join would."""
    hop, _, rest = path.partition("__")
    if not rest:
        return F(path)
    link = model._meta.get_field(hop)
    related = link.related_model
    if not link.many_to_one or related is None or isinstance(related, str):
        return F(path)  # a reverse or many-to-many path has no single key to look up by
    target = related._base_manager.filter(pk=OuterRef(link.attname))  # type: ignore[union-attr]
    value = _looked_up(related, rest)  # type: ignore[arg-type]
    return Subquery(target.order_by().values(value=value)[:1])


def first_related_row_reader(
    model: type[models.Model], *, db: str, **fields: str
) -> Callable[[str | None], dict[str, Any] | None]:
    """A reader of a ``first_related_row(model's queryset, **fields)`` annotation: its values
    as a query would have read them, or None."""
    read_row = _values_reader(
        [(name, _field_at(model, path)) for name, path in fields.items()], db=db
    )

    def read(text: str | None) -> dict[str, Any] | None:
        return None if text is None else read_row(_DECODE(text))

    return read


def _field_at(model: type[models.Model], path: str) -> Any:
    *hops, name = path.split("__")
    for hop in hops:
        model = model._meta.get_field(hop).related_model  # type: ignore[assignment]
    return model._meta.get_field(name)


def related_rows_from_json(model: type[M], text: str, *, fk: str, parent: models.Model) -> list[M]:
    """The ``model`` instances a ``related_rows`` annotation of ``parent`` holds, as a query
    would have built them (values read by ``related_values_reader``), with ``parent`` cached on
    ``fk`` (reading it costs no query)."""
    db = parent._state.db or router.db_for_read(model)
    names = [f.attname for f in model._meta.concrete_fields]
    link = model._meta.get_field(fk)
    instances = []
    for values in related_values_reader(model, db=db, names=names)(text):
        instance = model.from_db(db, names, [values[name] for name in names])
        link.set_cached_value(instance, parent)  # type: ignore[union-attr]
        instances.append(instance)
    return instances
