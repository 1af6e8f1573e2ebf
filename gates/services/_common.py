"""What every gates service shares: the review lock, refusals, and the review's event log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec

from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from gatekeeper.compiled import CompiledRead, Param
from gatekeeper.db import insert_rows
from gatekeeper.errors import PermissionDenied, ValidationFailed
from gatekeeper.types import User
from gates.models import Approval, GateReview, ReviewEvent
from programs.models import Initiative

P = ParamSpec("P")


@dataclass
class Errors:
    """Collects every invalid field, so one refusal lists them all."""

    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key: str, message: str) -> None:
        self.errors.setdefault(key, []).append(message)

    def raise_if_any(self, detail: str) -> None:
        if self.errors:
            raise ValidationFailed(detail, errors=self.errors)


def require_actor(actor: User | None, what: str) -> User:
    if actor is None or not getattr(actor, "is_authenticated", False):
        raise PermissionDenied(f"{what} needs a signed-in person")
    return actor


def require_perm(actor: User | None, perm: str, obj: Any) -> None:
    if actor is None:
        return  # the system itself (a migration, a sweep)
    if not actor.has_perm(perm, obj):
        raise PermissionDenied(f"{actor} may not do this ({perm}) on {obj}")


def groups_of(user: User) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def _initiative_of_review_lock() -> QuerySet[Initiative, tuple[Any, ...]]:
    # The lock alone, found through the review (a review never changes initiative). Nothing is
    # joined to it: a lock that waited re-checks only the locked row, so people joined in the
    # same statement could be those of before the change it waited for.
    lock = (
        Initiative.objects.select_for_update(of=("self",))
        .filter(gate_reviews__pk=Param("review_id", GateReview._meta.pk))  # type: ignore[arg-type]
        .order_by()
    )
    columns = ["pk"]
    if connection.vendor == "postgresql":
        # For the rest of this transaction, join tables in the order each statement names them.
        # The read below joins nine tables from one review found by its key, in an order that
        # is already the best one, and PostgreSQL spent about 1.2 ms searching join orders to
        # plan it, against 0.3 ms with the search off (EXPLAIN ANALYZE); what a review write
        # reads after it are key lookups joining a table or two. Set by the lock's own
        # statement, so it costs no round trip.
        lock = lock.annotate(
            plan_as_written=RawSQL("set_config('join_collapse_limit', '1', true)", ())
        )
        columns.append("plan_as_written")
    return lock.values_list(*columns)


def _review_lock() -> QuerySet[GateReview]:
    # A list, not get(): get() adds LIMIT 21, and with a LIMIT PostgreSQL plans these nine
    # joined tables for a partial fetch, which took it several times longer (about 6 ms against
    # 2) than running the statement.
    return (
        GateReview.objects.select_for_update(of=("self",))
        .select_related(
            "initiative",
            "initiative__business_unit",
            "initiative__business_owner",
            "initiative__sponsor",
            "initiative__delivery_lead",
            "gate",
            "template",
            "submitted_by",
        )
        .filter(pk=Param("review_id", GateReview._meta.pk))  # type: ignore[arg-type]
        .order_by()
    )


# Compiled once per connection: building and compiling these cost more CPU than running them.
_LOCK_INITIATIVE_OF_REVIEW = CompiledRead(Initiative, _initiative_of_review_lock)
_LOCK_REVIEW = CompiledRead(GateReview, _review_lock)


def lock_review(review_id: int) -> GateReview:
    """Lock the review's initiative, then the review.

    One lock order for every write that touches both rows: programs' lifecycle moves lock the
    initiative first and then (through the stage listener) withdraw its open reviews, so a gates
    write that took the review first and the initiative second (a deciding approval moving the
    initiative) could deadlock against a hold or cancel. Locking the initiative here also keeps
    its owner and risk tier still while a submit resolves approvers from them. The review's
    ``initiative`` is that locked instance: a decision hands it to programs' move, which then
    does not lock it again.
    """
    if not _LOCK_INITIATIVE_OF_REVIEW(review_id=review_id):
        raise GateReview.DoesNotExist(f"no gate review #{review_id}")
    # Read after the lock, so as the change we may have waited for left it; with the people
    # every event about it names, so nothing later reads them again.
    reviews = _LOCK_REVIEW(review_id=review_id)
    if not reviews:
        raise GateReview.DoesNotExist(f"no gate review #{review_id}")
    return reviews[0]


def review_entry(
    review: GateReview,
    kind: str,
    actor: User | None,
    *,
    approval: Approval | None = None,
    on_behalf_of: User | None = None,
    data: dict[str, Any] | None = None,
) -> ReviewEvent:
    """An entry of the review's own history (who did what, and for whom), not yet written:
    ``review_log`` writes one, ``review_log_all`` several steps of one transaction at once."""
    return ReviewEvent(
        review=review,
        kind=kind,
        actor=actor,
        approval=approval,
        on_behalf_of=on_behalf_of,
        data=data or {},
    )


def _written(entry: Callable[P, ReviewEvent]) -> Callable[P, ReviewEvent]:
    def write(*args: P.args, **kwargs: P.kwargs) -> ReviewEvent:
        made = entry(*args, **kwargs)
        insert_rows([made])
        return made

    return write


# Append one entry to the review's history now: review_entry's arguments, the entry written.
review_log = _written(review_entry)


def review_log_all(entries: list[ReviewEvent]) -> None:
    """Append ``entries`` to their reviews' history in one statement, in the order given (their
    ids follow it, and the log is read in id order within one instant)."""
    insert_rows(entries)
