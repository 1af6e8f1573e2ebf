"""Moving an initiative through its stages: the gates forward, hold, resume, cancel, retire.

One runner does every move: lock the row, check the right and the guards on the locked row, call
the pure transition, restart or restore the stage clock, write the append-only record and the
outbox event, all in one transaction.

A move asks the gate port once: the verdict it gets on the locked row answers both evaluations
of the ``gate_approved`` guard and names the review for the record. A caller that already holds
the initiative's lock (gates, deciding a review) passes its locked instance with ``locked=True``
and the move neither locks nor re-reads the row again.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from gatekeeper.db import mark_saved
from gatekeeper.errors import Conflict, TransitionRefused
from gatekeeper.types import User
from programs import events
from programs.guards import checks_for_move
from programs.models import Initiative, Milestone, MilestoneStatus, StageTransition
from programs.ports import notify_stage_change
from programs.selectors import stall_deadline, transition_unmet
from programs.services._common import lock_initiative, reload_from, require_perm, require_reason
from programs.stages import NEXT_STAGE, TERMINAL_STAGES

# A decided review moves the initiative as the system (actor None); a person who presses the
# button after approval needs the same right as for any stage change.
STAGE_PERM = "programs.change_stage"


# What a move writes (the transitions, the stage clock); the row's other columns are the
# editing services' and stay out of the UPDATE.
_MOVED_FIELDS = (
    "stage",
    "held_from",
    "held_stage_entered_at",
    "held_stall_at",
    "stage_entered_at",
    "stall_at",
    "updated_at",
)


def _run_transition(
    *,
    initiative: Initiative,
    name: str,
    actor: User | None,
    reason: str,
    expected_stage: str | None,
    gate_review_id: int | None = None,
    locked: bool = False,
) -> StageTransition:
    now = timezone.now()
    if locked and not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"{initiative.key}: locked=True needs the transaction holding the lock")
    try:
        # A caller holding the lock is inside its own transaction, and this refusal is its
        # refusal (the exception leaves both): no savepoint of our own to set and release.
        with transaction.atomic(savepoint=not locked):
            row = lock_initiative(initiative, expected_stage, held=locked)
            # Checked on the locked row: a role just taken away can't still act.
            require_perm(actor, STAGE_PERM, row)
            from_stage = row.stage
            target = (
                NEXT_STAGE.get(from_stage) if name == Initiative.FORWARD.get(from_stage) else None
            )
            with checks_for_move(row, target) as verdict:
                unmet = transition_unmet(row, name)
                if unmet:
                    raise TransitionRefused(
                        f"{row.key} cannot {name.replace('_', ' ')} from '{row.stage}'",
                        unmet=unmet,
                    )
                if verdict is not None:
                    gate_review_id = verdict.review_id or gate_review_id
                hold_started = row.stage_entered_at
                getattr(row, name)()
            if name == "resume":
                _restore_clock(row, paused=now - hold_started, now=now)
            else:
                row.stage_entered_at = now
                row.stall_at = stall_deadline(row.stage, now, gate_review_id)
            record = StageTransition(
                initiative=row,
                transition=name,
                from_stage=from_stage,
                to_stage=row.stage,
                actor=actor,
                reason=reason,
                gate_review_id=gate_review_id,
            )
            _save_move(row, from_stage, record, now)
            events.initiative_stage_changed(row, record).emit()
            if row.stage in TERMINAL_STAGES:
                # Nobody acts on a closed initiative's milestones: take them off the sweep.
                Milestone.objects.filter(
                    initiative=row, status=MilestoneStatus.OPEN, next_alert_at__isnull=False
                ).update(next_alert_at=None)
            notify_stage_change(row, from_stage, row.stage)
    except TransitionNotAllowed as exc:  # a guard changed between our check and the call
        raise TransitionRefused(str(exc), unmet=[str(exc)]) from exc
    except ConcurrentTransition as exc:
        raise Conflict(f"{initiative.key} was moved by someone else; reload and try again") from exc
    if row is not initiative:
        # The caller's instance, as refresh_from_db would leave it (the row was just saved).
        reload_from(initiative, row)
    return record


def _save_move(row: Initiative, from_stage: str, record: StageTransition, now: dt.datetime) -> None:
    """Write the moved row's lifecycle columns and insert its transition record.

    On PostgreSQL one statement does both, the UPDATE's RETURNING feeding the INSERT: a move is
    on the path people wait on, and this spares a round trip. As with django-fsm's
    ``ConcurrentTransitionMixin``, the UPDATE matches only while the row is still in
    ``from_stage``, and a miss is a ``ConcurrentTransition`` (nothing was written). Elsewhere
    (SQLite, the embedded default) the ORM's save and create do the same in two.
    """
    connection = connections[router.db_for_write(Initiative)]
    if connection.vendor != "postgresql":
        row.save(update_fields=_MOVED_FIELDS)
        record.save()
        return
    row.updated_at = record.created_at = now
    sql, moved, recorded = _move_statement(connection.alias)
    params = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in moved]
    params += [row.pk, from_stage]
    params += [f.get_db_prep_save(getattr(record, f.attname), connection) for f in recorded]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchone()
    if returned is None:
        raise ConcurrentTransition(f"{row.key} left '{from_stage}' before the move was saved")
    row._update_initial_state()
    mark_saved(record, returned[0], connection.alias)


@functools.cache
def _move_statement(alias: str) -> tuple[str, list[Any], list[Any]]:
    """``_save_move``'s statement for the database ``alias``, with the fields whose values it
    takes: the moved row's, then the record's (its initiative comes from the UPDATE)."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    moved = [Initiative._meta.get_field(name) for name in _MOVED_FIELDS]
    recorded = [f for f in StageTransition._meta.concrete_fields if not f.primary_key]
    pk, stage = Initiative._meta.pk, Initiative._meta.get_field("stage")
    assert pk is not None
    # Cast: a bare parameter in a SELECT list is untyped, and NULL would not go in a bigint.
    selected = [
        "moved.id" if f.name == "initiative" else f"CAST(%s AS {f.db_type(connection)})"
        for f in recorded
    ]
    sql = (
        f"WITH moved AS (UPDATE {quote(Initiative._meta.db_table)} "  # noqa: S608 -- model names
        f"SET {', '.join(f'{quote(f.column)} = %s' for f in moved)} "
        f"WHERE {quote(pk.column)} = %s AND {quote(stage.column)} = %s "
        f"RETURNING {quote(pk.column)} AS id) "
        f"INSERT INTO {quote(StageTransition._meta.db_table)} "
        f"({', '.join(quote(f.column) for f in recorded)}) "
        f"SELECT {', '.join(selected)} "
        f"FROM moved RETURNING {quote(StageTransition._meta.pk.column)}"
    )
    return sql, moved, [f for f in recorded if f.name != "initiative"]


def _restore_clock(initiative: Initiative, *, paused: dt.timedelta, now: dt.datetime) -> None:
    """Back from hold: the stay goes on from when it began, and the stall deadline moves out by
    the time spent on hold (a hold pauses the clock; it must not reset it)."""
    initiative.stage_entered_at = initiative.held_stage_entered_at or now
    if initiative.held_stall_at is not None:
        initiative.stall_at = initiative.held_stall_at + paused
    else:
        opened_by = (
            StageTransition.objects.filter(initiative=initiative, to_stage=initiative.stage)
            .exclude(gate_review_id=None)
            .order_by("-id")
            .values_list("gate_review_id", flat=True)
            .first()
        )
        entered = initiative.stage_entered_at
        initiative.stall_at = stall_deadline(initiative.stage, entered, opened_by)
    initiative.held_stage_entered_at = None
    initiative.held_stall_at = None


def initiative_advance(
    *,
    initiative: Initiative,
    actor: User | None,
    reason: str = "",
    expected_stage: str | None = None,
    gate_review_id: int | None = None,
    locked: bool = False,
) -> StageTransition:
    """Move through the gate out of the current stage; refused unless that gate is approved.

    ``locked``: ``initiative`` is the caller's instance of the row it locked in the transaction
    under way; the move updates that instance instead of locking and reading the row again.
    """
    stage = expected_stage or initiative.stage
    name = Initiative.FORWARD.get(stage)
    if name is None:
        raise TransitionRefused(
            f"{initiative.key} cannot advance from '{stage}'",
            unmet=[f"no gate leads out of '{stage}'"],
        )
    return _run_transition(
        initiative=initiative,
        name=name,
        actor=actor,
        reason=reason,
        expected_stage=expected_stage,
        gate_review_id=gate_review_id,
        locked=locked,
    )


# --- the moves that need no gate -------------------------------------------------------------


@dataclass(frozen=True)
class _Move:
    transition: str
    # Completes "A reason is required to ..."; None: the reason is optional.
    reason_for: str | None
    # Hold and cancel may be what a decided gate review said (Hold, Kill): the record links it.
    takes_gate_review: bool


_MOVES: dict[str, _Move] = {
    move.transition: move
    for move in (
        _Move("hold", reason_for="put an initiative on hold", takes_gate_review=True),
        _Move("resume", reason_for=None, takes_gate_review=False),
        _Move("cancel", reason_for="cancel an initiative", takes_gate_review=True),
        _Move("retire", reason_for="retire an initiative", takes_gate_review=False),
    )
}


def _move(
    transition: str,
    initiative: Initiative,
    actor: User | None,
    reason: str,
    expected_stage: str | None,
    gate_review_id: int | None = None,
    *,
    locked: bool = False,
) -> StageTransition:
    # Positional, unlike the public services: each of those is one readable line calling this.
    move = _MOVES[transition]
    if gate_review_id is not None and not move.takes_gate_review:
        raise TypeError(f"no gate review decides '{transition}'")
    if move.reason_for is not None:
        require_reason(reason, move.reason_for)
    return _run_transition(
        initiative=initiative,
        name=move.transition,
        actor=actor,
        reason=reason,
        expected_stage=expected_stage,
        gate_review_id=gate_review_id,
        locked=locked,
    )


def initiative_hold(
    *,
    initiative: Initiative,
    actor: User | None,
    reason: str,
    expected_stage: str | None = None,
    gate_review_id: int | None = None,
    locked: bool = False,
) -> StageTransition:
    """``locked``: as for ``initiative_advance``."""
    return _move("hold", initiative, actor, reason, expected_stage, gate_review_id, locked=locked)


def initiative_resume(
    *,
    initiative: Initiative,
    actor: User | None,
    reason: str = "",
    expected_stage: str | None = None,
) -> StageTransition:
    return _move("resume", initiative, actor, reason, expected_stage)


def initiative_cancel(
    *,
    initiative: Initiative,
    actor: User | None,
    reason: str,
    expected_stage: str | None = None,
    gate_review_id: int | None = None,
    locked: bool = False,
) -> StageTransition:
    """``locked``: as for ``initiative_advance``."""
    return _move("cancel", initiative, actor, reason, expected_stage, gate_review_id, locked=locked)


def initiative_retire(
    *, initiative: Initiative, actor: User | None, reason: str, expected_stage: str | None = None
) -> StageTransition:
    return _move("retire", initiative, actor, reason, expected_stage)
