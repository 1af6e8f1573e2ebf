"""The review lock turns off PostgreSQL's join-order search for its own transaction only: the
nine-table read of the review is planned as written (cheaper to plan), and nothing after the
transaction is affected."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from gates.services._common import lock_review
from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory
from tests.gates.helpers import submitted_review

pytestmark = pytest.mark.django_db(transaction=True)


def _join_collapse_limit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW join_collapse_limit")
        return cursor.fetchone()[0]


def test_the_lock_plans_joins_as_written_until_its_transaction_ends(panel):
    initiative = InitiativeFactory(delivery_lead=UserFactory())
    SuccessMetricFactory(initiative=initiative)
    review = submitted_review(initiative, initiative.delivery_lead)
    default = _join_collapse_limit()
    assert default != "1"
    with transaction.atomic():
        locked = lock_review(review.pk)
        assert _join_collapse_limit() == "1"
        # The read it plans that way still finds the review with everyone an event names.
        assert locked.pk == review.pk
        assert locked.initiative.business_owner_id == initiative.business_owner_id
        assert locked.submitted_by_id == initiative.delivery_lead_id
    assert _join_collapse_limit() == default
