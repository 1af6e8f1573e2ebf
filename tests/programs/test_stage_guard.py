"""PostgreSQL refuses any move of an initiative that comes without its transition record.

These tests commit for real (``transaction=True``): the stage guard is a deferred constraint
trigger, which runs at commit, after the service has written both the stage and its record.
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from programs import services
from programs.models import Initiative, StageTransition
from programs.stages import Stage
from tests.factories import InitiativeFactory, SuccessMetricFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _stage(initiative: Initiative) -> str:
    return Initiative.objects.values_list("stage", flat=True).get(pk=initiative.pk)


def test_queryset_update_of_the_stage_is_refused_at_commit():
    initiative = InitiativeFactory()
    with pytest.raises(IntegrityError, match="without a transition record"):
        Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.HARDENING)
    assert _stage(initiative) == Stage.PROPOSED
    assert not StageTransition.objects.filter(initiative_id=initiative.pk).exists()


def test_raw_sql_update_of_the_stage_is_refused_at_commit():
    initiative = InitiativeFactory()
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE programs_initiative SET stage = 'operations' WHERE id = %s", [initiative.pk]
        )
    assert _stage(initiative) == Stage.PROPOSED


def test_an_initiative_cannot_be_created_past_proposed():
    with pytest.raises(IntegrityError, match="must start in stage proposed"):
        InitiativeFactory(stage=Stage.OPERATIONS)
    assert not Initiative.objects.exists()


def test_a_record_of_another_move_does_not_license_this_one():
    initiative = InitiativeFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        StageTransition.objects.create(
            initiative=initiative, transition="forged", from_stage="pilot", to_stage="hardening"
        )
        Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.HARDENING)
    assert _stage(initiative) == Stage.PROPOSED


def test_a_record_from_an_earlier_transaction_does_not_license_a_new_move(gate_port):
    initiative = InitiativeFactory()
    services.initiative_hold(initiative=initiative, actor=None, reason="pause")
    services.initiative_resume(initiative=initiative, actor=None)
    assert StageTransition.objects.filter(
        initiative=initiative, from_stage=Stage.PROPOSED, to_stage=Stage.ON_HOLD
    ).exists()

    with pytest.raises(IntegrityError):
        Initiative.objects.filter(pk=initiative.pk).update(
            stage=Stage.ON_HOLD, held_from=Stage.PROPOSED
        )
    assert _stage(initiative) == Stage.PROPOSED


def test_a_move_written_with_its_record_in_one_transaction_commits():
    initiative = InitiativeFactory()
    with transaction.atomic():
        Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.PILOT)
        StageTransition.objects.create(
            initiative=initiative, transition="imported", from_stage="proposed", to_stage="pilot"
        )
    assert _stage(initiative) == Stage.PILOT


def test_every_lifecycle_move_through_the_services_commits(gate_port):
    initiative = InitiativeFactory()
    SuccessMetricFactory(initiative=initiative)
    for target in (Stage.PILOT, Stage.INTEGRATION):
        gate_port.approve(initiative, target)
        services.initiative_advance(initiative=initiative, actor=None)
    services.initiative_hold(initiative=initiative, actor=None, reason="budget freeze")
    services.initiative_resume(initiative=initiative, actor=None)
    # Inside an outer transaction the move runs in a savepoint: its record is still ours.
    with transaction.atomic():
        gate_port.approve(initiative, Stage.HARDENING)
        services.initiative_advance(initiative=initiative, actor=None)
    gate_port.approve(initiative, Stage.OPERATIONS)
    services.initiative_advance(initiative=initiative, actor=None)
    services.initiative_retire(initiative=initiative, actor=None, reason="replaced")
    assert _stage(initiative) == Stage.RETIRED

    other = InitiativeFactory()
    services.initiative_cancel(initiative=other, actor=None, reason="no longer needed")
    assert _stage(other) == Stage.CANCELLED


def test_a_leaked_fsm_flag_still_cannot_move_the_stage_without_a_record():
    """Even if direct assignment were let through (django-fsm's shared flag), the save is
    refused at commit."""
    initiative = InitiativeFactory()
    field = Initiative._meta.get_field("stage")
    field.protected = False  # what a leaked flag looks like
    try:
        initiative.stage = Stage.OPERATIONS
        with pytest.raises(IntegrityError), transaction.atomic():
            initiative.save()
    finally:
        field.protected = True
    assert _stage(initiative) == Stage.PROPOSED
