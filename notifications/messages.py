"""What a person reads about an event: title, body and the admin link to act on it.

Emitting apps may put ``title``, ``summary`` (or ``body``) and ``admin_url`` in the payload; the
defaults below cover the known event types from the fields they all share (``initiative``), and
any other type still gets a readable message from its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

DEFAULT_TITLES: dict[str, str] = {
    "review.submitted": "Approval requested: {initiative}",
    "approval.reminder": "Reminder: your approval is due for {initiative}",
    "approval.escalated": "Escalation: an approval is overdue for {initiative}",
    "review.decided": "Gate review decided for {initiative}",
    "initiative.stage_changed": "{initiative} moved from {from_stage} to {to_stage}",
    "initiative.created": "New initiative: {initiative}",
    "initiative.owner_assigned": "Business owner assigned for {initiative}",
    "initiative.stalled": "Stalled: {initiative} has been in {stage} too long",
    "milestone.overdue": "Overdue milestone: {milestone} ({initiative})",
    "milestone.escalated": "Escalation: milestone overdue: {milestone} ({initiative})",
    "milestone.done": "Milestone done: {milestone} ({initiative})",
    "milestone.waived": "Milestone waived: {milestone} ({initiative})",
    "webhook.endpoint_disabled": "Webhook endpoint disabled: {endpoint}",
}


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    link: str  # absolute URL, or "" when the event names no page to act on


def _label(value: Any, *keys: str) -> str:
    if isinstance(value, dict):
        parts = [str(value[k]) for k in keys if value.get(k)]
        return " ".join(parts) if parts else "?"
    return "?" if value in (None, "") else str(value)


def admin_link(payload: dict[str, Any]) -> str:
    """``SITE_URL`` + the payload's ``admin_url`` path.

    Only a site-relative path is accepted: an event must not be able to put an arbitrary
    external link into an email that looks like it came from us.
    """
    path = payload.get("admin_url")
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
        return ""
    return f"{settings.SITE_URL}{path}"


def render(event_type: str, payload: dict[str, Any]) -> Message:
    context = _Blank(
        initiative=_label(payload.get("initiative"), "key", "name"),
        milestone=_label(payload.get("milestone"), "title"),
        endpoint=_label(payload.get("endpoint"), "name"),
        from_stage=_label(payload.get("from_stage")),
        to_stage=_label(payload.get("to_stage")),
        stage=_label(payload.get("stage") or (payload.get("initiative") or {}).get("stage")),
    )
    explicit = payload.get("title")
    if isinstance(explicit, str) and explicit.strip():
        title = explicit.strip()
    elif event_type in DEFAULT_TITLES:
        title = DEFAULT_TITLES[event_type].format_map(context)
    else:
        title = event_type.replace(".", ": ", 1).replace("_", " ").capitalize()
    body = payload.get("summary") or payload.get("body") or ""
    return Message(title=title[:300], body=str(body), link=admin_link(payload))
