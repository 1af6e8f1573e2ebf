"""Random sequences of service calls never bend the lifecycle (Hypothesis stateful testing)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from gatekeeper.errors import DomainError
from programs import services
from programs.models import Initiative, StageTransition, SuccessMetric
from programs.stages import ACTIVE_STAGES, CANCELLABLE_STAGES, NEXT_STAGE, Stage
from tests.factories import BusinessUnitFactory, UserFactory

if TYPE_CHECKING:
    from tests.conftest import StubGatePort

# The graph of DESIGN.md §1, written out independently of the model, as the oracle.
FORWARD = dict(NEXT_STAGE)
OPS = ("advance", "hold", "resume", "cancel", "retire")


def _expected(op: str, stage: str, held_from: str) -> str | None:
    if op == "advance":
        return FORWARD.get(stage)
    if op == "hold":
        return Stage.ON_HOLD if stage in ACTIVE_STAGES else None
    if op == "resume":
        return held_from if stage == Stage.ON_HOLD else None
    if op == "cancel":
        return Stage.CANCELLED if stage in CANCELLABLE_STAGES else None
    if op == "retire":
        return Stage.RETIRED if stage == Stage.OPERATIONS else None
    raise AssertionError(op)


class LifecycleMachine(RuleBasedStateMachine):
    gate_port: ClassVar[StubGatePort]  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.owner = UserFactory()
        self.initiative = services.initiative_create(
            actor=None, name="Random walk", business_unit=BusinessUnitFactory()
        )
        self.stage: str = Stage.PROPOSED
        self.held_from = ""
        self.has_owner = False
        self.has_metric = False
        self.approved: set[str] = set()
        self.successes = 0

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @rule()
    def assign_owner(self) -> None:
        try:
            services.initiative_assign_owner(
                initiative=self.initiative, actor=None, business_owner=self.owner
            )
        except DomainError:
            assert self.stage in (Stage.RETIRED, Stage.CANCELLED)
            return
        self.has_owner = True

    @rule(complete=st.booleans())
    def add_metric(self, complete: bool) -> None:
        try:
            services.metric_add(
                initiative=self.initiative,
                actor=None,
                name=f"metric {SuccessMetric.objects.count()}",
                baseline=10,
                target=20 if complete else None,
            )
        except DomainError:
            assert self.stage in (Stage.RETIRED, Stage.CANCELLED)
            return
        self.has_metric = self.has_metric or complete

    @rule(target_stage=st.sampled_from(list(FORWARD.values())))
    def approve_gate(self, target_stage: str) -> None:
        self.gate_port.approve(self.initiative, target_stage)
        self.approved.add(target_stage)

    @rule(op=st.sampled_from(OPS))
    def call(self, op: str) -> None:
        kwargs: dict[str, Any] = {"initiative": self.initiative, "actor": None}
        if op in ("hold", "cancel", "retire"):
            kwargs["reason"] = "random"
        expected = _expected(op, self.stage, self.held_from)
        if op == "advance" and expected is not None:
            allowed = expected in self.approved
            if self.stage == Stage.PROPOSED:
                allowed = allowed and self.has_owner and self.has_metric
            if not allowed:
                expected = None
        try:
            getattr(services, f"initiative_{op}")(**kwargs)
        except DomainError:
            assert expected is None, f"{op} from {self.stage} should have succeeded"
            return
        assert expected is not None, f"{op} from {self.stage} should have been refused"
        if op == "hold":
            self.held_from = self.stage
        elif op in ("resume", "cancel"):
            self.held_from = ""
        self.stage = expected
        self.successes += 1

    @invariant()
    def stage_matches_the_graph(self) -> None:
        row = Initiative.objects.get(pk=self.initiative.pk)
        assert row.stage == self.stage
        assert row.held_from == self.held_from

    @invariant()
    def one_record_per_successful_transition(self) -> None:
        records = StageTransition.objects.filter(initiative=self.initiative).order_by("id")
        assert records.count() == self.successes
        previous = Stage.PROPOSED
        for record in records:
            assert record.from_stage == previous  # the records chain: nothing skipped
            previous = record.to_stage


@pytest.mark.django_db
def test_lifecycle_state_machine(gate_port):
    LifecycleMachine.gate_port = gate_port
    run_state_machine_as_test(
        LifecycleMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
