"""What gates' events say: every type gates emits carries a title and a summary, so each
e-mail's wording comes from ``gates.events`` and never from a generic fallback."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from gates import services, sweeps
from gates.models import Gate
from gates.selectors import gate_template_current
from notifications.messages import render
from notifications.models import Event
from tests.gates.helpers import approve_all, pending, submitted_review

MONDAY = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

GATES_TYPES = {
    "gate.template_revised",
    "review.submitted",
    "review.withdrawn",
    "approval.decided",
    "review.decided",
    "approval.reminder",
    "approval.escalated",
}


def _revise_g1(actor) -> None:
    """A new version with the same content: enough to emit gate.template_revised."""
    current = gate_template_current(gate=Gate.objects.get(code="G1"))
    services.gate_template_revise(
        gate=current.gate,
        actor=actor,
        criteria=[
            services.CriterionSpec(code=c.code, text=c.text, kind=c.kind, check_name=c.check_name)
            for c in current.criteria.all()
        ],
        approvers=[services.ApproverSpec(role=r.role) for r in current.approvers.all()],
        decision_sla_business_days=current.decision_sla_business_days,
        expected_stage_days=current.expected_stage_days,
        note="same again",
    )


@pytest.mark.django_db
def test_every_gates_event_has_its_own_title_and_summary(initiative, panel, admin_user):
    with time_machine.travel(MONDAY, tick=False) as clock:
        _revise_g1(admin_user)
        withdrawn = submitted_review(initiative, initiative.delivery_lead)
        services.gate_review_withdraw(
            review=withdrawn, actor=initiative.delivery_lead, reason="wrong evidence"
        )
        review = submitted_review(initiative, initiative.delivery_lead)
        clock.move_to(MONDAY + dt.timedelta(days=4, minutes=1))
        assert sweeps.sweep_approval_deadlines() == len(pending(review))
        clock.move_to(MONDAY + dt.timedelta(days=7, minutes=1))
        assert sweeps.sweep_approval_deadlines() == len(pending(review))
        approve_all(review, panel)

    emitted = {e.type: e for e in Event.objects.order_by("id")}
    assert set(emitted) >= GATES_TYPES
    for kind in GATES_TYPES:
        payload = emitted[kind].payload
        assert payload["title"].strip(), kind
        assert payload["summary"].strip(), kind
        assert isinstance(payload["recipients"], list), kind
        assert render(kind, payload).title == payload["title"], kind
        if kind != "gate.template_revised":  # a template belongs to no initiative
            assert payload["initiative"]["key"] == initiative.key, kind
