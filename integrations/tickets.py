"""What a ticketing system's webhook body says, in one shape: pure parsing, no I/O.

Jira Cloud admin webhooks (``jira:issue_updated`` / ``jira:issue_deleted``) and the ServiceNow
business-rule message documented in docs/integrate-jira.md both become a ``TicketEvent``; a body
that says nothing we act on becomes an ``Unsupported`` with the reason, recorded as "ignored".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum
from typing import Any

from integrations.models import MAX_EVENT_TS, IntegrationKind, TicketState

_KEY_MAX_LENGTH = TicketState._meta.get_field("issue_key").max_length or 0


class TicketChange(Enum):
    DONE = "done"
    OPEN = "open"
    DELETED = "deleted"


@dataclass(frozen=True)
class TicketEvent:
    key: str
    change: TicketChange
    timestamp_ms: int

    def __post_init__(self) -> None:
        # Kept in TicketState: a key or a time that table cannot hold is no event we act on.
        if not 0 <= self.timestamp_ms <= MAX_EVENT_TS:
            raise Unsupported(f"timestamp {self.timestamp_ms} is not a time (milliseconds)")
        if len(self.key) > _KEY_MAX_LENGTH or not self.key.isprintable():
            raise Unsupported(f"{self.key[:40]!r}… is not a ticket key")


class Unsupported(Exception):
    """The body is valid JSON but not an event we act on; the message says why."""


JIRA_EVENTS = ("jira:issue_updated", "jira:issue_deleted")
# Jira's status categories: "new" (To Do), "indeterminate" (In Progress), "done".
JIRA_OPEN_CATEGORIES = ("new", "indeterminate")
SERVICENOW_TABLES = ("incident", "change_request", "sc_task")


def _get(body: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(body, dict):
            return None
        body = body.get(name)
    return body


def parse_jira(body: dict[str, Any]) -> TicketEvent:
    event = body.get("webhookEvent")
    if event not in JIRA_EVENTS:
        raise Unsupported(f"webhookEvent {event!r} is not one of {', '.join(JIRA_EVENTS)}")
    key = _get(body, "issue", "key")
    if not isinstance(key, str) or not key.strip():
        raise Unsupported("the body has no issue.key")
    timestamp = body.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise Unsupported("the body has no numeric timestamp (milliseconds)")
    if event == "jira:issue_deleted":
        return TicketEvent(key.strip(), TicketChange.DELETED, timestamp)
    category = _get(body, "issue", "fields", "status", "statusCategory", "key")
    if category == "done":
        change = TicketChange.DONE
    elif category in JIRA_OPEN_CATEGORIES:
        change = TicketChange.OPEN
    else:
        raise Unsupported(f"issue.fields.status.statusCategory.key {category!r} is not known")
    return TicketEvent(key.strip(), change, timestamp)


def servicenow_timestamp(value: Any) -> int:
    """``updated_on`` (ISO 8601 in UTC, e.g. 2026-11-20T10:00:00Z) as epoch milliseconds."""
    if not isinstance(value, str):
        raise ValueError("updated_on must be an ISO 8601 string")
    parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)  # ServiceNow's glide date-times are UTC
    return int(parsed.timestamp() * 1000)


def parse_servicenow(body: dict[str, Any]) -> TicketEvent:
    table = body.get("table")
    if table not in SERVICENOW_TABLES:
        raise Unsupported(f"table {table!r} is not one of {', '.join(SERVICENOW_TABLES)}")
    number = body.get("number")
    if not isinstance(number, str) or not number.strip():
        raise Unsupported("the body has no number")
    try:
        timestamp = servicenow_timestamp(body.get("updated_on"))
    except ValueError as exc:
        raise Unsupported(f"updated_on: {exc}") from None
    category = body.get("state_category")
    if category == "closed":
        change = TicketChange.DONE
    elif category == "open":
        change = TicketChange.OPEN
    else:
        raise Unsupported(f"state_category {category!r} is not 'open' or 'closed'")
    return TicketEvent(number.strip(), change, timestamp)


def parse(kind: str, body: Any) -> TicketEvent:
    if not isinstance(body, dict):
        raise Unsupported("the body is not a JSON object")
    if kind == IntegrationKind.JIRA:
        return parse_jira(body)
    return parse_servicenow(body)
