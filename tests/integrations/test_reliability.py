"""The inbox's reliability: failures retried with backoff, dead letters, replays apply once."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import override_settings
from django.utils import timezone

from gatekeeper.celery import BEAT_SCHEDULE
from integrations import services
from integrations.models import InboundDelivery, InboundStatus
from notifications.models import Event
from programs import services as program_services
from programs.models import MilestoneStatus
from programs.roles import INTEGRATIONS
from tests.integrations.conftest import jira_body, post_jira

pytestmark = pytest.mark.django_db


def _receive(client, jira, django_capture_on_commit_callbacks, **kwargs):
    # Not eager: the on-commit task is captured but not run, as if the broker lost it.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_jira(client, jira, jira_body("AIP-7", "done"), **kwargs)
    assert response.status_code == 202
    assert len(callbacks) == 1
    return InboundDelivery.objects.get(pk=response.json()["delivery"])


def test_a_failing_apply_is_retried_later_and_then_applied_once(
    client, jira, milestone, monkeypatch, django_capture_on_commit_callbacks
):
    delivery = _receive(client, jira, django_capture_on_commit_callbacks)
    real_complete = program_services.milestone_complete
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return real_complete(**kwargs)

    monkeypatch.setattr(program_services, "milestone_complete", flaky)
    outcome = services.inbound_apply(delivery_id=delivery.pk)
    assert outcome.status == InboundStatus.FAILED
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (InboundStatus.FAILED, 1)
    assert "RuntimeError: database hiccup" in delivery.last_error
    assert delivery.next_attempt_at > timezone.now()
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.OPEN  # rolled back with the failure

    assert services.inbound_redispatch(inline=True) == 0  # not due yet
    with time_machine.travel(delivery.next_attempt_at + dt.timedelta(seconds=1)):
        assert services.inbound_redispatch(inline=True) == 1
        assert services.inbound_redispatch(inline=True) == 0  # finished: nothing to hand out
        assert services.inbound_apply(delivery_id=delivery.pk).status == "skipped"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        InboundStatus.APPLIED,
        2,
        "",
    )
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.DONE
    assert Event.objects.filter(type="milestone.done").count() == 1
    assert len(calls) == 2


def test_a_delivery_whose_task_was_lost_is_picked_up_by_the_sweep(
    client, jira, milestone, django_capture_on_commit_callbacks
):
    delivery = _receive(client, jira, django_capture_on_commit_callbacks)
    assert services.inbound_redispatch(inline=True) == 0  # left to its own task for a while
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=2)):
        assert services.inbound_redispatch(inline=True) == 1
    delivery.refresh_from_db()
    assert delivery.status == InboundStatus.APPLIED


def test_a_worker_lost_mid_apply_is_reclaimed_after_the_lease(
    client, jira, milestone, django_capture_on_commit_callbacks
):
    delivery = _receive(client, jira, django_capture_on_commit_callbacks)
    InboundDelivery.objects.filter(pk=delivery.pk).update(
        status=InboundStatus.APPLYING, attempts=1, claimed_at=timezone.now()
    )
    assert services.inbound_apply(delivery_id=delivery.pk).status == "skipped"  # still held
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=6)):
        assert services.inbound_redispatch(inline=True) == 1
    delivery.refresh_from_db()
    assert delivery.status == InboundStatus.APPLIED


@override_settings(INTEGRATIONS_INBOUND={"MAX_ATTEMPTS": 2, "RETRY_BASE_SECONDS": 1})
def test_a_delivery_that_keeps_failing_goes_dead_and_the_admin_retry_applies_it(
    client, jira, milestone, monkeypatch, django_capture_on_commit_callbacks
):
    delivery = _receive(client, jira, django_capture_on_commit_callbacks)
    real_complete = program_services.milestone_complete

    def broken(**kwargs):
        raise RuntimeError("still broken")

    monkeypatch.setattr(program_services, "milestone_complete", broken)
    services.inbound_apply(delivery_id=delivery.pk)
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=1)):
        assert services.inbound_apply(delivery_id=delivery.pk).status == InboundStatus.DEAD
        assert services.inbound_redispatch(inline=True) == 0  # dead is never picked up
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (InboundStatus.DEAD, 2)
    assert delivery.next_attempt_at is None

    monkeypatch.setattr(program_services, "milestone_complete", real_complete)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.inbound_delivery_retry(delivery_id=delivery.pk) is True
    assert len(callbacks) == 1
    assert services.inbound_apply(delivery_id=delivery.pk).status == InboundStatus.APPLIED
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.DONE
    assert services.inbound_delivery_retry(delivery_id=delivery.pk) is False  # not dead


def test_a_refusal_is_dead_at_once_with_the_reason(
    client, jira, milestone, bot, django_capture_on_commit_callbacks
):
    bot.groups.remove(Group.objects.get(name=INTEGRATIONS))
    delivery = _receive(client, jira, django_capture_on_commit_callbacks)
    outcome = services.inbound_apply(delivery_id=delivery.pk)
    assert outcome.status == InboundStatus.DEAD
    delivery.refresh_from_db()
    assert "Permission denied" in delivery.last_error
    milestone.refresh_from_db()
    assert milestone.status == MilestoneStatus.OPEN


def test_the_redispatch_sweep_is_scheduled():
    assert BEAT_SCHEDULE["integrations.redispatch"]["task"] == "integrations.redispatch"


def test_repeated_complete_through_the_service_is_idempotent(milestone, bot):
    with_events = Event.objects.count()
    program_services.milestone_complete(milestone=milestone, actor=bot)
    program_services.milestone_complete(milestone=milestone, actor=bot)
    assert Event.objects.count() == with_events + 1


def test_reopen_refuses_a_waived_milestone(milestone, bot):
    from gatekeeper.errors import Conflict

    program_services.milestone_waive(milestone=milestone, actor=None, reason="descoped")
    with pytest.raises(Conflict):
        program_services.milestone_reopen(milestone=milestone, actor=bot, reason="x")
