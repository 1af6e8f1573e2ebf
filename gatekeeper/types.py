"""Types shared by every app (a kernel module, below every app in the layering)."""

from __future__ import annotations

from django.contrib.auth.models import User as User

# The project runs on Django's default user model (no AUTH_USER_MODEL): services take this type
# for actors and people. ``None`` where a service takes ``User | None`` means the system itself (a
# sweep, or a decided review moving its initiative), never an anonymous caller.
__all__ = ["User"]
