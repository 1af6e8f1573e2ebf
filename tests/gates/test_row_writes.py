"""gatekeeper.db's hot-path writes: ``insert_rows`` leaves rows and objects as ``bulk_create``
does, ``update_row`` as ``save(update_fields=...)`` does, in one statement each, for every
call's values; and the database's own rules still apply to them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_fsm import ConcurrentTransition

from gatekeeper.db import insert_rows, save_transitioned, update_row
from gates.models import Approval, ApprovalStatus, EventKind, GateReview, ReviewEvent
from tests.factories import UserFactory
from tests.gates.helpers import pending, submitted_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def review(initiative) -> Any:
    return submitted_review(initiative, initiative.delivery_lead)


def _entries(review: Any, actor: Any, n: int) -> list[ReviewEvent]:
    return [
        ReviewEvent(
            review=review,
            kind=EventKind.APPROVAL_DECIDED,
            actor=actor if i % 2 == 0 else None,
            data={"i": i, "text": 'it\'s "quoted" and ünïcode'},
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_insert_rows_writes_what_bulk_create_writes(review, n):
    actor = UserFactory()
    ours, theirs = _entries(review, actor, n), _entries(review, actor, n)
    with CaptureQueriesContext(connection) as ctx:
        insert_rows(ours)
    assert len(ctx.captured_queries) == 1
    ReviewEvent.objects.bulk_create(theirs)
    assert all(e.pk is not None and not e._state.adding and e._state.db == "default" for e in ours)
    # Ids follow the order given, as the log is read in id order within one instant.
    assert [e.pk for e in ours] == sorted(e.pk for e in ours)

    def stored(entries: list[ReviewEvent]) -> list[tuple[Any, ...]]:
        rows = ReviewEvent.objects.filter(pk__in=[e.pk for e in entries]).order_by("pk")
        return list(rows.values_list("review_id", "kind", "actor_id", "approval_id", "data"))

    assert stored(ours) == stored(theirs)
    for entry in ours:
        saved = ReviewEvent.objects.get(pk=entry.pk)
        assert saved.created_at == entry.created_at  # auto_now_add set on the object too
        assert saved.created_at is not None


def test_insert_rows_of_nothing_writes_nothing():
    with CaptureQueriesContext(connection) as ctx:
        insert_rows([])
    assert ctx.captured_queries == []


def test_insert_rows_keeps_the_databases_rules(review):
    # No statement of its own gets around the schema: an entry without a kind is refused.
    entry = ReviewEvent(review=review, kind=None)  # type: ignore[misc]
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows([entry])
    assert entry.pk is None


def test_update_row_writes_the_fields_given_and_nothing_else(review):
    # (Deciding an approval needs its log entry in the same transaction, a database guard:
    # these fields need none.)
    approval = pending(review)[0]
    later = timezone.now() + dt.timedelta(days=3)
    other = Approval.objects.get(pk=approval.pk)
    other.outcome = "hold"
    other.save(update_fields=["outcome"])
    approval.comment, approval.remind_at = "first", later
    approval.outcome = ""  # left alone: not among the fields written
    with CaptureQueriesContext(connection) as ctx:
        assert update_row(approval, ["comment", "remind_at"]) is True
    assert len(ctx.captured_queries) == 1
    saved = Approval.objects.get(pk=approval.pk)
    assert (saved.comment, saved.remind_at, saved.outcome) == ("first", later, "hold")
    # Compiled once for this shape, each call's own values bound.
    second = pending(review)[1]
    second.comment, second.remind_at = "second", None
    assert update_row(second, ["comment", "remind_at"]) is True
    assert Approval.objects.filter(pk=second.pk).values_list("comment", "remind_at").get() == (
        "second",
        None,
    )
    assert Approval.objects.get(pk=approval.pk).comment == "first"


def test_update_row_of_a_row_gone_says_so(review):
    approval = pending(review)[0]
    approval.pk = 2_000_000_000
    assert update_row(approval, ["comment"]) is False


def test_update_row_keeps_the_databases_rules(review):
    # approval_decision_recorded: an approved approval names who decided it.
    approval = pending(review)[0]
    approval.status = ApprovalStatus.APPROVED
    with pytest.raises(IntegrityError), transaction.atomic():
        update_row(approval, ["status"])


def test_update_row_refuses_a_model_with_a_save_of_its_own(review):
    # The review's save checks its state was not changed meanwhile (django-fsm-2's
    # ConcurrentTransitionMixin): skipping it would skip that check.
    review.decision_summary = "not written"
    with pytest.raises(TypeError, match="save"):
        update_row(review, ["decision_summary"])
    assert GateReview.objects.get(pk=review.pk).decision_summary == ""


def test_save_transitioned_writes_the_move_as_save_would(review):
    now = timezone.now()
    # A decided review needs its decision in the log by commit (a database guard).
    insert_rows([ReviewEvent(review=review, kind=EventKind.REVIEW_DECIDED)])
    ours = GateReview.objects.get(pk=review.pk)
    theirs = GateReview.objects.get(pk=review.pk)
    ours.approve(outcome="go", at=now, summary="Go: by the statement kept")
    with CaptureQueriesContext(connection) as ctx:
        save_transitioned(ours)
    assert len(ctx.captured_queries) == 1
    saved = GateReview.objects.get(pk=review.pk)
    assert (saved.state, saved.outcome, saved.decided_at, saved.decision_summary) == (
        "approved",
        "go",
        now,
        "Go: by the statement kept",
    )
    # The instance now holds its new state as read: saved again, it expects "approved".
    ours.decision_summary = "edited after"
    save_transitioned(ours)
    assert GateReview.objects.get(pk=review.pk).decision_summary == "edited after"
    # Another copy read while it was still submitted is refused, as django-fsm-2's save refuses.
    theirs.recycle(at=now, summary="Recycle: too late")
    with pytest.raises(ConcurrentTransition):
        save_transitioned(theirs)
    assert GateReview.objects.get(pk=review.pk).state == "approved"


def test_save_transitioned_of_a_row_gone_says_so(review):
    copy = GateReview.objects.get(pk=review.pk)
    copy.pk = 2_000_000_000
    with pytest.raises(GateReview.DoesNotExist):
        save_transitioned(copy)


def test_insert_rows_refuses_a_model_whose_key_it_would_not_write():
    from knox.models import AuthToken  # its key is the digest, set by the caller

    with pytest.raises(TypeError, match="auto id"):
        insert_rows([AuthToken(digest="x" * 128, token_key="y" * 15, user=UserFactory())])
