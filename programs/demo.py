"""The programs half of the demo portfolio loaded by `make run` (gates' `seed_demo` command):
business units, people, a year of initiatives in every stage, owners, metrics, milestones, and
the stage history that got them there, so the portfolio views have a story to tell on day one:
pilots that reached operations and pilots that were killed, and initiatives stalled for
different reasons (no owner, no baseline or target, overdue milestones, approvers who have not
answered).

History is written as it would be by an import from the PMO's old spreadsheet: the transition
records say so in their reason, so nobody mistakes them for gate decisions made in Gatekeeper,
and carry the date each stage was entered.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
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

# key, name, business unit, story (see STORIES)
PORTFOLIO: list[tuple[str, str, str, str]] = [
    ("AI-013", "Claims document classification", "claims", "live"),
    ("AI-014", "Medical bill review", "claims", "pilot_killed"),
    ("AI-015", "Total loss prediction", "claims", "pilot_late"),
    ("AI-016", "Litigation propensity", "claims", "no_owner"),
    ("AI-017", "Claims reserve estimation", "claims", "integration"),
    ("AI-018", "Photo damage estimation", "claims", "retired"),
    ("AI-019", "Adjuster workload balancing", "claims", "pilot"),
    ("AI-020", "Recovery letter drafting", "claims", "proposal_dropped"),
    ("AI-021", "Intent routing", "service", "live_recent"),
    ("AI-022", "Knowledge article suggestions", "service", "pilot"),
    ("AI-023", "Complaint detection", "service", "awaiting_approvers"),
    ("AI-024", "Email auto-tagging", "service", "live"),
    ("AI-025", "Chatbot handover", "service", "pilot_killed_late"),
    ("AI-026", "Quality assurance sampling", "service", "no_baseline"),
    ("AI-027", "Sentiment trend alerts", "service", "hardening"),
    ("AI-028", "Callback scheduling", "service", "fresh"),
    ("AI-029", "Accruals estimation", "finance", "integration_late"),
    ("AI-030", "Vendor master deduplication", "finance", "live_recent"),
    ("AI-031", "Payment terms optimisation", "finance", "pilot_killed"),
    ("AI-032", "Journal entry review", "finance", "hardening_late"),
    ("AI-033", "Tax code suggestion", "finance", "pilot"),
    ("AI-034", "Collections prioritisation", "finance", "on_hold"),
    ("AI-035", "Budget variance commentary", "finance", "no_owner"),
    ("AI-036", "Contract clause extraction", "finance", "integration"),
    ("AI-037", "Inventory rebalancing", "supply", "live"),
    ("AI-038", "Lead-time prediction", "supply", "pilot_late"),
    ("AI-039", "Warehouse slotting", "supply", "retired"),
    ("AI-040", "Returns triage", "supply", "pilot_killed_late"),
    ("AI-041", "Carrier rate benchmarking", "supply", "no_baseline"),
    ("AI-042", "Spare parts forecasting", "supply", "hardening"),
    ("AI-043", "Purchase order anomaly", "supply", "fresh"),
    ("AI-044", "Supplier onboarding checks", "supply", "integration"),
]


@dataclass(frozen=True)
class Story:
    """How an initiative's year went: the stages it entered, each so many days ago (the last is
    where it stands now), and what its data looks like."""

    path: tuple[tuple[str, int], ...]
    health: str = Health.GREEN
    risk: str = RiskTier.MEDIUM
    owner: bool = True
    baseline_and_target: bool = True
    late_milestones: bool = False
    on_target: bool = True


P, PI, IN, HA, OP = (
    Stage.PROPOSED,
    Stage.PILOT,
    Stage.INTEGRATION,
    Stage.HARDENING,
    Stage.OPERATIONS,
)
# Stage budgets of the seeded gates: proposed 60 days, pilot 90, integration 120, hardening 60.
STORIES: dict[str, Story] = {
    "live": Story(((P, 350), (PI, 300), (IN, 210), (HA, 120), (OP, 75))),
    "live_recent": Story(((P, 310), (PI, 260), (IN, 170), (HA, 70), (OP, 14)), risk=RiskTier.LOW),
    "retired": Story(
        ((P, 364), (PI, 330), (IN, 270), (HA, 220), (OP, 180), (Stage.RETIRED, 20)),
        risk=RiskTier.LOW,
    ),
    # Pilots that died: the results never reached the target.
    "pilot_killed": Story(
        ((P, 280), (PI, 220), (Stage.CANCELLED, 130)), health=Health.RED, on_target=False
    ),
    "pilot_killed_late": Story(
        ((P, 240), (PI, 170), (Stage.CANCELLED, 35)), health=Health.RED, on_target=False
    ),
    "proposal_dropped": Story(((P, 200), (Stage.CANCELLED, 150)), owner=False),
    "fresh": Story(((P, 12),), owner=False, risk=RiskTier.LOW),
    "pilot": Story(((P, 130), (PI, 45))),
    "integration": Story(((P, 260), (PI, 190), (IN, 40))),
    "hardening": Story(((P, 330), (PI, 270), (IN, 160), (HA, 25)), risk=RiskTier.HIGH),
    "on_hold": Story(((P, 220), (PI, 160), (Stage.ON_HOLD, 40)), health=Health.AMBER),
    # Stalled, each for its own reason.
    "no_owner": Story(((P, 85),), health=Health.AMBER, owner=False),
    "no_baseline": Story(((P, 75),), health=Health.AMBER, baseline_and_target=False),
    "awaiting_approvers": Story(((P, 70),), health=Health.AMBER, owner=False),
    "pilot_late": Story(((P, 250), (PI, 140)), health=Health.RED, late_milestones=True),
    "integration_late": Story(
        ((P, 340), (PI, 290), (IN, 150)), health=Health.RED, late_milestones=True
    ),
    "hardening_late": Story(
        ((P, 345), (PI, 300), (IN, 200), (HA, 80)), health=Health.AMBER, late_milestones=True
    ),
}

# Gate reviews seed_demo submits and leaves waiting on overdue approvals: key, business owner.
# AI-009 is the one whose owner finds it in their inbox; AI-023 has stalled over it.
AWAITING_APPROVAL = [("AI-009", "finance.owner"), ("AI-023", "service.owner")]

_PATH: list[str] = [P, PI, IN, HA, OP]


def _path_of(stage: str, days: int) -> tuple[tuple[str, int], ...]:
    """The path of one of the hand-written INITIATIVES: the stages that led to ``stage``
    (entered ``days`` ago), spread evenly over the year before."""
    reached: str | None = {Stage.ON_HOLD: IN, Stage.CANCELLED: PI, Stage.RETIRED: OP}.get(
        Stage(stage)
    )
    stages = [*_PATH[: _PATH.index(reached or stage) + 1], *([stage] if reached else [])]
    gap = max(5, min(45, (360 - days) // max(len(stages) - 1, 1)))
    return tuple((s, days + gap * (len(stages) - 1 - i)) for i, s in enumerate(stages))


def _stories() -> list[tuple[str, str, str, Story, str]]:
    """Every demo initiative: key, name, business unit, story, target workflow."""
    units = dict(UNITS)
    rows = [
        (
            key,
            name,
            unit,
            Story(
                _path_of(stage, days),
                health=health,
                risk=risk,
                owner=stage != Stage.PROPOSED,
                late_milestones=health != Health.GREEN,
                on_target=stage != Stage.CANCELLED,
            ),
            workflow,
        )
        for key, name, unit, stage, days, risk, health, workflow in INITIATIVES
    ]
    rows += [
        (
            key,
            name,
            unit,
            STORIES[story],
            f"{units[unit]} staff act on {name.lower()} results in the tools they already use",
        )
        for key, name, unit, story in PORTFOLIO
    ]
    return rows


class PortfolioLoader:
    """Call ``load()`` inside a transaction; returns the people by username."""

    def load(self) -> dict[str, Any]:
        User = get_user_model()
        self.now = timezone.now()
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

        for key, name, unit, story, workflow in _stories():
            if Initiative.objects.filter(key=key).exists():
                continue
            initiative = Initiative.objects.create(
                key=key,
                name=name,
                summary=f"{name} for {units[unit].name}.",
                business_unit=units[unit],
                business_owner=people[f"{unit}.owner"] if story.owner else None,
                sponsor=people["sponsor"],
                delivery_lead=people["ml.lead"],
                risk_tier=story.risk,
                health=story.health,
                target_workflow=workflow,
                stage_entered_at=self._ago(story.path[0][1]),
                created_by=people["pmo"],
            )
            self._history(initiative, story, people["pmo"])
            self._metrics(initiative, story)
            self._milestones(initiative, story, people)
        return people

    def _ago(self, days: int) -> dt.datetime:
        return self.now - dt.timedelta(days=days)

    def _history(self, initiative: Initiative, story: Story, pmo: Any) -> None:
        for (from_stage, _), (to_stage, days) in itertools.pairwise(story.path):
            record = StageTransition(
                initiative=initiative,
                transition="imported",
                from_stage=from_stage,
                to_stage=to_stage,
                actor=pmo,
                reason="Imported from the PMO portfolio spreadsheet (seed_demo)",
                created_at=self._ago(days),
            )
            # A raw save, as loaddata does: the record keeps the date the stage was entered.
            record.save_base(raw=True)
        stage, entered = story.path[-1][0], self._ago(story.path[-1][1])
        held = story.path[-2] if stage == Stage.ON_HOLD else None
        held_entered = self._ago(held[1]) if held else None
        # Rows are created in `proposed`; the imported history decides where they stand now.
        Initiative.objects.filter(pk=initiative.pk).update(
            stage=stage,
            held_from=held[0] if held else "",
            stage_entered_at=entered,
            stall_at=stall_deadline(stage, entered),
            held_stage_entered_at=held_entered,
            held_stall_at=stall_deadline(held[0], held_entered) if held and held_entered else None,
            created_at=self._ago(story.path[0][1]),
        )

    def _metrics(self, initiative: Initiative, story: Story) -> None:
        if initiative.key == "AI-006":
            return  # a proposal that has not defined success yet: G1 will say so
        stage = story.path[-1][0]
        judged = story.baseline_and_target
        metric = SuccessMetric.objects.create(
            initiative=initiative,
            name="Handling time",
            unit="minutes",
            baseline=Decimal("42") if judged else None,
            target=Decimal("30") if judged else None,
            direction="lower",
        )
        if stage != Stage.PROPOSED:
            if stage in (Stage.OPERATIONS, Stage.RETIRED):
                value = Decimal("28")
            else:
                value = Decimal("33.5") if story.on_target else Decimal("41")
            SuccessMetric.objects.filter(pk=metric.pk).update(
                current_value=value, measured_at=self.now - dt.timedelta(days=2)
            )
        SuccessMetric.objects.create(
            initiative=initiative,
            name="Adoption",
            unit="% of cases",
            baseline=Decimal("0") if judged else None,
            target=Decimal("70") if judged else None,
        )

    def _milestones(self, initiative: Initiative, story: Story, people: dict[str, Any]) -> None:
        stage = story.path[-1][0]
        if stage in (Stage.CANCELLED, Stage.RETIRED):
            return
        stage_for = story.path[-2][0] if stage == Stage.ON_HOLD else stage
        late = story.late_milestones
        plans = [
            ("Workflow redesign signed off", -12, True),
            ("Integration test in staging", -4 if late else 4, False),
            ("Runbook drafted", 9, False),
            ("Model card published", 21, False),
        ]
        owner = initiative.business_owner or people["pmo"]
        for index, (title, due_in_days, done) in enumerate(plans):
            due = self.now + dt.timedelta(days=due_in_days)
            status = MilestoneStatus.DONE if done else MilestoneStatus.OPEN
            Milestone.objects.create(
                initiative=initiative,
                stage=stage_for,
                title=title,
                owner=people["ml.lead"] if index % 2 else owner,
                due_at=due,
                status=status,
                completed_at=due if done else None,
                next_alert_at=None if done else due,
                external_system="jira" if index == 1 else "",
                external_key=f"GK-{initiative.pk * 10 + index}" if index == 1 else "",
            )
