"""A deciding call answers with ``api.serializers.approval_representation``, written by hand for
speed; ``ApprovalSerializer`` stays the contract. The two must agree in every shape an approval
takes: pending, approved, rejected with each outcome, decided by a deputy, in any time zone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from api.serializers import ApprovalSerializer, approval_representation
from gates import services
from gates.models import Approval
from tests.factories import UserFactory
from tests.gates.helpers import pending, submitted_review

pytestmark = pytest.mark.django_db


def _same(approval: Approval) -> dict[str, Any]:
    ours = approval_representation(approval)
    theirs = ApprovalSerializer(approval).data
    assert ours == theirs
    assert list(ours) == list(theirs)  # the same key order, so the same bytes
    assert JSONRenderer().render(ours) == JSONRenderer().render(theirs)
    return ours


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns"])
def test_every_shape_reads_as_the_serializer_writes_it(initiative, panel, zone):
    review = submitted_review(initiative, initiative.delivery_lead)
    first, second = pending(review)[:2]
    first.due_at = first.due_at.replace(microsecond=123456)
    first.save(update_fields=["due_at"])
    with timezone.override(zone):
        waiting = _same(Approval.objects.get(pk=first.pk))
        assert (waiting["decided_by"], waiting["decided_at"], waiting["outcome"]) == (
            None,
            None,
            "",
        )
        # The object the decision returns, as the view answers with it (statuses assigned in
        # code, not read back), decided by a deputy, with a comment beyond ASCII.
        principal = panel.for_role(first.role, initiative)
        deputy = UserFactory(username="deputy.one")
        today = timezone.localdate()
        services.delegation_create(
            actor=None, principal=principal, deputy=deputy, starts_on=today, ends_on=today
        )
        decided = services.approval_decide(
            approval=first, actor=deputy, decision="approve", comment="Go — ça marche ✓"
        )
        shown = _same(decided)
        assert (shown["status"], shown["decided_by"]) == ("approved", "deputy.one")
        _same(Approval.objects.get(pk=first.pk))
        rejected = services.approval_decide(
            approval=second,
            actor=panel.for_role(second.role, initiative),
            decision="reject",
            comment="not yet",
            outcome="hold",
        )
        assert _same(rejected)["outcome"] == "hold"


def test_the_decision_endpoint_answers_what_a_read_returns(initiative, panel, client_for):
    review = submitted_review(initiative, initiative.delivery_lead)
    approval = pending(review)[0]
    api = client_for(panel.for_role(approval.role, initiative))
    decided = api.post(
        f"/api/v1/approvals/{approval.pk}/decision/",
        {"decision": "approve", "comment": "ok"},
        format="json",
    )
    assert decided.status_code == 200, decided.content
    read = api.get(f"/api/v1/approvals/{approval.pk}/")
    assert decided.content == read.content
    assert dt.datetime.fromisoformat(decided.json()["decided_at"]) <= timezone.now()


def test_a_schema_client_accepts_the_answer(initiative, panel):
    # The answer carries exactly the serializer's fields, each of its type.
    review = submitted_review(initiative, initiative.delivery_lead)
    approval = pending(review)[0]
    api = APIClient()
    api.force_authenticate(panel.for_role(approval.role, initiative))
    answer = api.post(
        f"/api/v1/approvals/{approval.pk}/decision/", {"decision": "approve"}, format="json"
    ).json()
    assert set(answer) == set(ApprovalSerializer().fields)
    assert isinstance(answer["id"], int) and isinstance(answer["review"], int)
