"""Types shared by every app (a kernel module, below every app in the layering)."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User as User

# The project runs on Django's default user model (no AUTH_USER_MODEL): services take this type
# for actors and people. ``None`` where a service takes ``User | None`` means the system itself (a
# sweep, or a decided review moving its initiative), never an anonymous caller.
__all__ = ["User", "signed_in_user"]


def signed_in_user(request: Any) -> User:
    """The person behind a request that authentication already let through (the admin's staff
    check, the API's IsAuthenticated), typed as the user the services take."""
    user = request.user
    if not getattr(user, "is_authenticated", False):
        raise PermissionError("signed_in_user() needs a request that passed authentication")
    return cast(User, user)
