from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.gates.conftest import Panel, initiative, panel  # noqa: F401  (shared fixtures)


@pytest.fixture
def client_for():
    """An API client authenticated as ``user`` with a real knox token (hashed, expiring)."""
    from knox.models import AuthToken

    def make(user):
        _, token = AuthToken.objects.create(user=user)
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return api

    return make


__all__ = ["Panel"]
