"""Who an event is for: the one place that turns people into outbox recipients.

A recipient is the ``{"user_id", "email", "role"}`` mapping ``notifications.outbox.emit`` reads
from a payload's ``recipients``. Every app's ``events.py`` builds its lists from these helpers,
so the shape, the PMO lookup and the de-duplication exist once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib.auth import get_user_model

from programs.roles import PMO

if TYPE_CHECKING:
    from programs.models import Initiative


class Recipient(TypedDict):
    user_id: int
    email: str
    role: str


# The people named on an initiative, in the order their role is listed on its page.
INITIATIVE_ROLES = ("business_owner", "sponsor", "delivery_lead")


def person(user: Any, role: str) -> Recipient | None:
    """``user`` as a recipient in ``role``; None for nobody (an unassigned role)."""
    if user is None:
        return None
    return {"user_id": user.pk, "email": user.email, "role": role}


def dedupe(people: Iterable[Recipient | None]) -> list[Recipient]:
    """Each user once, in their first role; the Nones of unassigned roles dropped."""
    seen: set[int] = set()
    result: list[Recipient] = []
    for entry in people:
        if entry is not None and entry["user_id"] not in seen:
            seen.add(entry["user_id"])
            result.append(entry)
    return result


def initiative_people(initiative: Initiative) -> list[Recipient]:
    """The business owner, sponsor and delivery lead of ``initiative``, each once."""
    return dedupe(person(getattr(initiative, role), role) for role in INITIATIVE_ROLES)


def initiative_users(initiative: Initiative) -> tuple[Any, ...]:
    """The user rows ``initiative_people`` named, as loaded with the initiative: builders hand
    them to the outbox with the event (``OutboxEvent.users``) so it does not read them again."""
    people = (getattr(initiative, role) for role in INITIATIVE_ROLES)
    return tuple(user for user in people if user is not None)


def pmo() -> list[Recipient]:
    """Every active member of the PMO group (escalations and stall alerts go to them)."""
    users = get_user_model()._default_manager.filter(groups__name=PMO, is_active=True)
    return [{"user_id": u.pk, "email": u.email, "role": "pmo"} for u in users.order_by("pk")]
