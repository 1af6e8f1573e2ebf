"""Model building blocks shared by the apps (a kernel module, below every app in the layering).

Also the PostgreSQL guards those models declare (``Meta.triggers``, installed by migrations through
django-pgtrigger; SQLite, the embedded default, has none and relies on the ORM guards alone).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pgtrigger
from django.db import IntegrityError, connections, models, router, transaction
from django.db.models import F
from django.utils import timezone
from django_fsm import FSMFieldMixin, FSMModelMixin
from pgtrigger import compiler

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


def create_once_many(objs: Sequence[models.Model], *, returning: str) -> set[Any]:
    """``create_once`` for many rows of one model in one statement: insert each unless its unique
    constraint says it already happened, and return the ``returning`` column (one that tells the
    rows apart, such as the foreign key each row is about) of the rows actually inserted.

    ``INSERT ... ON CONFLICT DO NOTHING``: a duplicate is skipped, not an error, so neither the
    caller's transaction nor the rest of the rows are lost to it, and no savepoint is needed.
    The objects are not changed (their primary keys stay unset).
    """
    if not objs:
        return set()
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    written = [f for f in model._meta.concrete_fields if not f.primary_key]
    [told] = [f.column for f in model._meta.concrete_fields if f.name == returning]
    quote = connection.ops.quote_name
    one_row = f"({', '.join(['%s'] * len(written))})"
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} "  # noqa: S608 -- names from the model
        f"({', '.join(quote(f.column) for f in written)}) "
        f"VALUES {', '.join([one_row] * len(objs))} "
        f"ON CONFLICT DO NOTHING RETURNING {quote(told)}"
    )
    params = [
        f.get_db_prep_save(f.pre_save(obj, add=True), connection) for obj in objs for f in written
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def claim(model: type[models.Model], *, pk: Any, claimable: Any, status: str) -> uuid.UUID | None:
    """Claim one row of a work table (the outbox's deliveries, the inbound inbox) for this
    worker: a conditional UPDATE that sets ``status``, a fresh ``claim_token`` and the claim
    time and counts the attempt. Returns the token, or None when the row is not claimable now
    (done, not due, or another worker holds it).

    The WHERE (``claimable``, a Q) is re-checked under the row lock on PostgreSQL, so of two
    racing workers the second sees the first one's fresh claim and updates nothing. Writes that
    finish the work filter on the token, so a worker whose lease ran out can't overwrite the one
    that took over.
    """
    now = timezone.now()
    token = uuid.uuid4()
    claimed = model._default_manager.filter(claimable, pk=pk).update(
        status=status,
        claimed_at=now,
        claim_token=token,
        attempts=F("attempts") + 1,
        updated_at=now,
    )
    return token if claimed == 1 else None
