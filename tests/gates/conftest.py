from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from gates import services
from gates.models import GateRole
from programs.roles import APPROVERS, INTEGRATIONS, PMO
from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory


@dataclass
class Panel:
    """The people around one initiative's gates."""

    business: Any
    risk: Any
    platform: Any
    security: Any
    pmo: Any
    bot: Any

    def for_role(self, role: str, initiative: Any) -> Any:
        if role == GateRole.BUSINESS_OWNER:
            return initiative.business_owner
        return getattr(self, role)


@pytest.fixture
def panel(db) -> Panel:
    people = Panel(
        business=UserFactory(username="biz.approver", groups=[APPROVERS]),
        risk=UserFactory(username="risk.approver", groups=[APPROVERS]),
        platform=UserFactory(username="platform.approver", groups=[APPROVERS]),
        security=UserFactory(username="security.approver", groups=[APPROVERS]),
        pmo=UserFactory(username="pmo.lead", groups=[PMO]),
        bot=UserFactory(username="jira-bot", groups=[INTEGRATIONS]),
    )
    for role in ("business", "risk", "platform", "security", "pmo"):
        services.gate_approver_assign(actor=None, user=getattr(people, role), role=role)
    return people


@pytest.fixture
def initiative(db, panel):
    initiative = InitiativeFactory(delivery_lead=UserFactory(username="delivery.lead"))
    SuccessMetricFactory(initiative=initiative)
    return initiative
