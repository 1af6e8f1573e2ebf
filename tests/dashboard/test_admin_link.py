"""The admin home leads the PMO to the dashboard; others don't see the link."""

from __future__ import annotations

import pytest

from programs.roles import BUSINESS_OWNERS, PMO
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_pmo_home_links_the_dashboard(client):
    client.force_login(UserFactory(is_staff=True, groups=[PMO]))
    page = client.get("/admin/").content.decode()
    assert 'href="/dashboard/"' in page


def test_business_owner_home_has_no_dashboard_link(client):
    client.force_login(UserFactory(is_staff=True, groups=[BUSINESS_OWNERS]))
    page = client.get("/admin/").content.decode()
    assert 'href="/dashboard/"' not in page
