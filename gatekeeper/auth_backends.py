"""Admin module visibility for rules-based permissions.

Django's admin shows an app only if ``user.has_module_perms(app)``, which the rules backend does
not answer and the model backend answers from database permissions we don't hand out (access is
decided per object by ``rules``). Staff see Gatekeeper's apps; each model's own view permission,
evaluated by ``rules``, still decides which of its pages they get and what rows they see.
"""

from __future__ import annotations

from typing import Any

GATEKEEPER_APPS = frozenset({"programs", "gates", "notifications"})


class GatekeeperModuleBackend:
    def authenticate(self, request: Any, **credentials: Any) -> None:
        return None  # grants module visibility only; never logs anyone in

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return bool(user_obj.is_active and user_obj.is_staff and app_label in GATEKEEPER_APPS)

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return False
