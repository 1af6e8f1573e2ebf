"""Who may do what to an initiative, its metrics and milestones (rules + services)."""

from __future__ import annotations

import datetime as dt
from typing import cast

import pytest
import time_machine
from django.utils import timezone

from gatekeeper.errors import PermissionDenied
from gatekeeper.types import User
from programs import services, sweeps
from programs.models import Initiative, MilestoneStatus
from programs.roles import INTEGRATIONS, PMO
from programs.stages import Stage
from tests.factories import InitiativeFactory, MilestoneFactory, SuccessMetricFactory, UserFactory
from tests.unguarded import unguarded

pytestmark = pytest.mark.django_db


@pytest.fixture
def bot():
    return UserFactory(username="jira-bot", groups=[INTEGRATIONS])


@pytest.fixture
def pmo():
    return UserFactory(groups=[PMO])


def test_service_account_cannot_edit_or_take_roles_on_an_initiative(bot):
    initiative = InitiativeFactory()
    with pytest.raises(PermissionDenied):
        services.initiative_update(initiative=initiative, actor=bot, changes={"name": "x"})
    with pytest.raises(PermissionDenied):
        services.initiative_cancel(initiative=initiative, actor=bot, reason="because")
    assert Initiative.objects.get(pk=initiative.pk).stage == Stage.PROPOSED


@pytest.mark.parametrize("field", ["sponsor", "delivery_lead", "business_owner"])
def test_only_pmo_names_the_people_who_hold_gate_powers(field, pmo):
    initiative = InitiativeFactory()
    sponsor = initiative.sponsor
    with pytest.raises(PermissionDenied):
        services.initiative_update(initiative=initiative, actor=sponsor, changes={field: sponsor})
    services.initiative_update(initiative=initiative, actor=pmo, changes={field: sponsor})


def test_assigning_the_business_owner_is_pmo_only(pmo):
    initiative = InitiativeFactory()
    with pytest.raises(PermissionDenied):
        services.initiative_assign_owner(
            initiative=initiative,
            actor=initiative.sponsor,
            business_owner=cast(User, initiative.sponsor),
        )
    services.initiative_assign_owner(
        initiative=initiative, actor=pmo, business_owner=cast(User, initiative.sponsor)
    )
    assert Initiative.objects.get(pk=initiative.pk).business_owner == initiative.sponsor


def test_a_role_taken_away_cannot_still_act_with_an_old_copy(pmo):
    initiative = InitiativeFactory()
    old_owner = initiative.business_owner
    stale = Initiative.objects.get(pk=initiative.pk)
    services.initiative_assign_owner(initiative=initiative, actor=pmo, business_owner=pmo)
    with pytest.raises(PermissionDenied):
        services.initiative_hold(initiative=stale, actor=old_owner, reason="mine")


class TestGateConditions:
    @pytest.fixture
    def condition(self):
        return MilestoneFactory(is_gate_condition=True)

    def test_people_bound_by_a_condition_cannot_waive_or_move_it(self, condition, bot):
        owner = condition.initiative.business_owner
        for actor in (owner, condition.owner, bot):
            with pytest.raises(PermissionDenied):
                services.milestone_waive(milestone=condition, actor=actor, reason="no")
        with pytest.raises(PermissionDenied):
            services.milestone_update(
                milestone=condition,
                actor=owner,
                title=condition.title,
                owner=condition.owner,
                due_at=condition.due_at + dt.timedelta(days=3650),
            )
        condition.refresh_from_db()
        assert condition.status == MilestoneStatus.OPEN

    def test_pmo_may_waive_and_a_ticket_may_complete_it(self, condition, bot, pmo):
        condition.initiative.business_unit.members.add(bot)  # in the service account's scope
        services.milestone_complete(milestone=condition, actor=bot)
        other = MilestoneFactory(is_gate_condition=True)
        services.milestone_waive(milestone=other, actor=pmo, reason="risk accepted by committee")
        assert {condition.status, other.status} == {MilestoneStatus.DONE, MilestoneStatus.WAIVED}


def test_service_account_may_complete_but_not_waive_ordinary_milestones(bot):
    milestone = MilestoneFactory()
    milestone.initiative.business_unit.members.add(bot)  # in the service account's scope
    with pytest.raises(PermissionDenied):
        services.milestone_waive(milestone=milestone, actor=bot, reason="closed in Jira")
    services.milestone_complete(milestone=milestone, actor=bot)


def test_after_g1_flipping_a_metric_direction_is_pmo_only(pmo):
    metric = SuccessMetricFactory()
    with unguarded():
        Initiative.objects.filter(pk=metric.initiative_id).update(stage=Stage.PILOT)
    owner = metric.initiative.business_owner
    with pytest.raises(PermissionDenied):
        services.metric_update(metric=metric, actor=owner, changes={"direction": "lower"})
    services.metric_update(metric=metric, actor=owner, changes={"unit": "cases"})
    services.metric_update(metric=metric, actor=pmo, changes={"direction": "lower"})


def test_hold_and_resume_keep_the_stage_clock(gate_port, stage_budgets):
    stage_budgets({Stage.PILOT: dt.timedelta(days=30)})
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        initiative = InitiativeFactory()
        SuccessMetricFactory(initiative=initiative)
        gate_port.approve(initiative, Stage.PILOT)
        services.initiative_advance(initiative=initiative, actor=None)
        entered, stall_at = initiative.stage_entered_at, cast(dt.datetime, initiative.stall_at)

        clock.move_to(start + dt.timedelta(days=10))
        services.initiative_hold(initiative=initiative, actor=None, reason="freeze")
        clock.move_to(start + dt.timedelta(days=25))
        services.initiative_resume(initiative=initiative, actor=None)
    assert initiative.stage_entered_at == entered
    assert initiative.stall_at == stall_at + dt.timedelta(days=15)  # the hold paused the clock


def test_milestones_of_held_or_cancelled_initiatives_raise_no_alerts():
    past = timezone.now() - dt.timedelta(days=30)
    held, cancelled, live = (MilestoneFactory(due_at=past) for _ in range(3))
    with unguarded():
        Initiative.objects.filter(pk=held.initiative_id).update(
            stage=Stage.ON_HOLD, held_from=Stage.PILOT
        )
        Initiative.objects.filter(pk=cancelled.initiative_id).update(stage=Stage.CANCELLED)
    assert sweeps.sweep_overdue_milestones() == 1
    live.refresh_from_db()
    assert live.alert_level == 1


def test_creating_with_people_or_a_risk_tier_is_pmo_only(bot, pmo):
    from tests.factories import BusinessUnitFactory

    unit = BusinessUnitFactory()
    owner = UserFactory(groups=["business-owners"])
    for actor, kwargs in (
        (bot, {"sponsor": bot}),
        (owner, {"business_owner": owner}),
        (owner, {"risk_tier": "low"}),
    ):
        with pytest.raises(PermissionDenied):
            services.initiative_create(actor=actor, name="x", business_unit=unit, **kwargs)
    services.initiative_create(actor=owner, name="A proposal", business_unit=unit)
    services.initiative_create(
        actor=pmo, name="Staffed", business_unit=unit, business_owner=owner, risk_tier="high"
    )
    assert Initiative.objects.count() == 2


def test_cancelling_takes_open_milestones_off_the_sweep():
    milestone = MilestoneFactory()
    services.initiative_cancel(initiative=milestone.initiative, actor=None, reason="stopped")
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.OPEN and milestone.next_alert_at is None


def test_only_pmo_sets_unit_memberships_and_they_are_the_service_scope(bot, pmo):
    from tests.factories import BusinessUnitFactory

    milestone = MilestoneFactory()
    unit, other = milestone.initiative.business_unit, BusinessUnitFactory(code="other")
    for refused in (bot, UserFactory(), milestone.initiative.business_owner):
        with pytest.raises(PermissionDenied):
            services.business_unit_members_set(actor=refused, user=bot, units=[unit])
    assert not bot.business_units.exists()
    assert not bot.has_perm("programs.complete_milestone", milestone)
    services.business_unit_members_set(actor=pmo, user=bot, units=[unit, other])
    assert set(bot.business_units.all()) == {unit, other}
    assert bot.has_perm("programs.complete_milestone", milestone)
    # Exactly the units given: the rest are taken away.
    services.business_unit_members_set(actor=pmo, user=bot, units=[other])
    assert list(bot.business_units.all()) == [other]
    assert not bot.has_perm("programs.complete_milestone", milestone)
