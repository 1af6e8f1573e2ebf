"""Tests that guard the guards: each fails when the one guard it names is taken out, even with
every other protection still in place (checked by removing each guard and running them)."""

from __future__ import annotations

import datetime as dt
from typing import cast

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gatekeeper.db import create_once, create_once_many
from gatekeeper.errors import PermissionDenied, TransitionRefused, ValidationFailed
from gatekeeper.types import User
from gates import selectors as gates_selectors
from gates import services as gates_services
from gates import sweeps as gates_sweeps
from gates.adapters import GateReviewPort
from gates.models import (
    MAX_EXPECTED_STAGE_DAYS,
    AlertKind,
    ApprovalAlert,
    ApprovalStatus,
    Gate,
    GateTemplate,
)
from gates.services import ApproverSpec, ConditionSpec, CriterionSpec
from notifications.models import Delivery, Event
from programs import sweeps as programs_sweeps
from programs.models import Initiative, Milestone, MilestoneAlert, MilestoneStatus, StallAlert
from programs.roles import INTEGRATIONS
from programs.stages import Stage
from tests.factories import InitiativeFactory, MilestoneFactory, UserFactory
from tests.gates.helpers import approve_all, pending, submitted_review

pytestmark = pytest.mark.django_db


def _sent() -> tuple[int, int, int]:
    return Event.objects.count(), Delivery.objects.count(), len(mail.outbox)


# --- once per level: gatekeeper.db.create_once -------------------------------------------------


def test_create_once_records_the_first_time_only(initiative):
    milestone = MilestoneFactory(initiative=initiative)
    fields = {"milestone": milestone, "level": 1, "due_at": milestone.due_at}
    assert create_once(MilestoneAlert, **fields) is True
    assert create_once(MilestoneAlert, **fields) is False
    assert MilestoneAlert.objects.filter(milestone=milestone).count() == 1
    # The caller's transaction survived the duplicate: it can still write.
    assert create_once(MilestoneAlert, **{**fields, "level": 2}) is True


def test_create_once_many_records_and_reports_only_the_new_rows(initiative):
    first, second = (MilestoneFactory(initiative=initiative) for _ in range(2))
    create_once(MilestoneAlert, milestone=first, level=1, due_at=first.due_at)
    rows = [MilestoneAlert(milestone=m, level=1, due_at=m.due_at) for m in (first, second)]
    assert create_once_many(rows, returning="milestone") == {second.pk}
    assert create_once_many(rows, returning="milestone") == set()
    assert MilestoneAlert.objects.filter(level=1).count() == 2
    # The caller's transaction survived the duplicates: it can still write.
    assert create_once(MilestoneAlert, milestone=first, level=2, due_at=first.due_at) is True


def test_overdue_sweep_meeting_a_recorded_alert_sends_nothing(initiative):
    past = timezone.now() - dt.timedelta(hours=1)
    milestone = MilestoneFactory(initiative=initiative, due_at=past, next_alert_at=past)
    MilestoneAlert.objects.create(milestone=milestone, level=1, due_at=milestone.due_at)
    before = _sent()
    assert programs_sweeps.sweep_overdue_milestones() == 0
    assert _sent() == before
    milestone.refresh_from_db()
    assert milestone.alert_level == 1  # the deadline still moves on


def test_stall_sweep_meeting_a_recorded_alert_sends_nothing(initiative):
    Initiative.objects.filter(pk=initiative.pk).update(
        stall_at=timezone.now() - dt.timedelta(days=1)
    )
    initiative.refresh_from_db()
    StallAlert.objects.create(
        initiative=initiative, stage=initiative.stage, stage_entered_at=initiative.stage_entered_at
    )
    before = _sent()
    assert programs_sweeps.sweep_stalled_initiatives() == 0
    assert _sent() == before


def test_approval_sweep_meeting_a_recorded_reminder_sends_nothing(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    approvals = pending(review)
    for approval in approvals:
        ApprovalAlert.objects.create(approval=approval, kind=AlertKind.REMINDER)
    remind_ats = [cast(dt.datetime, a.remind_at) for a in approvals]
    now = max(remind_ats) + dt.timedelta(minutes=1)
    assert now < min(a.due_at for a in approvals)  # the reminder is what is due, not escalation
    before = _sent()
    assert gates_sweeps.sweep_approval_deadlines(now=now) == 0
    assert _sent() == before


# --- a service account never decides: gates.services.decisions ---------------------------------


def test_an_approver_turned_service_account_cannot_approve(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    approval = review.approvals.get(role="pmo")
    assert approval.approver == panel.pmo
    panel.pmo.groups.add(Group.objects.get_or_create(name=INTEGRATIONS)[0])
    with pytest.raises(PermissionDenied, match="service account"):
        gates_services.approval_decide(
            approval=approval, actor=panel.pmo, decision="approve", comment="ok"
        )
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


# --- open Conditional-Go conditions keep the next gate shut: gates.adapters ----------------------


def _revise_without_condition_checks(code: str, actor) -> GateTemplate:
    gate = Gate.objects.get(code=code)
    current = gates_selectors.gate_template_current(gate=gate)
    return gates_services.gate_template_revise(
        gate=gate,
        actor=actor,
        criteria=[
            CriterionSpec(c.code, c.text, c.kind, c.check_name, c.required, c.risk_tiers)
            for c in current.criteria.all()
            if c.check_name not in ("no_open_gate_conditions", "stage_milestones_closed")
        ],
        approvers=[ApproverSpec(a.role, a.risk_tiers) for a in current.approvers.all()],
        decision_sla_business_days=current.decision_sla_business_days,
        expected_stage_days=current.expected_stage_days,
        note="Conditions no longer checked at this gate",
    )


def test_an_open_gate_condition_keeps_the_next_gate_shut_whatever_the_template(initiative, panel):
    g1 = submitted_review(initiative, initiative.delivery_lead)
    owner_approval = g1.approvals.get(role="business_owner")
    gates_services.approval_decide(
        approval=owner_approval,
        actor=initiative.business_owner,
        decision="approve",
        comment="ok",
        conditions=[
            ConditionSpec(
                title="DPIA signed",
                owner=UserFactory(),
                due_at=timezone.now() + dt.timedelta(days=14),
            )
        ],
    )
    approve_all(g1, panel)
    initiative.refresh_from_db()
    assert initiative.stage == Stage.PILOT
    assert Milestone.objects.filter(
        initiative=initiative, is_gate_condition=True, status=MilestoneStatus.OPEN
    ).exists()

    _revise_without_condition_checks("G2", panel.pmo)
    g2 = submitted_review(initiative, initiative.delivery_lead)  # the template lets it through
    with pytest.raises(TransitionRefused):
        approve_all(g2, panel)
    initiative.refresh_from_db()
    assert initiative.stage == Stage.PILOT

    verdict = GateReviewPort().verdict(initiative, Stage.INTEGRATION)
    assert not verdict.approved
    assert "gate condition 'DPIA signed' is still open" in verdict.unmet


# --- what a non-PMO user sees ----------------------------------------------------------------


@pytest.fixture
def two_owners(panel):
    mine = InitiativeFactory(name="Mine")
    owner = cast(User, mine.business_owner)
    owner.is_staff = True
    owner.save(update_fields=["is_staff"])
    theirs = InitiativeFactory(name="Theirs")
    # An initiative someone else owns, where this owner holds a milestone: visible too.
    shared = InitiativeFactory(name="Shared")
    shared_milestone = MilestoneFactory(initiative=shared, owner=owner)
    MilestoneFactory(initiative=theirs)  # not theirs to see
    my_milestone = MilestoneFactory(initiative=mine, owner=UserFactory())
    client = Client()
    client.force_login(owner)
    return {
        "client": client,
        "visible": {mine.pk, shared.pk},
        # Adding a milestone and opening a gate review are for an initiative's own people, not
        # for someone who holds one of its milestones.
        "changeable": {mine.pk},
        "reviewable": {mine.pk},
        "hidden": theirs,
        "milestones": {shared_milestone.pk, my_milestone.pk},
    }


def test_a_business_owner_lists_exactly_their_initiatives(two_owners):
    response = two_owners["client"].get(reverse("admin:programs_initiative_changelist"))
    assert response.status_code == 200
    assert {i.pk for i in response.context["cl"].result_list} == two_owners["visible"]


def test_a_business_owner_lists_exactly_their_milestones(two_owners):
    response = two_owners["client"].get(reverse("admin:programs_milestone_changelist"))
    assert response.status_code == 200
    assert {m.pk for m in response.context["cl"].result_list} == two_owners["milestones"]


@pytest.mark.parametrize(
    ("url_name", "expected"),
    [("admin:programs_milestone_add", "changeable"), ("admin:gates_gatereview_add", "reviewable")],
)
def test_a_business_owner_chooses_among_exactly_their_initiatives(two_owners, url_name, expected):
    response = two_owners["client"].get(reverse(url_name))
    assert response.status_code == 200
    choices = response.context["adminform"].form.fields["initiative"].queryset
    assert set(choices.values_list("pk", flat=True)) == two_owners[expected]


def test_an_approver_inbox_lists_exactly_their_pending_approvals(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    mine = review.approvals.get(role="pmo")
    # pmo sees everything elsewhere; the inbox is still only what they decide.
    client = Client()
    panel.pmo.is_staff = True
    panel.pmo.save(update_fields=["is_staff"])
    client.force_login(panel.pmo)
    response = client.get(reverse("admin:gates_approvalinbox_changelist"))
    assert response.status_code == 200
    assert [a.pk for a in response.context["cl"].result_list] == [mine.pk]


# --- numbers the code computes with ---------------------------------------------------------


def test_a_template_cannot_promise_a_stay_past_what_a_date_can_hold(panel):
    gate = Gate.objects.get(code="G2")
    current = gates_selectors.gate_template_current(gate=gate)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)

    with pytest.raises(ValidationFailed):
        gates_services.gate_template_revise(
            gate=gate,
            actor=root,
            criteria=[
                CriterionSpec(c.code, c.text, c.kind, c.check_name, c.required, c.risk_tiers)
                for c in current.criteria.all()
            ],
            approvers=[ApproverSpec(a.role, a.risk_tiers) for a in current.approvers.all()],
            decision_sla_business_days=5,
            expected_stage_days=2_147_483_647,
        )
    assert gates_selectors.gate_template_current(gate=gate) == current
    field = GateTemplate._meta.get_field("expected_stage_days")
    assert max(v.limit_value for v in field.validators if hasattr(v, "limit_value")) == (
        MAX_EXPECTED_STAGE_DAYS
    )
    # And the database, for whatever skips the service.
    with pytest.raises(IntegrityError), transaction.atomic():
        GateTemplate.objects.create(gate=gate, version=99, expected_stage_days=2_147_483_647)
