"""What a person reads about an event: title, body and the admin link to act on it.

The emitting app's ``events.py`` builder writes ``title``, ``summary`` (or ``body``) and
``admin_url`` into the payload, so one e-mail's wording lives in one place, next to its domain.
An event without a title (a type added without a builder) still reads as its type's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    link: str  # absolute URL, or "" when the event names no page to act on


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
    explicit = payload.get("title")
    if isinstance(explicit, str) and explicit.strip():
        title = explicit.strip()
    else:
        title = event_type.replace(".", ": ", 1).replace("_", " ").capitalize()
    body = payload.get("summary") or payload.get("body") or ""
    return Message(title=title[:300], body=str(body), link=admin_link(payload))
