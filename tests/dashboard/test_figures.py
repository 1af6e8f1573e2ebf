"""The dashboard's figures against a portfolio whose right answers are worked out by hand
(tests/dashboard/portfolio.py has the table)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection

from dashboard.selectors import dashboard_build, flow_warm, portfolio_with_causes
from gates.business_days import add_business_days
from programs.models import Initiative
from programs.portfolio import (
    PortfolioFilters,
    _completed_stays,
    _median_days_in_stage,
    overdue_milestones_by_owner,
    portfolio_summary,
)
from programs.stages import ACTIVE_STAGES, Stage
from tests.dashboard.portfolio import build, days_ago
from tests.factories import MilestoneFactory, UserFactory

ALL = PortfolioFilters()


def _build(portfolio, filters=ALL):
    return dashboard_build(user=portfolio.pmo, filters=filters, now=portfolio.now)


def test_funnel_counts_every_stage_in_lifecycle_order(portfolio):
    funnel = _build(portfolio).funnel
    assert list(funnel)[:5] == [
        Stage.PROPOSED,
        Stage.PILOT,
        Stage.INTEGRATION,
        Stage.HARDENING,
        Stage.OPERATIONS,
    ]
    assert funnel == {
        "proposed": 2,
        "pilot": 1,
        "integration": 1,
        "hardening": 0,
        "operations": 1,
        "on_hold": 0,
        "retired": 0,
        "cancelled": 1,
    }


def test_business_unit_by_stage(portfolio):
    matrix = _build(portfolio).matrix
    assert list(matrix) == ["claims", "finance"]
    assert {s: n for s, n in matrix["claims"].items() if n} == {
        "proposed": 1,
        "integration": 1,
        "operations": 1,
    }
    assert {s: n for s, n in matrix["finance"].items() if n} == {
        "proposed": 1,
        "pilot": 1,
        "cancelled": 1,
    }


def test_conversion_pilot_to_operations_by_unit(portfolio):
    flow = _build(portfolio).flow
    claims, finance = flow.by_unit
    assert (claims.business_unit, claims.reached_pilot, claims.reached_operations) == (
        "claims",
        2,
        1,
    )
    assert claims.conversion == 0.5
    assert (finance.reached_pilot, finance.reached_operations, finance.conversion) == (2, 0, 0)
    assert (flow.overall.reached_pilot, flow.overall.reached_operations) == (4, 1)
    assert flow.overall.conversion == 0.25


def test_median_completed_time_in_each_stage_leaves_hold_out(portfolio):
    flow = _build(portfolio).flow
    claims, finance = flow.by_unit
    # C1 P10 Pi30 I20 H20; C2 P10 Pi(40 + 10 after 20 days on hold) = 50
    assert claims.median_days == {"proposed": 10, "pilot": 40, "integration": 20, "hardening": 20}
    assert claims.stays == {"proposed": 2, "pilot": 2, "integration": 1, "hardening": 1}
    # F2 P10 Pi10 (cancelled); F3 P5 (pilot still running: not a completed stay)
    assert finance.median_days == {
        "proposed": 7.5,
        "pilot": 10,
        "integration": None,
        "hardening": None,
    }
    assert flow.overall.median_days == {
        "proposed": 10,
        "pilot": 30,
        "integration": 20,
        "hardening": 20,
    }


def test_stalled_initiatives_with_their_computed_causes(portfolio):
    data = _build(portfolio)
    stalled = {row.key: row for row in data.stalled}
    assert list(stalled) == ["AI-C2", "AI-F1", "AI-C3"]  # furthest past its time first
    c2 = stalled["AI-C2"]
    assert c2.expected_max_days == pytest.approx(120)  # G2's expected time in integration
    assert c2.days_in_stage == pytest.approx(170)
    assert c2.days_past_expected == pytest.approx(50)
    assert c2.causes == [
        "no business owner",
        "no success metric with both a baseline and a target",
        "1 overdue milestone (oldest 5 days late)",
        "G3 criterion unmet: All milestones of the stage are done or waived "
        "(milestone 'Wire the claims API' of stage integration is still open)",
    ]
    f1 = stalled["AI-F1"]
    assert f1.days_past_expected == pytest.approx(20)
    assert f1.causes == [
        "G1 criterion unmet: Target workflow named "
        "(the target workflow (which business process changes) must be named)"
    ]
    c3 = stalled["AI-C3"]
    assert c3.days_past_expected == pytest.approx(10)
    assert len(c3.causes) == 2
    assert all(c.startswith("G1 approval overdue: ") for c in c3.causes)
    assert any("PMO (Priya)" in c for c in c3.causes)
    # Submitted 20 days ago, with five business days to decide: 11 to 13 days late, by the
    # weekday it was submitted on (a weekend submission starts the clock on Monday).
    due = add_business_days(days_ago(portfolio.now, 20), 5)
    expected = round((portfolio.now - due).total_seconds() / 86400)
    assert 11 <= expected <= 13
    late = [int(c.split(", ")[-1].split()[0]) for c in c3.causes]
    assert late == [expected, expected]


def test_not_stalled_are_not_listed_and_have_no_causes(portfolio):
    rows = {
        r.key: r for r in portfolio_with_causes(user=portfolio.pmo, filters=ALL, now=portfolio.now)
    }
    for key in ("AI-C1", "AI-F2", "AI-F3"):
        assert not rows[key].stalled
        assert rows[key].causes == []
    f3 = rows["AI-F3"]
    assert f3.days_in_stage == pytest.approx(25)
    assert f3.expected_max_days == pytest.approx(90)
    assert f3.budget_used == pytest.approx(25 / 90)
    assert f3.next_gate == "G2"
    assert f3.pilot_started_at == days_ago(portfolio.now, 25)
    c1 = rows["AI-C1"]
    assert c1.operations_reached_at == days_ago(portfolio.now, 20)
    assert c1.expected_max_days is None  # operations has no planned end


def test_overdue_milestones_grouped_by_owner(portfolio):
    groups = _build(portfolio).overdue_by_owner
    assert [(g.owner, [m.title for m, _ in g.milestones]) for g in groups] == [
        ("Omar", ["Wire the claims API"])
    ]
    assert groups[0].milestones[0][1] == pytest.approx(5)


@pytest.mark.parametrize(
    ("filters", "keys"),
    [
        (PortfolioFilters(business_unit="finance"), ["AI-F1", "AI-F2", "AI-F3"]),
        (PortfolioFilters(risk_tier="high"), ["AI-F3"]),
        (PortfolioFilters(stage="proposed"), ["AI-C3", "AI-F1"]),
        (PortfolioFilters(business_unit="claims", stage="integration"), ["AI-C2"]),
    ],
)
def test_filters_apply_to_every_panel(portfolio, filters, keys):
    data = _build(portfolio, filters)
    rows = portfolio_with_causes(user=portfolio.pmo, filters=filters, now=portfolio.now)
    assert [r.key for r in rows] == keys
    assert data.total == len(keys)
    assert sum(data.funnel.values()) == len(keys)
    assert {r.key for r in data.stalled} <= set(keys)
    assert {r.key for r in data.in_stage} <= set(keys)
    owners = {m.initiative.key for g in data.overdue_by_owner for m, _ in g.milestones}
    assert owners <= set(keys)


def test_filtered_conversion_counts_only_the_unit(portfolio):
    flow = _build(portfolio, PortfolioFilters(business_unit="finance")).flow
    assert [u.business_unit for u in flow.by_unit] == ["finance"]
    assert (flow.overall.reached_pilot, flow.overall.reached_operations) == (2, 0)


def test_stays_from_a_history_with_gaps_count_only_what_is_known(portfolio):
    now = portfolio.now
    # Imported history starting in integration: the integration stay's start is unknown.
    moves: list[tuple[str, str, dt.datetime]] = [
        (Stage.INTEGRATION, Stage.HARDENING, days_ago(now, 10))
    ]
    assert _completed_stays(days_ago(now, 100), moves) == []
    # Cancelled while on hold: the stay in pilot ends when the hold began.
    moves = [
        (Stage.PROPOSED, Stage.PILOT, days_ago(now, 50)),
        (Stage.PILOT, Stage.ON_HOLD, days_ago(now, 30)),
        (Stage.ON_HOLD, Stage.CANCELLED, days_ago(now, 10)),
    ]
    assert _completed_stays(days_ago(now, 60), moves) == [
        (Stage.PROPOSED, pytest.approx(10)),
        (Stage.PILOT, pytest.approx(20)),
    ]


def test_flow_in_sql_agrees_with_the_python_fold(portfolio):
    from programs.portfolio import (
        _stage_flow_python,
        _stage_flow_sql,
        initiatives_filtered,
    )

    p, i, h, o = Stage.PILOT, Stage.INTEGRATION, Stage.HARDENING, Stage.OPERATIONS
    hold, cancelled = Stage.ON_HOLD, Stage.CANCELLED
    now = portfolio.now
    unit = portfolio.c1.business_unit
    histories: list[list[tuple[str, str, float]]] = [
        [("proposed", p, 90), (p, hold, 80), (hold, p, 70), (p, hold, 60), (hold, p, 55)],
        [("proposed", p, 90), (p, hold, 80), (hold, cancelled, 70)],
        [("proposed", hold, 90), (hold, "proposed", 85), ("proposed", p, 60), (p, i, 50)],
        # Gaps in the history: stays with an unknown start are left out.
        [(i, h, 40), ("proposed", p, 35), (p, o, 30)],
        [("proposed", p, 90), (i, h, 40), (h, hold, 30), (hold, h, 20), (h, i, 15), (p, o, 10)],
        [("proposed", p, 90), (p, hold, 80), (hold, i, 70), (i, h, 65)],
    ]
    for n, moves in enumerate(histories):
        build(now, created=100 + n, moves=moves, key=f"AI-X{n}", business_unit=unit)
    for filters in (ALL, PortfolioFilters(business_unit="claims"), PortfolioFilters(stage="x")):
        scoped = initiatives_filtered(user=portfolio.pmo, filters=filters).order_by().values("pk")
        assert _stage_flow_sql(scoped) == _stage_flow_python(scoped)


def test_in_stage_lists_most_budget_used_first_as_the_rows_compute_it(portfolio):
    data = _build(portfolio)
    # C2 170/120 days, F1 80/60, C3 70/60, F3 25/90: ordered in the database by the same ratio.
    assert [r.key for r in data.in_stage] == ["AI-C2", "AI-F1", "AI-C3", "AI-F3"]
    rows = portfolio_with_causes(user=portfolio.pmo, filters=ALL, now=portfolio.now)
    by_python = sorted(
        (r for r in rows if r.stage in ACTIVE_STAGES),
        key=lambda r: (r.budget_used is None, -(r.budget_used or 0), r.key),
    )
    assert [r.key for r in data.in_stage] == [r.key for r in by_python]
    assert data.in_stage_total == 4


def test_overdue_groups_stop_at_the_limit_and_keep_their_counts(portfolio):
    now = portfolio.now
    ann = UserFactory(username="ann", first_name="Ann")
    bob = UserFactory(username="bob", first_name="Bob")
    for n, owner in ((3, ann), (3, bob)):
        for k in range(n):
            MilestoneFactory(
                initiative=portfolio.f3,
                owner=owner,
                title=f"{owner.username} {k}",
                due_at=days_ago(now, 10 + k),
            )
    groups, total = overdue_milestones_by_owner(Initiative.objects.all(), now=now, limit=4)
    assert total == 7
    # Most late work first, ties by name; each group oldest first; cut after four listed.
    assert [(g.owner, g.count, [m.title for m, _ in g.milestones]) for g in groups] == [
        ("Ann", 3, ["ann 2", "ann 1", "ann 0"]),
        ("Bob", 3, ["bob 2"]),
    ]
    assert groups[0].milestones[0][1] == pytest.approx(12)


def test_summary_medians_in_sql_agree_with_the_python_fold(portfolio, monkeypatch):
    summary = portfolio_summary(user=portfolio.pmo, now=portfolio.now)
    # Active now: C3 70 and F1 80 days in proposed, F3 25 in pilot, C2 170 in integration.
    assert summary["median_days_in_stage"] == {
        "proposed": 75.0,
        "pilot": 25.0,
        "integration": 170.0,
        "hardening": None,
    }
    monkeypatch.setattr(connection, "vendor", "sqlite")
    assert (
        _median_days_in_stage(Initiative.objects.all(), portfolio.now)
        == summary["median_days_in_stage"]
    )


def test_a_large_portfolios_flow_comes_from_the_cache_and_says_as_of_when(
    portfolio, settings, monkeypatch
):
    # A private cache: the shared one may hold another run's entries under the same SQL.
    monkeypatch.setattr("dashboard.selectors.cache", LocMemCache("flow-test", {}))
    settings.GATEKEEPER = {**settings.GATEKEEPER, "DASHBOARD_FLOW_CACHE_FROM": 3}
    first = _build(portfolio)
    assert not first.flow_cached
    # A new record changes the history, but a cached flow is served until it expires.
    build(portfolio.now, created=5, moves=[(Stage.PROPOSED, Stage.PILOT, 1)], key="AI-X1")
    second = _build(portfolio)
    assert second.flow_cached
    assert second.flow == first.flow
    assert second.flow_as_of == first.flow_as_of
    # Another scope (a filter) is its own entry.
    assert not _build(portfolio, PortfolioFilters(business_unit="finance")).flow_cached
    # Beat's warm-up recomputes the unfiltered view a PMO opens first.
    assert flow_warm() is True
    warmed = _build(portfolio)
    assert warmed.flow_cached
    assert warmed.flow.overall.reached_pilot == first.flow.overall.reached_pilot + 1


def test_a_small_portfolios_flow_is_computed_on_every_load(portfolio):
    assert _build(portfolio).flow_cached is False
    assert flow_warm() is False


def test_in_stage_rows_for_a_joined_scope(portfolio):
    # A business owner's scope joins milestones and says DISTINCT; the same ordering applies.
    from programs.portfolio import rows_by_budget_used
    from programs.selectors import initiatives_visible_to

    owner = UserFactory()
    Initiative.objects.filter(key__in=["AI-F1", "AI-F3"]).update(business_owner=owner)
    for k in range(2):
        MilestoneFactory(initiative=portfolio.f3, owner=owner, due_at=days_ago(portfolio.now, k))
    rows = rows_by_budget_used(initiatives_visible_to(owner), now=portfolio.now, limit=5)
    assert [r.key for r in rows] == ["AI-F1", "AI-F3"]
