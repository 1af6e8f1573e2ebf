from __future__ import annotations

from collections.abc import Iterator

import pytest

from programs import ports
from programs.ports import GateVerdict


class StubGatePort:
    """Stands in for the gates app in tests of programs alone (DESIGN.md §2)."""

    def __init__(self) -> None:
        self.approved: set[tuple[int, str]] = set()

    def approve(self, initiative, target_stage: str) -> None:
        self.approved.add((initiative.pk, target_stage))

    def verdict(self, initiative, target_stage: str) -> GateVerdict:
        if (initiative.pk, target_stage) in self.approved:
            return GateVerdict(approved=True, review_id=None)
        return GateVerdict(approved=False, unmet=[f"the gate into {target_stage} is not approved"])


@pytest.fixture
def gate_port() -> Iterator[StubGatePort]:
    previous = ports._port
    stub = StubGatePort()
    ports.register_gate_port(stub)
    yield stub
    ports.register_gate_port(previous)
