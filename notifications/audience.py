"""Whose initiatives a webhook endpoint's owner may see: the port programs answers.

An endpoint is sent the events it subscribes to, and an event about an initiative tells its
receiver about that initiative. So an endpoint owned by someone who sees only part of the
portfolio (an integration account scoped to its business units, say) is sent only the events
about initiatives its owner may see through the API; the PMO's and an admin's endpoints, and
those with no owner (registered in the admin), are sent every event they subscribe to.

notifications may not import programs (DESIGN.md §2): programs registers the answer in
``ProgramsConfig.ready()``. Unregistered, every owner sees everything, which is only right where
no event is about an initiative.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any, Protocol

from django.db.models import Q


class AudiencePort(Protocol):
    def sees_everything(self, user: str) -> Q:
        """A condition on a model with the relation ``user`` to a user: that user sees every
        initiative (read in the same statement as the endpoints)."""
        ...

    def visible(self, user_id: int, initiative_ids: Set[int]) -> set[int]:
        """Of ``initiative_ids``, those the user ``user_id`` may see now."""
        ...


class _Everyone:
    def sees_everything(self, user: str) -> Q:
        return Q(pk__isnull=False)

    def visible(self, user_id: int, initiative_ids: Set[int]) -> set[int]:
        return set(initiative_ids)


_port: AudiencePort = _Everyone()


def register(port: AudiencePort) -> None:
    global _port
    _port = port


def get_port() -> AudiencePort:
    return _port


def initiative_of(payload: Any) -> int | None:
    """The id of the initiative an event's payload is about, if any."""
    initiative = payload.get("initiative") if isinstance(payload, dict) else None
    found = initiative.get("id") if isinstance(initiative, dict) else None
    return found if isinstance(found, int) and not isinstance(found, bool) else None
