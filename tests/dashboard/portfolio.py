"""A hand-built portfolio whose right answers are known, written with the history it would have.

Each initiative is created at a set time, its transition records are written at set times, and
its stage is set in the same transaction as those records (as an import would, so the database
guard accepts it). All times are whole days before ``now``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import time_machine
from django.db import transaction
from django.utils import timezone

from gates import services as gate_services
from gates.models import GateRole
from programs.models import Initiative, StageTransition
from programs.roles import PMO
from programs.selectors import stall_deadline
from programs.stages import Stage
from tests.factories import (
    BusinessUnitFactory,
    InitiativeFactory,
    MilestoneFactory,
    SuccessMetricFactory,
    UserFactory,
)
from tests.gates.helpers import submitted_review


def days_ago(now: dt.datetime, days: float) -> dt.datetime:
    return now - dt.timedelta(days=days)


def build(
    now: dt.datetime,
    *,
    created: float,
    moves: Sequence[tuple[str, str, float]] = (),
    **fields: Any,
) -> Initiative:
    """An initiative created ``created`` days ago that moved (from, to, days ago) in order."""
    with transaction.atomic():
        with time_machine.travel(days_ago(now, created), tick=False):
            initiative = InitiativeFactory(**fields)
            entered = timezone.now()
        stage: str = Stage.PROPOSED
        for from_stage, to_stage, when in moves:
            with time_machine.travel(days_ago(now, when), tick=False):
                StageTransition.objects.create(
                    initiative=initiative,
                    transition="imported",
                    from_stage=from_stage,
                    to_stage=to_stage,
                    reason="test history",
                )
            if not (from_stage == Stage.ON_HOLD and to_stage == stage):
                entered = days_ago(now, when)  # a resume keeps the stay's clock
            stage = to_stage
        Initiative.objects.filter(pk=initiative.pk).update(
            stage=stage,
            held_from=moves[-1][0] if stage == Stage.ON_HOLD else "",
            stage_entered_at=entered,
            stall_at=stall_deadline(stage, entered),
        )
    initiative.refresh_from_db()
    return initiative


@dataclass
class Portfolio:
    now: dt.datetime
    pmo: Any
    c1: Initiative  # claims, in operations: went all the way
    c2: Initiative  # claims, stalled in integration: no owner, no metric, overdue milestone
    c3: Initiative  # claims, stalled in proposed: its G1 approvals are overdue
    f1: Initiative  # finance, stalled in proposed: target workflow not named
    f2: Initiative  # finance, cancelled in pilot
    f3: Initiative  # finance, high risk, in pilot within budget


def hand_built_portfolio() -> Portfolio:
    """
    key    unit     stage now    history, days ago                       completed stays
    AI-C1  claims   operations   made 100, pilot 90, integration 60,     P10 Pi30 I20 H20
                                 hardening 40, operations 20
    AI-C2  claims   integration  made 250, pilot 240, hold 200,          P10 Pi50 (20 on hold
                                 resume 180, integration 170 (G2: 120)   not counted)
    AI-C3  claims   proposed     made 70 (budget 60); G1 review at 20    -
    AI-F1  finance  proposed     made 80 (budget 60); no target workflow -
    AI-F2  finance  cancelled    made 50, pilot 40, cancelled 30         P10 Pi10
    AI-F3  finance  pilot        made 30, pilot 25 (G1: 90)              P5
    """
    now = timezone.now()
    claims = BusinessUnitFactory(code="claims", name="Claims")
    finance = BusinessUnitFactory(code="finance", name="Finance")
    pmo = UserFactory(username="priya", is_staff=True, groups=[PMO], first_name="Priya")
    p, i, h, o = Stage.PILOT, Stage.INTEGRATION, Stage.HARDENING, Stage.OPERATIONS
    c1 = build(
        now,
        created=100,
        moves=[("proposed", p, 90), (p, i, 60), (i, h, 40), (h, o, 20)],
        key="AI-C1",
        name="Claims triage",
        business_unit=claims,
    )
    c2 = build(
        now,
        created=250,
        moves=[("proposed", p, 240), (p, "on_hold", 200), ("on_hold", p, 180), (p, i, 170)],
        key="AI-C2",
        name="Fraud signals",
        business_unit=claims,
        business_owner=None,
    )
    MilestoneFactory(
        initiative=c2,
        title="Wire the claims API",
        owner=UserFactory(username="omar", first_name="Omar"),
        due_at=days_ago(now, 5),
    )
    c3 = build(
        now,
        created=70,
        key="AI-C3",
        name="Subrogation finder",
        business_unit=claims,
        delivery_lead=UserFactory(username="dana"),
    )
    SuccessMetricFactory(initiative=c3)
    gate_services.gate_approver_assign(actor=None, user=pmo, role=GateRole.PMO)
    with time_machine.travel(days_ago(now, 20), tick=False):
        submitted_review(c3, c3.delivery_lead)
    f1 = build(now, created=80, key="AI-F1", name="Invoice matching", business_unit=finance)
    Initiative.objects.filter(pk=f1.pk).update(target_workflow="")
    SuccessMetricFactory(initiative=f1)
    f2 = build(
        now,
        created=50,
        moves=[("proposed", p, 40), (p, "cancelled", 30)],
        key="AI-F2",
        name='=HYPERLINK("http://evil")',  # a formula a spreadsheet must not run
        business_unit=finance,
    )
    f3 = build(
        now,
        created=30,
        moves=[("proposed", p, 25)],
        key="AI-F3",
        name="Cash forecasting",
        business_unit=finance,
        risk_tier="high",
    )
    SuccessMetricFactory(initiative=f3)
    return Portfolio(now, pmo, c1, c2, c3, f1, f2, f3)
