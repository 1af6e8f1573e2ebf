"""The database guards themselves (where they live, what installs them, what cannot turn them
off), and the state machines' protected fields staying protected across threads."""

from __future__ import annotations

import threading
from typing import Any

import pgtrigger
import pytest
from django.apps import apps
from django.db import DatabaseError, IntegrityError, connection, models, transaction

from gatekeeper.db import AppendOnlyModel, ImmutableModel, SafeFSMModelMixin
from gates.models import GateReview
from programs import services
from programs.models import Initiative, StageTransition
from programs.stages import Stage
from tests.factories import InitiativeFactory
from tests.unguarded import unguarded

committed = pytest.mark.django_db(transaction=True)


def _stage(initiative: Initiative) -> str:
    return Initiative.objects.values_list("stage", flat=True).get(pk=initiative.pk)


# --- append-only history and where the bases live ------------------------------------------


def _append_only_models() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if issubclass(m, AppendOnlyModel)]


@pytest.mark.django_db
def test_every_append_only_model_has_its_trigger_installed():
    found = _append_only_models()
    assert {m.__name__ for m in found} >= {"StageTransition", "ReviewEvent"}
    for model in found:
        # pgtrigger adds ``triggers`` to Meta, which django-stubs' Options does not declare; and
        # pgtrigger annotates its ``model`` parameters as instances though they take the class.
        triggers: list[Any] = model._meta.triggers  # type: ignore[attr-defined]
        trigger = next(t for t in triggers if t.name == "append_only")
        assert trigger.get_installation_status(model)[0] == "INSTALLED", model


@pytest.mark.django_db
def test_the_hand_written_append_only_triggers_are_gone():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE %s",
            ["%no_rewrite"],
        )
        assert cursor.fetchall() == []


def test_immutable_and_append_only_bases_live_in_one_place():
    from gates import models as gate_models
    from programs import models as program_models

    assert gate_models.ImmutableModel is ImmutableModel
    assert program_models.AppendOnlyModel is AppendOnlyModel is gate_models.AppendOnlyModel


# --- no session setting turns a guard off -----------------------------------------------------


def _ignore(cursor: Any, uri: str) -> None:
    """Ask the triggers to skip ``uri`` the way ``pgtrigger.ignore`` does: its session setting,
    holding the trigger's URI and id. Set here as a statement of its own, because
    ``pgtrigger.ignore`` prefixes it to every statement, which server-side binding (on, see
    DATABASE_PREPARE_THRESHOLD) refuses as two commands in one."""
    [(model, trigger)] = pgtrigger.registered(uri)
    pgid = trigger.get_pgid(model)
    cursor.execute(
        "SELECT set_config('pgtrigger.ignore', %s, true)",
        ["{" + f"{model._meta.db_table}:{pgid},{pgid}" + "}"],
    )


@committed
def test_history_cannot_be_rewritten_even_with_pgtriggers_ignore(gate_port):
    record = services.initiative_hold(initiative=InitiativeFactory(), actor=None, reason="x")
    for statement in (
        "UPDATE programs_stagetransition SET reason = 'y' WHERE id = %s",
        "DELETE FROM programs_stagetransition WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="Cannot update or delete rows"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            _ignore(cursor, "programs.StageTransition:append_only")
            cursor.execute(statement, [record.pk])
    assert StageTransition.objects.get(pk=record.pk).reason == "x"


@committed
def test_stage_guard_cannot_be_switched_off_with_pgtriggers_ignore():
    initiative = InitiativeFactory()
    with (
        pytest.raises(IntegrityError, match="without a transition record"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        _ignore(cursor, "programs.Initiative:stage_move_recorded")
        Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.OPERATIONS)
    assert _stage(initiative) == Stage.PROPOSED


@committed
def test_pgtrigger_ignore_itself_is_refused_rather_than_honoured():
    """With server-side binding, ``pgtrigger.ignore`` fails loudly instead of running its
    statement: a shell's data fix learns at once that the guards stay on."""
    with (
        pgtrigger.ignore("programs.Initiative:stage_move_recorded"),
        pytest.raises(DatabaseError, match="multiple commands"),
    ):
        Initiative.objects.filter(pk=0).update(stage=Stage.OPERATIONS)


# --- django-fsm's protected flag ---------------------------------------------------------------


@pytest.mark.parametrize("model", [Initiative, GateReview])
def test_the_state_machines_use_the_thread_safe_mixin(model):
    assert issubclass(model, SafeFSMModelMixin)


@committed
def test_a_reload_in_one_thread_leaves_direct_assignment_refused_in_another(monkeypatch):
    initiative = InitiativeFactory()
    elsewhere = Initiative.objects.get(pk=initiative.pk)
    reloading, done = threading.Event(), threading.Event()
    reload = models.Model.refresh_from_db

    def slow_reload(self, *args, **kwargs):
        reloading.set()
        done.wait(timeout=10)
        return reload(self, *args, **kwargs)

    monkeypatch.setattr(models.Model, "refresh_from_db", slow_reload)

    def worker() -> None:
        try:
            Initiative.objects.get(pk=initiative.pk).refresh_from_db()
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert reloading.wait(timeout=10)
        with pytest.raises(AttributeError):
            elsewhere.stage = Stage.OPERATIONS
    finally:
        done.set()
        thread.join(timeout=10)
    assert elsewhere.stage == Stage.PROPOSED


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Initiative, GateReview])
def test_a_failed_reload_leaves_the_state_protected(model):
    gone = model(pk=10**9)
    with pytest.raises(model.DoesNotExist):
        gone.refresh_from_db()
    field = "stage" if model is Initiative else "state"
    with pytest.raises(AttributeError):
        setattr(gone, field, "anything")


@pytest.mark.django_db
def test_a_reload_still_reloads_the_state_and_leaves_deferred_fields_deferred():
    initiative = InitiativeFactory()
    stale = Initiative.objects.get(pk=initiative.pk)
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.PILOT)
    stale.refresh_from_db()
    assert stale.stage == Stage.PILOT
    with pytest.raises(AttributeError):
        stale.stage = Stage.OPERATIONS

    partial = Initiative.objects.only("key", "stage").get(pk=initiative.pk)
    partial.refresh_from_db()
    assert partial.stage == Stage.PILOT
    assert "summary" in partial.get_deferred_fields()  # still loaded only on first use

    gone = Initiative.objects.get(pk=initiative.pk)
    gone.pk = 10**9
    with pytest.raises(Initiative.DoesNotExist):
        gone.refresh_from_db()
    assert gone.stage == Stage.PILOT  # a failed reload keeps what the instance held
