"""The programs half of the demo portfolio loaded by `make run` (gates' `seed_demo` command):
business units, people, initiatives in every stage, owners, metrics, milestones (some overdue),
and the stage history that got them there.

History is written as it would be by an import from the PMO's old spreadsheet: the transition
records say so in their reason, so nobody mistakes them for gate decisions made in Gatekeeper.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from programs import roles
from programs.models import (
    BusinessUnit,
    Health,
    Initiative,
    Milestone,
    MilestoneStatus,
    RiskTier,
    StageTransition,
    SuccessMetric,
)
from programs.selectors import stall_deadline
from programs.stages import Stage

DEMO_PASSWORD = "demo"

UNITS = [
    ("claims", "Claims"),
    ("service", "Customer Service"),
    ("finance", "Finance"),
    ("supply", "Supply Chain"),
]

# username, full name, groups, business unit code (membership), staff
PEOPLE = [
    ("pmo", "Priya Mehta", [roles.PMO], None),
    ("claims.owner", "Carla Nunes", [roles.BUSINESS_OWNERS], "claims"),
    ("service.owner", "Sam Okafor", [roles.BUSINESS_OWNERS], "service"),
    ("finance.owner", "Fiona Lindqvist", [roles.BUSINESS_OWNERS], "finance"),
    ("supply.owner", "Diego Alvarez", [roles.BUSINESS_OWNERS], "supply"),
    ("sponsor", "Helen Park", [roles.APPROVERS], None),
    ("risk.approver", "Rafael Costa", [roles.APPROVERS], None),
    ("platform.approver", "Mei Tanaka", [roles.APPROVERS], None),
    ("security.approver", "Olu Adeyemi", [roles.APPROVERS], None),
    ("ml.lead", "Jonas Weber", [], None),
    ("jira-bot", "Jira integration", [roles.INTEGRATIONS], None),
]

# key, name, unit, stage, days in stage, risk, health, workflow
INITIATIVES: list[tuple[str, str, str, str, int, str, str, str]] = [
    (
        "AI-001",
        "Claims triage assistant",
        "claims",
        Stage.OPERATIONS,
        120,
        RiskTier.MEDIUM,
        Health.GREEN,
        "First notice of loss triage: adjusters confirm model-proposed severity",
    ),
    (
        "AI-002",
        "Fraud signal scoring",
        "claims",
        Stage.HARDENING,
        35,
        RiskTier.HIGH,
        Health.AMBER,
        "Special investigations queue ordered by model score",
    ),
    (
        "AI-003",
        "Subrogation opportunity finder",
        "claims",
        Stage.PILOT,
        140,
        RiskTier.MEDIUM,
        Health.RED,
        "Recovery team reviews flagged closed claims weekly",
    ),
    (
        "AI-004",
        "Agent reply drafting",
        "service",
        Stage.INTEGRATION,
        40,
        RiskTier.MEDIUM,
        Health.GREEN,
        "Agents edit and send drafted replies inside the CRM",
    ),
    (
        "AI-005",
        "Call summarisation",
        "service",
        Stage.PILOT,
        20,
        RiskTier.LOW,
        Health.GREEN,
        "After-call work replaced by reviewed summaries",
    ),
    (
        "AI-006",
        "Churn early warning",
        "service",
        Stage.PROPOSED,
        10,
        RiskTier.LOW,
        Health.GREEN,
        "",
    ),
    (
        "AI-007",
        "Invoice matching",
        "finance",
        Stage.OPERATIONS,
        300,
        RiskTier.LOW,
        Health.GREEN,
        "Three-way match exceptions only go to AP clerks",
    ),
    (
        "AI-008",
        "Cash-flow forecasting",
        "finance",
        Stage.ON_HOLD,
        45,
        RiskTier.MEDIUM,
        Health.AMBER,
        "Treasury weekly forecast review",
    ),
    (
        "AI-009",
        "Expense anomaly detection",
        "finance",
        Stage.PROPOSED,
        3,
        RiskTier.MEDIUM,
        Health.GREEN,
        "Audit samples chosen by anomaly score",
    ),
    (
        "AI-010",
        "Demand sensing",
        "supply",
        Stage.INTEGRATION,
        95,
        RiskTier.MEDIUM,
        Health.RED,
        "Planners accept or override daily replenishment proposals",
    ),
    (
        "AI-011",
        "Supplier risk radar",
        "supply",
        Stage.CANCELLED,
        60,
        RiskTier.HIGH,
        Health.RED,
        "Category managers review weekly risk digest",
    ),
    (
        "AI-012",
        "Route optimisation",
        "supply",
        Stage.RETIRED,
        30,
        RiskTier.LOW,
        Health.GREEN,
        "Dispatchers receive optimised routes",
    ),
]

PATH: list[str] = [
    Stage.PROPOSED,
    Stage.PILOT,
    Stage.INTEGRATION,
    Stage.HARDENING,
    Stage.OPERATIONS,
]


class PortfolioLoader:
    """Call ``load()`` inside a transaction; returns the people by username."""

    def load(self) -> dict[str, Any]:
        User = get_user_model()
        now = timezone.now()
        units = {
            code: BusinessUnit.objects.get_or_create(code=code, defaults={"name": name})[0]
            for code, name in UNITS
        }
        people: dict[str, Any] = {}
        admin, created = User.objects.get_or_create(
            username="admin",
            defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True},
        )
        if created:
            admin.set_password(DEMO_PASSWORD)
            admin.save()
        for username, full_name, groups, unit in PEOPLE:
            first, _, last = full_name.partition(" ")
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "email": f"{username.replace('.', '_')}@example.com",
                    "first_name": first,
                    "last_name": last,
                    "is_staff": roles.INTEGRATIONS not in groups,
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            for name in groups:
                user.groups.add(Group.objects.get_or_create(name=name)[0])
            if unit:
                units[unit].members.add(user)
            people[username] = user

        for key, name, unit, stage, days, risk, health, workflow in INITIATIVES:
            if Initiative.objects.filter(key=key).exists():
                continue
            entered = now - dt.timedelta(days=days)
            initiative = Initiative.objects.create(
                key=key,
                name=name,
                summary=f"{name} for {units[unit].name}.",
                business_unit=units[unit],
                business_owner=people[f"{unit}.owner"] if stage != Stage.PROPOSED else None,
                sponsor=people["sponsor"],
                delivery_lead=people["ml.lead"],
                risk_tier=risk,
                health=health,
                target_workflow=workflow,
                stage_entered_at=entered,
                created_by=people["pmo"],
            )
            self._history(initiative, stage, entered, people["pmo"])
            self._metrics(initiative, stage, now)
            self._milestones(initiative, stage, people, now)
        return people

    def _history(self, initiative: Initiative, stage: str, entered: dt.datetime, pmo: Any) -> None:
        reached: str
        if stage in (Stage.ON_HOLD, Stage.CANCELLED):
            reached = Stage.INTEGRATION if stage == Stage.ON_HOLD else Stage.PILOT
        elif stage == Stage.RETIRED:
            reached = Stage.OPERATIONS
        else:
            reached = stage
        steps = PATH[: PATH.index(reached) + 1]
        pairs = list(itertools.pairwise(steps))
        if stage in (Stage.ON_HOLD, Stage.CANCELLED, Stage.RETIRED):
            pairs.append((reached, stage))
        for from_stage, to_stage in pairs:
            StageTransition.objects.create(
                initiative=initiative,
                transition="imported",
                from_stage=from_stage,
                to_stage=to_stage,
                actor=pmo,
                reason="Imported from the PMO portfolio spreadsheet (seed_demo)",
            )
        # Rows are created in `proposed`; the imported history decides where they stand now.
        Initiative.objects.filter(pk=initiative.pk).update(
            stage=stage,
            held_from=reached if stage == Stage.ON_HOLD else "",
            stage_entered_at=entered,
            stall_at=stall_deadline(stage, entered),
            held_stage_entered_at=entered - dt.timedelta(days=30)
            if stage == Stage.ON_HOLD
            else None,
        )

    def _metrics(self, initiative: Initiative, stage: str, now: dt.datetime) -> None:
        if stage == Stage.PROPOSED and initiative.key == "AI-006":
            return  # a proposal that has not defined success yet: G1 will say so
        metric = SuccessMetric.objects.create(
            initiative=initiative,
            name="Handling time",
            unit="minutes",
            baseline=Decimal("42"),
            target=Decimal("30"),
            direction="lower",
        )
        if stage not in (Stage.PROPOSED,):
            SuccessMetric.objects.filter(pk=metric.pk).update(
                current_value=Decimal("33.5"), measured_at=now - dt.timedelta(days=2)
            )
        SuccessMetric.objects.create(
            initiative=initiative,
            name="Adoption",
            unit="% of cases",
            baseline=Decimal("0"),
            target=Decimal("70"),
        )

    def _milestones(
        self, initiative: Initiative, stage: str, people: dict[str, Any], now: dt.datetime
    ) -> None:
        if stage in (Stage.CANCELLED, Stage.RETIRED):
            return
        stage_for = initiative.held_from or stage
        plans = [
            ("Workflow redesign signed off", -12, True),
            ("Integration test in staging", -4, False),
            ("Runbook drafted", 9, False),
            ("Model card published", 21, False),
        ]
        for index, (title, due_in_days, done) in enumerate(plans):
            due = now + dt.timedelta(days=due_in_days)
            status = MilestoneStatus.DONE if done else MilestoneStatus.OPEN
            Milestone.objects.create(
                initiative=initiative,
                stage=stage_for,
                title=title,
                owner=people["ml.lead"]
                if index % 2
                else (initiative.business_owner or people["pmo"]),
                due_at=due,
                status=status,
                completed_at=due if done else None,
                next_alert_at=None if done else due,
                external_system="jira" if index == 1 else "",
                external_key=f"GK-{initiative.pk * 10 + index}" if index == 1 else "",
            )
