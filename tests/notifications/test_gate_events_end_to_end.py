"""From a real gate review submission to each approver's inbox and a subscribed ticketing
system, through the outbox, on-commit dispatch and the transports (Celery run inline)."""

from __future__ import annotations

from typing import cast

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from standardwebhooks import Webhook

from gates import services as gates
from gates.models import Approval, GateRole
from programs.roles import APPROVERS, PMO
from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory
from tests.gates.helpers import submitted_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def g1_submission(django_capture_on_commit_callbacks, eager_celery, endpoint):
    pmo = UserFactory(username="priya", email="priya@example.com", groups=[PMO, APPROVERS])
    gates.gate_approver_assign(actor=None, user=pmo, role=GateRole.PMO)
    initiative = InitiativeFactory(delivery_lead=UserFactory(username="jonas"))
    SuccessMetricFactory(initiative=initiative)
    endpoint.event_types = ["review.submitted"]
    endpoint.save()
    with django_capture_on_commit_callbacks(execute=True):
        review = submitted_review(initiative, initiative.delivery_lead)
    return review


def test_each_approver_gets_an_email_with_a_link_to_decide(g1_submission):
    approvals = list(Approval.objects.filter(review=g1_submission).select_related("approver"))
    assert len(approvals) == 2
    submitted = [m for m in mail.outbox if "awaits your decision" in m.subject]
    assert sorted(m.to[0] for m in submitted) == sorted(a.approver.email for a in approvals)
    for message in submitted:
        alternative = cast(EmailMultiAlternatives, message).alternatives[0]
        html = cast(str, alternative[0])
        assert "/admin/gates/approvalinbox/" in message.body
        assert "/admin/gates/approvalinbox/" in html


def test_the_subscribed_ticketing_system_gets_one_signed_webhook(g1_submission, receiver, endpoint):
    [request] = [r for r in receiver.requests if b"review.submitted" in r.body]
    body = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert body["type"] == "review.submitted"
    assert body["data"]["review"]["id"] == g1_submission.pk
    assert body["data"]["initiative"]["key"] == g1_submission.initiative.key
    assert receiver.verify_errors == []
    # Only review.submitted was subscribed: the other events of the same transaction are not sent.
    assert all(b"review.submitted" in r.body for r in receiver.requests)
