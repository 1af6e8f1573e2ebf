"""The whole lifecycle graph, table-driven: every transition from every stage."""

from __future__ import annotations

import pytest
from django.db import connection
from django_fsm import TransitionNotAllowed

from gatekeeper.errors import Conflict, TransitionRefused
from programs import services
from programs.models import Initiative, StageTransition
from programs.stages import Stage
from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory
from tests.unguarded import unguarded

pytestmark = pytest.mark.django_db

ALL_STAGES = [s.value for s in Stage]

# (transition, source) -> target; everything not listed must be refused.
ALLOWED = {
    ("advance", Stage.PROPOSED): Stage.PILOT,
    ("advance", Stage.PILOT): Stage.INTEGRATION,
    ("advance", Stage.INTEGRATION): Stage.HARDENING,
    ("advance", Stage.HARDENING): Stage.OPERATIONS,
    ("retire", Stage.OPERATIONS): Stage.RETIRED,
    **{
        ("hold", s): Stage.ON_HOLD
        for s in (Stage.PROPOSED, Stage.PILOT, Stage.INTEGRATION, Stage.HARDENING)
    },
    **{
        ("cancel", s): Stage.CANCELLED
        for s in (Stage.PROPOSED, Stage.PILOT, Stage.INTEGRATION, Stage.HARDENING, Stage.ON_HOLD)
    },
    ("resume", Stage.ON_HOLD): Stage.PILOT,  # held from pilot in this table
}
OPERATIONS = ["advance", "retire", "hold", "resume", "cancel"]


def _put_in(stage: str) -> Initiative:
    initiative = InitiativeFactory()
    SuccessMetricFactory(initiative=initiative)
    held_from = Stage.PILOT if stage == Stage.ON_HOLD else ""
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(stage=stage, held_from=held_from)
    initiative.refresh_from_db()
    return initiative


def _call(op: str, initiative: Initiative, actor) -> StageTransition:
    fn = getattr(services, f"initiative_{op}")
    kwargs = {"initiative": initiative, "actor": actor}
    if op in ("hold", "cancel", "retire"):
        kwargs["reason"] = "steering committee decision"
    return fn(**kwargs)


@pytest.mark.parametrize("stage", ALL_STAGES)
@pytest.mark.parametrize("op", OPERATIONS)
def test_transition_graph(op, stage, gate_port):
    initiative = _put_in(stage)
    actor = initiative.business_owner
    target = ALLOWED.get((op, stage))
    if target is not None and op == "advance":
        gate_port.approve(initiative, target)
    if target is None:
        with pytest.raises(TransitionRefused) as refused:
            _call(op, initiative, actor)
        assert refused.value.unmet, "a refusal must say why"
        initiative.refresh_from_db()
        assert initiative.stage == stage
        assert not StageTransition.objects.filter(initiative=initiative).exists()
    else:
        record = _call(op, initiative, actor)
        initiative.refresh_from_db()
        assert initiative.stage == target
        assert (record.from_stage, record.to_stage, record.actor) == (stage, target, actor)
        assert StageTransition.objects.filter(initiative=initiative).count() == 1


@pytest.mark.parametrize("stage", [Stage.PROPOSED, Stage.PILOT, Stage.INTEGRATION, Stage.HARDENING])
def test_forward_move_without_approved_gate_is_refused(stage, gate_port):
    initiative = _put_in(stage)
    with pytest.raises(TransitionRefused) as refused:
        services.initiative_advance(initiative=initiative, actor=None)
    assert any("not approved" in reason for reason in refused.value.unmet)


def test_g1_refusal_lists_every_unmet_condition(gate_port):
    initiative = InitiativeFactory(business_owner=None)
    with pytest.raises(TransitionRefused) as refused:
        services.initiative_advance(initiative=initiative, actor=None)
    assert refused.value.unmet == [
        "a business owner must be assigned",
        "at least one success metric needs both a baseline and a target",
        "the gate into pilot is not approved",
    ]


def test_g1_needs_metric_with_both_baseline_and_target(gate_port):
    initiative = InitiativeFactory()
    SuccessMetricFactory(initiative=initiative, target=None)
    gate_port.approve(initiative, Stage.PILOT)
    with pytest.raises(TransitionRefused) as refused:
        services.initiative_advance(initiative=initiative, actor=None)
    assert refused.value.unmet == ["at least one success metric needs both a baseline and a target"]


def test_without_gates_registered_nothing_advances():
    from programs import ports

    previous = ports._port
    ports.register_gate_port(None)
    try:
        initiative = InitiativeFactory()
        SuccessMetricFactory(initiative=initiative)
        with pytest.raises(TransitionRefused):
            services.initiative_advance(initiative=initiative, actor=None)
    finally:
        ports.register_gate_port(previous)


@pytest.mark.parametrize(
    "held_from", [Stage.PROPOSED, Stage.PILOT, Stage.INTEGRATION, Stage.HARDENING]
)
def test_resume_returns_to_the_stage_it_left(held_from, gate_port):
    initiative = _put_in(held_from)
    services.initiative_hold(initiative=initiative, actor=None, reason="budget freeze")
    assert initiative.stage == Stage.ON_HOLD and initiative.held_from == held_from
    services.initiative_resume(initiative=initiative, actor=None)
    assert initiative.stage == held_from and initiative.held_from == ""


def test_direct_assignment_of_stage_raises():
    initiative = InitiativeFactory()
    with pytest.raises(AttributeError):
        initiative.stage = Stage.OPERATIONS


def test_fsm_method_called_directly_still_refuses_without_gate():
    initiative = InitiativeFactory()
    SuccessMetricFactory(initiative=initiative)
    with pytest.raises(TransitionNotAllowed):
        initiative.start_pilot()


def test_stale_instance_gets_conflict(gate_port):
    initiative = _put_in(Stage.PILOT)
    stale = Initiative.objects.get(pk=initiative.pk)
    services.initiative_hold(initiative=initiative, actor=None, reason="pause")
    with pytest.raises(Conflict):
        services.initiative_cancel(initiative=stale, actor=None, reason="stop")


def test_hold_and_cancel_need_a_reason(gate_port):
    from gatekeeper.errors import ValidationFailed

    initiative = _put_in(Stage.PILOT)
    with pytest.raises(ValidationFailed):
        services.initiative_hold(initiative=initiative, actor=None, reason="  ")


def test_outsider_may_not_cancel(gate_port):
    from gatekeeper.errors import PermissionDenied

    initiative = _put_in(Stage.PILOT)
    with pytest.raises(PermissionDenied):
        services.initiative_cancel(initiative=initiative, actor=UserFactory(), reason="nope")


class TestTransitionRecordIsAppendOnly:
    @pytest.fixture
    def record(self, gate_port):
        initiative = _put_in(Stage.PILOT)
        return services.initiative_hold(initiative=initiative, actor=None, reason="pause")

    def test_save_of_existing_record_raises(self, record):
        record.reason = "rewritten"
        with pytest.raises(TypeError):
            record.save()

    def test_delete_raises(self, record):
        with pytest.raises(TypeError):
            record.delete()

    def test_queryset_update_and_delete_raise(self, record):
        with pytest.raises(TypeError):
            StageTransition.objects.filter(pk=record.pk).update(reason="x")
        with pytest.raises(TypeError):
            StageTransition.objects.all().delete()

    def test_database_refuses_raw_update(self, record):
        from django.db import DatabaseError, transaction

        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "UPDATE programs_stagetransition SET reason = 'x' WHERE id = %s", [record.pk]
            )


def test_a_transition_costs_a_fixed_number_of_queries(
    gate_port, warm_outbox, django_assert_max_num_queries
):
    initiative = _put_in(Stage.PILOT)
    # savepoint pair, lock (with the people the event names), update, record, event (which
    # also tells whether the cached endpoint list is current), deliveries, gates' listener
    # looking for open reviews to withdraw: constant, whatever the initiative's history or
    # milestone count. (Was 13 with a savepoint around the event, the recipients' and the
    # endpoints' reads and a refresh.)
    with django_assert_max_num_queries(8):
        services.initiative_hold(initiative=initiative, actor=None, reason="pause")
