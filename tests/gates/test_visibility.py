"""Who sees which review and approval: the scope of lists (``reviews_visible_to``,
``approvals_visible_to``) and the one-statement lookup the API's decision uses
(``approval_visible_to``, compiled once per connection) give the same answers, for everyone
around a review and for deputies whose delegation is in force, over, revoked or not begun."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from gates import selectors, services
from gates.models import Approval, Delegation
from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory
from tests.gates.helpers import pending, submitted_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(initiative, panel):
    """Two submitted reviews: ``initiative``'s, and one of another initiative whose people are
    strangers to the first. Deputies of the first's business owner (an approver of its gate) in
    every state a delegation has."""
    other = InitiativeFactory(delivery_lead=UserFactory(username="other.lead"))
    SuccessMetricFactory(initiative=other)
    mine = submitted_review(initiative, initiative.delivery_lead)
    theirs = submitted_review(other, other.delivery_lead)
    today = timezone.localdate()
    people = {
        "owner": initiative.business_owner,
        "sponsor": initiative.sponsor,
        "lead": initiative.delivery_lead,
        "risk": panel.risk,
        "pmo": panel.pmo,
        "bot": panel.bot,
        "other owner": other.business_owner,
        "stranger": UserFactory(username="stranger"),
        "superuser": UserFactory(username="root", is_superuser=True),
    }
    spans = {
        "deputy in force": (today - dt.timedelta(days=1), today + dt.timedelta(days=1)),
        "deputy, over": (today - dt.timedelta(days=5), today - dt.timedelta(days=1)),
        "deputy, not begun": (today + dt.timedelta(days=1), today + dt.timedelta(days=3)),
        "deputy, revoked": (today, today),
    }
    for name, (starts_on, ends_on) in spans.items():
        deputy = people[name] = UserFactory(username=name.replace(" ", "-").replace(",", ""))
        # Written directly: the service refuses a delegation that is already over.
        delegation = Delegation.objects.create(
            principal=initiative.business_owner,
            deputy=deputy,
            starts_on=starts_on,
            ends_on=ends_on,
        )
        if name == "deputy, revoked":
            services.delegation_revoke(actor=None, delegation=delegation)
    return mine, theirs, people


def test_the_lookup_and_the_list_agree_for_everyone(world):
    mine, theirs, people = world
    approvals = list(Approval.objects.order_by("id").values_list("pk", flat=True))
    assert approvals
    seen = {}
    for name, user in people.items():
        listed = set(selectors.approvals_visible_to(user=user).values_list("pk", flat=True))
        looked_up = {
            pk for pk in approvals if selectors.approval_visible_to(user=user, pk=pk) is not None
        }
        assert looked_up == listed, name
        seen[name] = {
            review.pk
            for review in (mine, theirs)
            if set(review.approvals.values_list("pk", flat=True)) <= listed
        }
        assert (
            not listed
            - set(mine.approvals.values_list("pk", flat=True))
            - set(theirs.approvals.values_list("pk", flat=True))
        )
    # What the rule says, spelled out, so two equally wrong answers cannot pass.
    both, only_mine, none = {mine.pk, theirs.pk}, {mine.pk}, set[int]()
    assert seen == {
        "owner": only_mine,
        "sponsor": only_mine,
        "lead": only_mine,
        "risk": none,  # not asked at G1
        "pmo": both,
        "bot": none,
        "other owner": {theirs.pk},
        "stranger": none,
        "superuser": both,
        "deputy in force": only_mine,
        "deputy, over": none,
        "deputy, not begun": none,
        "deputy, revoked": none,
    }


def test_the_list_names_each_review_once(world, panel):
    mine, theirs, people = world
    # The owner of the first initiative, asked on its review as its business owner, and the
    # PMO's deputy today, so asked again on it (and on the other review, as the PMO's deputy):
    # two approvals of one review match, the review is listed once.
    owner = people["owner"]
    today = timezone.localdate()
    services.delegation_create(
        actor=None, principal=panel.pmo, deputy=owner, starts_on=today, ends_on=today
    )
    assert mine.approvals.filter(approver__in=[owner, panel.pmo]).count() == 2
    reviews = list(selectors.reviews_visible_to(user=owner).values_list("pk", flat=True))
    assert sorted(reviews) == sorted([mine.pk, theirs.pk])
    approvals = list(selectors.approvals_visible_to(user=owner).values_list("pk", flat=True))
    assert len(approvals) == len(set(approvals)) == Approval.objects.count()


def test_an_unknown_or_out_of_range_approval_is_nobodys(world):
    _mine, _theirs, people = world
    last = Approval.objects.order_by("-pk").values_list("pk", flat=True)[0]
    for pk in (0, -1, last + 1000, 2**63, 10**30):
        for user in (people["superuser"], people["pmo"], people["owner"]):
            assert selectors.approval_visible_to(user=user, pk=pk) is None


def test_the_decision_endpoint_hides_what_the_caller_may_not_see(world):
    mine, _theirs, people = world
    api = APIClient()
    api.force_authenticate(people["other owner"])
    hidden = pending(mine)[0]
    for pk in (hidden.pk, 10**30):
        response = api.post(
            f"/api/v1/approvals/{pk}/decision/",
            {"decision": "approve", "comment": "not mine"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"k-{pk}",
        )
        assert response.status_code == 404, response.content
        assert response["Content-Type"].startswith("application/problem+json")
    hidden.refresh_from_db()
    assert hidden.status == "pending"
