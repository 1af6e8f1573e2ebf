"""Template tags for the admin home: what waits for the signed-in user's decision."""

from __future__ import annotations

from typing import Any

from django import template

from gates import selectors

register = template.Library()


@register.inclusion_tag("gates/admin/inbox_box.html", takes_context=True)
def approvals_waiting(context: dict[str, Any]) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"show": False}
    summary = selectors.approvals_inbox_summary(user=user)
    return {"show": True, "waiting": summary.waiting, "overdue": summary.overdue}
