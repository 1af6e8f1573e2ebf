"""The dashboard page and its CSV: who may see them, what they show, what they cost."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboard.views import CSV_COLUMNS, csv_safe
from programs.roles import APPROVERS, BUSINESS_OWNERS, PMO
from programs.stages import Stage
from tests.dashboard.portfolio import build
from tests.factories import BusinessUnitFactory, MilestoneFactory, UserFactory

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/"
CSV = "/dashboard/portfolio.csv"


def _csv(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(body)))


# --- access ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [PAGE, CSV])
def test_anonymous_is_sent_to_the_admin_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login") + "?next=")


@pytest.mark.parametrize("url", [PAGE, CSV])
@pytest.mark.parametrize("groups", [[BUSINESS_OWNERS], [APPROVERS], []])
def test_people_outside_pmo_are_refused(client, url, groups):
    client.force_login(UserFactory(is_staff=True, groups=groups))
    assert client.get(url).status_code == 403


def test_superuser_sees_it(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get(PAGE).status_code == 200


# --- `/` ---------------------------------------------------------------------------------------


def test_root_sends_pmo_to_the_dashboard(client):
    client.force_login(UserFactory(is_staff=True, groups=[PMO]))
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, PAGE)


def test_root_sends_others_to_the_admin_index(client):
    client.force_login(UserFactory(is_staff=True, groups=[BUSINESS_OWNERS]))
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, reverse("admin:index"))


def test_root_sends_anonymous_to_the_admin_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:login") + "?next=/"


def test_admin_view_site_link_goes_to_root(client):
    client.force_login(UserFactory(is_staff=True, groups=[PMO]))
    assert 'href="/">View site</a>' in client.get(reverse("admin:index")).content.decode()


# --- the page ----------------------------------------------------------------------------------


def test_page_shows_every_panel_with_accessible_charts(client, portfolio):
    client.force_login(portfolio.pmo)
    response = client.get(PAGE)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Portfolio dashboard" in html
    for panel in ("funnel", "by-unit", "stalled", "overdue", "conversion", "in-stage"):
        assert f'id="{panel}"' in html
    assert html.count('role="img"') >= 3
    assert "<title" in html and "<desc" in html
    assert "<script" not in html.split('id="content-main"')[1]
    assert "Initiatives per stage, in lifecycle order" in html
    assert "Proposed: 2, Pilot: 1, Integration: 1, Hardening: 0, Operations: 1" in html
    assert "claims: 50% (1 of 2)" in html
    assert "no business owner" in html
    assert "G1 approval overdue" in html
    assert "Omar (1)" in html
    # The CSV link carries the filters.
    assert f'href="{CSV}"' in html


def test_page_filters_by_business_unit(client, portfolio):
    client.force_login(portfolio.pmo)
    html = client.get(PAGE, {"unit": "finance"}).content.decode()
    assert "AI-F1" in html
    assert "AI-C2" not in html
    assert f'href="{CSV}?unit=finance"' in html


def test_unknown_filter_value_is_reported_not_applied(client, portfolio):
    client.force_login(portfolio.pmo)
    response = client.get(PAGE, {"unit": "nope"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert "AI-C2" in response.content.decode()


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_has_one_row_per_initiative_with_deck_columns(client, portfolio):
    client.force_login(portfolio.pmo)
    response = client.get(CSV)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="portfolio-')
    assert disposition.endswith('.csv"')
    rows = _csv(response)
    assert list(rows[0]) == CSV_COLUMNS
    by_key = {r["Key"]: r for r in rows}
    assert list(by_key) == ["AI-C1", "AI-C2", "AI-C3", "AI-F1", "AI-F2", "AI-F3"]
    c2 = by_key["AI-C2"]
    assert c2["Business unit"] == "claims"
    assert c2["Stage"] == "Integration"
    assert c2["Days in stage"] == "170"
    assert c2["Expected max days"] == "120"
    assert c2["Stalled"] == "yes"
    assert c2["Stall causes"].split("; ")[:3] == [
        "no business owner",
        "no success metric with both a baseline and a target",
        "1 overdue milestone (oldest 5 days late)",
    ]
    assert c2["Business owner"] == ""
    assert c2["Next gate"] == "G3"
    assert (c2["Open milestones"], c2["Overdue milestones"]) == ("1", "1")
    assert c2["Pilot started"] == portfolio.c2.transitions.first().created_at.date().isoformat()
    assert c2["Operations reached"] == ""
    c1 = by_key["AI-C1"]
    assert (c1["Stage"], c1["Stalled"], c1["Expected max days"]) == ("Operations", "no", "")
    assert c1["Operations reached"] != ""
    assert c1["Last transition"] == c1["Operations reached"]
    f3 = by_key["AI-F3"]
    assert (f3["Risk tier"], f3["Health"], f3["Days in stage"], f3["Next gate"]) == (
        "high",
        "green",
        "25",
        "G2",
    )
    # A name that is a formula is written as text.
    assert by_key["AI-F2"]["Name"] == '\'=HYPERLINK("http://evil")'


def test_csv_honours_the_filters_and_names_them(client, portfolio):
    client.force_login(portfolio.pmo)
    response = client.get(CSV, {"unit": "finance", "stage": "pilot"})
    assert [r["Key"] for r in _csv(response)] == ["AI-F3"]
    assert "-finance-pilot.csv" in response["Content-Disposition"]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("Claims triage", "Claims triage"),
        (12, 12),
    ],
)
def test_csv_cells_are_escaped_against_formula_injection(value, written):
    assert csv_safe(value) == written


# --- cost: the same queries for 5 initiatives as for 60 -----------------------------------------


def _many(n: int, now) -> None:
    units = [BusinessUnitFactory(code=f"unit{k}") for k in range(3)]
    stages = [
        [],
        [("proposed", Stage.PILOT, 200)],
        [("proposed", Stage.PILOT, 300), (Stage.PILOT, Stage.INTEGRATION, 250)],
        [("proposed", Stage.PILOT, 300), (Stage.PILOT, Stage.ON_HOLD, 100)],
    ]
    owner = UserFactory(username="milestone-owner")
    for k in range(n):
        initiative = build(
            now,
            created=400,
            moves=stages[k % len(stages)],
            business_unit=units[k % 3],
            business_owner=None if k % 5 == 0 else UserFactory(),
            delivery_lead=UserFactory(),
        )
        MilestoneFactory(initiative=initiative, owner=owner, due_at=now.replace(year=now.year - 1))


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the panels are read together on PostgreSQL; SQLite (make run) reads one per query",
)
@pytest.mark.parametrize("cached", [False, True], ids=["flow-computed", "flow-cached"])
def test_page_costs_six_queries_whatever_the_portfolio(
    client, cached, settings, monkeypatch, django_assert_max_num_queries
):
    from django.core.cache.backends.locmem import LocMemCache
    from django.utils import timezone

    from dashboard.selectors import flow_warm

    # A private cache: the shared one may hold another run's entries under the same SQL.
    monkeypatch.setattr("dashboard.selectors.cache", LocMemCache("budget-test", {}))
    settings.GATEKEEPER = {
        **settings.GATEKEEPER,
        "DASHBOARD_FLOW_CACHE_FROM": 0 if cached else 10**9,
    }
    pmo = UserFactory(is_staff=True, groups=[PMO])
    client.force_login(pmo)
    counts = []
    for n in (5, 55):  # 5, then 60 in all
        _many(n, timezone.now())
        if cached:
            flow_warm()
        # Session and user (2), the user's groups for the access check (1; the PMO scope reuses
        # them), the panels with the units (1), the overdue milestones listed and the stalled
        # rows' gate causes (1), and the flow when it is not served from the cache (1).
        with django_assert_max_num_queries(6), CaptureQueriesContext(connection) as queries:
            response = client.get(PAGE)
            assert response.status_code == 200
            assert response.context["d"].flow_cached is cached
            assert response.context["d"].stalled  # the gate causes are read too
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert counts[0] == (5 if cached else 6)


def test_csv_query_count_does_not_grow_with_the_portfolio(client, django_assert_max_num_queries):
    from django.utils import timezone

    pmo = UserFactory(is_staff=True, groups=[PMO])
    client.force_login(pmo)
    counts = []
    for n in (5, 55):  # 5, then 60 in all
        _many(n, timezone.now())
        # Session, user and groups (3), the filter form's units (1), the rows (1), and per chunk
        # of rows the stalled ones' gate causes (7).
        with django_assert_max_num_queries(12), CaptureQueriesContext(connection) as queries:
            assert len(_csv(client.get(CSV))) == 5 + (55 if n == 55 else 0)
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_long_lists_show_the_first_few_and_point_to_the_csv(client, portfolio, monkeypatch):
    monkeypatch.setattr("dashboard.selectors.SHOWN", 2)
    client.force_login(portfolio.pmo)
    html = client.get(PAGE).content.decode()
    assert "Stalled initiatives (3)" in html
    assert html.count('class="stalled-row"') == 2
    assert "Showing 2 of 3 stalled initiatives" in html
    assert "Showing 2 of 4 initiatives in an active stage, most of their budget used first" in html
    assert "Omar (1)" in html
    assert "overdue milestones —" not in html  # one overdue milestone: all of it is shown
    assert len(_csv(client.get(CSV))) == 6
