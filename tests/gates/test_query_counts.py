"""Query budgets for the busiest writes (issue "one gate verdict per move").

The deciding approval of a review moves the initiative and tells everyone around it; a hold moves
it without a gate. Each is bounded, so a change that reads a row again, locks it twice or asks
the gate for its verdict more than once shows up here rather than as latency in production.
Measured on PostgreSQL inside the test's transaction, so the services' own transactions count
as a SAVEPOINT and its RELEASE.
"""

from __future__ import annotations

import pytest

from gatekeeper.errors import TransitionRefused
from gates import services
from gates.models import Outcome, ReviewState
from notifications.models import Channel, Delivery, Event, WebhookEndpoint
from programs import ports
from programs import services as programs
from programs.models import StageTransition
from programs.stages import Stage
from tests.factories import UserFactory
from tests.gates.helpers import pass_gate, pending, submitted_review

pytestmark = pytest.mark.django_db

# Before the issue: 62 and 13; after "one gate verdict per move": 25 and 10. Now the review's
# approvals and the caller's delegation and group are one statement, the recipients' users come
# with the locked rows, the endpoint list is cached (``warm_outbox``) and the caller's approval
# is not read again after commit: 15 and 6. The decision's three events are then recorded in
# one insert when its outbox batch closes: 13 and 6, plus the savepoint pair.
DECIDING_APPROVAL_MAX = 15
HOLD_MAX = 8


@pytest.fixture
def endpoint(db):
    # An empty subscription list means every event type.
    return WebhookEndpoint.objects.create(
        name="ticketing", url="https://hooks.example.com/in", event_types=[]
    )


@pytest.fixture
def last_approval(initiative, panel):
    """A submitted G1 review with all but its last approval given: business owner, sponsor,
    delivery lead (the submitter) and the PMO approver are the people told of its decision."""
    assert initiative.sponsor_id and initiative.delivery_lead_id
    review = submitted_review(initiative, initiative.delivery_lead)
    first, last = pending(review)
    services.approval_decide(
        approval=first, actor=panel.for_role(first.role, initiative), decision="approve"
    )
    return last


def test_the_deciding_approval_stays_within_its_query_budget(
    django_assert_max_num_queries, initiative, panel, endpoint, last_approval, warm_outbox
):
    actor = panel.for_role(last_approval.role, initiative)
    with django_assert_max_num_queries(DECIDING_APPROVAL_MAX) as captured:
        services.approval_decide(
            approval=last_approval, actor=actor, decision="approve", comment="ok"
        )
    print(f"deciding approval: {len(captured)} queries")

    review = last_approval.review
    review.refresh_from_db()
    initiative.refresh_from_db()
    assert (review.state, review.outcome) == (ReviewState.APPROVED, Outcome.GO)
    assert initiative.stage == Stage.PILOT
    assert StageTransition.objects.filter(initiative=initiative, gate_review_id=review.pk).exists()
    decided = Event.objects.get(type="review.decided")
    people = {
        initiative.business_owner_id,
        initiative.sponsor_id,
        initiative.delivery_lead_id,
        actor.pk,
    }
    assert people <= {r["user_id"] for r in decided.payload["recipients"]}
    for key in (
        f"approval.decided:{last_approval.pk}",
        f"initiative.stage_changed:{initiative.transitions.get().pk}",
        f"review.decided:{review.pk}",
    ):
        # Every event of the decision got its deliveries, the endpoint's included.
        deliveries = Delivery.objects.filter(event__key=key)
        assert deliveries.filter(channel=Channel.WEBHOOK, endpoint=endpoint).count() == 1
        assert deliveries.filter(channel=Channel.IN_APP).exists()


def test_a_hold_stays_within_its_query_budget(
    django_assert_max_num_queries, initiative, endpoint, warm_outbox
):
    with django_assert_max_num_queries(HOLD_MAX) as captured:
        programs.initiative_hold(initiative=initiative, actor=None, reason="budget freeze")
    print(f"hold: {len(captured)} queries")
    # The caller's instance is current, as if reloaded.
    assert initiative.stage == Stage.ON_HOLD
    assert initiative.held_from == Stage.PROPOSED
    initiative.refresh_from_db()
    assert initiative.stage == Stage.ON_HOLD


class _CountingPort:
    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def verdict(self, initiative, target_stage):
        self.calls += 1
        return self.inner.verdict(initiative, target_stage)


@pytest.fixture
def counting_port():
    previous = ports._port
    counting = _CountingPort(previous)
    ports.register_gate_port(counting)
    yield counting
    ports.register_gate_port(previous)


def test_a_deciding_approval_asks_the_gate_once(counting_port, initiative, panel, last_approval):
    services.approval_decide(
        approval=last_approval,
        actor=panel.for_role(last_approval.role, initiative),
        decision="approve",
    )
    initiative.refresh_from_db()
    assert initiative.stage == Stage.PILOT
    assert counting_port.calls == 1


def test_a_person_advancing_after_approval_asks_the_gate_once(counting_port, initiative, panel):
    """Outside a decision the verdict comes from the database (nothing is taken on trust), still
    once per move."""
    pass_gate(initiative, panel)  # G1 moves the initiative itself
    counting_port.calls = 0
    with pytest.raises(TransitionRefused) as refused:
        programs.initiative_advance(initiative=initiative, actor=None, reason="skip G2")
    assert refused.value.unmet == ["gate G2 has no review; open and submit one"]
    assert counting_port.calls == 1


def test_a_caller_cannot_open_a_gate_by_naming_an_undecided_review(initiative, panel):
    review = submitted_review(initiative, initiative.delivery_lead)
    with pytest.raises(TransitionRefused) as refused:
        programs.initiative_advance(
            initiative=initiative, actor=None, reason="trust me", gate_review_id=review.pk
        )
    assert refused.value.unmet == [
        f"gate G1 has no approved review (latest, #{review.pk}, is submitted)"
    ]
    initiative.refresh_from_db()
    assert initiative.stage == Stage.PROPOSED


def test_an_extra_recipient_costs_no_extra_query(
    django_assert_max_num_queries, initiative, warm_outbox
):
    # The recipients come with the locked row (no query for them) however many there are.
    initiative.sponsor = UserFactory()
    initiative.save(update_fields=["sponsor"])
    with django_assert_max_num_queries(HOLD_MAX):
        programs.initiative_hold(initiative=initiative, actor=None, reason="budget freeze")
