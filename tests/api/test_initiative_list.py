"""The initiative list carries what a ticketing system or a PMO tool shows per row: the people,
the success metrics with where they stand, and the next open milestone."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from programs.models import ExternalReference, Initiative, MilestoneStatus, SuccessMetric
from programs.roles import PMO
from tests.factories import (
    InitiativeFactory,
    MilestoneFactory,
    SuccessMetricFactory,
    UserFactory,
)
from tests.sqlite import assert_passes_on_sqlite

pytestmark = pytest.mark.django_db


def test_each_row_has_its_metrics_and_next_open_milestone(client_for):
    now = timezone.now()
    owner = UserFactory(username="omar")
    a = InitiativeFactory(key="AI-A")
    InitiativeFactory(key="AI-B")
    SuccessMetricFactory(
        initiative=a,
        name="Handling time",
        unit="min",
        baseline=Decimal("30"),
        target=Decimal("20"),
        direction="lower",
        current_value=Decimal("18.5"),
        measured_at=now,
    )
    MilestoneFactory(
        initiative=a,
        title="Done long ago",
        due_at=now - dt.timedelta(days=9),
        status=MilestoneStatus.DONE,
        completed_at=now,
    )
    MilestoneFactory(initiative=a, title="Later", due_at=now + dt.timedelta(days=20))
    MilestoneFactory(initiative=a, title="Next", owner=owner, due_at=now - dt.timedelta(days=1))
    rows = {
        r["key"]: r
        for r in client_for(UserFactory(groups=[PMO])).get("/api/v1/initiatives/").json()["results"]
    }
    [metric] = rows["AI-A"]["metrics"]
    assert metric["name"] == "Handling time"
    assert (metric["baseline"], metric["target"], metric["current_value"]) == (
        "30.0000",
        "20.0000",
        "18.5000",
    )
    assert metric["on_target"] is True  # lower is better, and 18.5 <= 20
    nxt = rows["AI-A"]["next_milestone"]
    assert (nxt["title"], nxt["owner"], nxt["stage"]) == ("Next", "omar", "proposed")
    assert rows["AI-B"]["metrics"] == []
    assert rows["AI-B"]["next_milestone"] is None
    # The same shape on the detail.
    detail = client_for(UserFactory(groups=[PMO])).get("/api/v1/initiatives/AI-A/").json()
    assert detail["next_milestone"] == nxt
    assert detail["metrics"] == rows["AI-A"]["metrics"]


def _refs_and_metrics(initiative, measured):
    # Written out of order: the list's order is the read's, not the insertion's.
    for system, key, url in [
        ("SNOW", "INC-2", 'https://snow.example.com/INC-2?a=1&b="2"'),
        ("JIRA", "Z-1", ""),
        ("JIRA", "A-10", "https://jira.example.com/browse/A-10"),
    ]:
        ExternalReference.objects.create(initiative=initiative, system=system, key=key, url=url)
    SuccessMetric.objects.create(
        initiative=initiative,
        name="cost per claim",
        unit="EUR",
        baseline=Decimal("1234567.8901"),
        target=Decimal("0"),
        direction="lower",
        current_value=Decimal("-0.0001"),
        measured_at=measured.replace(microsecond=0),
    )
    SuccessMetric.objects.create(initiative=initiative, name="backlog", direction="lower")
    SuccessMetric.objects.create(
        initiative=initiative,
        name="adoption",
        unit="%",
        baseline=Decimal("0.1"),
        target=Decimal("60"),
        current_value=Decimal("60.0001"),
        measured_at=measured,
    )


EXPECTED_REFS = [
    {"system": "JIRA", "key": "A-10", "url": "https://jira.example.com/browse/A-10"},
    {"system": "JIRA", "key": "Z-1", "url": ""},
    {"system": "SNOW", "key": "INC-2", "url": 'https://snow.example.com/INC-2?a=1&b="2"'},
]


def _expected_metrics(initiative):
    ids = {m.name: m.pk for m in initiative.metrics.all()}
    return [
        {
            "id": ids["adoption"],
            "name": "adoption",
            "unit": "%",
            "baseline": "0.1000",
            "target": "60.0000",
            "direction": "higher",
            "current_value": "60.0001",
            "measured_at": "2026-03-04T05:06:07.120000Z",
            "on_target": True,
        },
        {
            "id": ids["backlog"],
            "name": "backlog",
            "unit": "",
            "baseline": None,
            "target": None,
            "direction": "lower",
            "current_value": None,
            "measured_at": None,
            "on_target": None,
        },
        {
            "id": ids["cost per claim"],
            "name": "cost per claim",
            "unit": "EUR",
            "baseline": "1234567.8901",
            "target": "0.0000",
            "direction": "lower",
            "current_value": "-0.0001",
            "measured_at": "2026-03-04T05:06:07Z",
            "on_target": True,
        },
    ]


MEASURED = dt.datetime(2026, 3, 4, 5, 6, 7, 120000, tzinfo=dt.UTC)


def test_each_rows_references_and_metrics_keep_their_order_and_values(client_for):
    a = InitiativeFactory(key="AI-A")
    InitiativeFactory(key="AI-B")
    _refs_and_metrics(a, MEASURED)
    api = client_for(UserFactory(groups=[PMO]))
    rows = {r["key"]: r for r in api.get("/api/v1/initiatives/").json()["results"]}
    assert rows["AI-A"]["external_refs"] == EXPECTED_REFS
    assert rows["AI-A"]["metrics"] == _expected_metrics(a)
    assert (rows["AI-B"]["external_refs"], rows["AI-B"]["metrics"]) == ([], [])
    # The detail is the list's row.
    assert api.get("/api/v1/initiatives/AI-A/").json() == rows["AI-A"]
    assert api.get("/api/v1/initiatives/AI-B/").json() == rows["AI-B"]


def test_a_scoped_list_carries_the_same_references_and_metrics(client_for):
    owner = UserFactory(username="olga")
    mine = InitiativeFactory(key="AI-MINE", business_owner=owner)
    InitiativeFactory(key="AI-OTHER")
    MilestoneFactory(initiative=mine, owner=owner)  # a second way in: the scope is DISTINCT
    _refs_and_metrics(mine, MEASURED)
    [row] = client_for(owner).get("/api/v1/initiatives/").json()["results"]
    assert row["key"] == "AI-MINE"
    assert row["external_refs"] == EXPECTED_REFS
    assert row["metrics"] == _expected_metrics(mine)


@pytest.mark.parametrize("ordering", ["key", "-key", "name", "-stage_entered_at"])
@pytest.mark.parametrize("pmo", [True, False], ids=["pmo", "scoped"])
def test_every_page_is_read_in_the_lists_order(client_for, ordering, pmo):
    """The page's keys are read in the scope's order and their rows by key (one statement kept
    for every page size): walking the pages gives each initiative once, in order, whatever the
    page size, for the PMO's plain scope and a person's DISTINCT one."""
    person = UserFactory(groups=[PMO] if pmo else [])
    names = ["delta", "alpha", "echo", "bravo", "charlie"]
    for n, name in enumerate(names):
        initiative = InitiativeFactory(key=f"AI-P{n}", name=name, business_owner=person)
        Initiative.objects.filter(pk=initiative.pk).update(
            stage_entered_at=timezone.now() - dt.timedelta(days=n)
        )
        # Two ways into a person's scope, so a join without DISTINCT would repeat the row.
        MilestoneFactory(initiative=initiative, owner=person)
    InitiativeFactory(key="AI-NOT-MINE")
    api = client_for(person)
    everything = api.get(f"/api/v1/initiatives/?ordering={ordering}&limit=50").json()
    expected = [r["key"] for r in everything["results"]]
    assert len(expected) == everything["count"] == (6 if pmo else 5)
    for size in (1, 2, 4):
        walked = []
        for offset in range(0, len(expected), size):
            page = api.get(f"/api/v1/initiatives/?ordering={ordering}&limit={size}&offset={offset}")
            walked += page.json()["results"]
        assert [r["key"] for r in walked] == expected
        assert walked == everything["results"]


@pytest.mark.slow
def test_the_list_reads_the_same_on_sqlite(tmp_path):
    """`make run`'s embedded database builds the lists with its own SQL (a JSON array over an
    ordered window): the tests above, run again on SQLite."""
    assert_passes_on_sqlite(__file__, tmp_path)


def _every_shape():
    """Initiatives covering each shape a list row's field takes."""
    people = [UserFactory(username=f"shape{i}") for i in range(3)]
    full = InitiativeFactory(
        key="AI-S1",
        summary='Two lines\nwith "quotes", ü and a \\ backslash',
        business_owner=people[0],
        sponsor=people[1],
        delivery_lead=people[2],
        risk_tier="high",
    )
    _refs_and_metrics(full, MEASURED)
    SuccessMetric.objects.create(
        initiative=full,
        name="widest",
        unit="EUR",
        baseline=Decimal("-99999999999.9999"),  # 15 digits, the widest a metric holds
        target=Decimal("99999999999.9999"),
        direction="higher",
        current_value=Decimal("12345678901.2345"),
        measured_at=MEASURED + dt.timedelta(microseconds=1),
    )
    SuccessMetric.objects.create(
        initiative=full,
        name="missed",
        baseline=Decimal("5"),
        target=Decimal("4.5"),
        direction="higher",
        current_value=Decimal("4.4999"),
        measured_at=MEASURED,
    )
    MilestoneFactory(initiative=full, owner=people[2], due_at=MEASURED)
    MilestoneFactory(
        initiative=full, owner=people[1], due_at=MEASURED + dt.timedelta(microseconds=5)
    )
    # Nobody named, no metrics, references or milestones, never stalled.
    bare = InitiativeFactory(key="AI-S2", business_owner=None, sponsor=None, summary="")
    Initiative.objects.filter(pk=bare.pk).update(stall_at=None)
    # Only closed milestones: no next one.
    closed = InitiativeFactory(key="AI-S3", business_owner=people[0])
    MilestoneFactory(initiative=closed, status=MilestoneStatus.DONE, completed_at=timezone.now())
    # On hold: held_from set.
    held = InitiativeFactory(key="AI-S4", business_owner=people[0])
    response = client_for_owner(people[0]).post(
        f"/api/v1/initiatives/{held.key}/transitions/",
        {"transition": "hold", "reason": "budget"},
        format="json",
    )
    assert response.status_code == 201, response.content
    return people


def client_for_owner(user):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user)
    return api


@pytest.mark.parametrize("zone", ["UTC", "America/St_Johns"])
def test_the_list_rows_are_what_the_initiative_serializer_gives(client_for, zone):
    """The list represents its page without InitiativeSerializer (api.serializers.
    initiative_list_rows); it must give what the serializer gives, byte for byte, in each
    shape: nulls, blanks, 15-digit and negative decimals, several metrics and references, no
    next milestone, on hold, another time zone than UTC."""
    from django.test import override_settings
    from rest_framework.renderers import JSONRenderer

    from api.serializers import InitiativeSerializer
    from api.views import InitiativeViewSet

    _every_shape()
    with override_settings(TIME_ZONE=zone):
        body = client_for(UserFactory(groups=[PMO])).get("/api/v1/initiatives/?limit=500")
        assert body.status_code == 200
        rows = body.json()["results"]
        full = InitiativeSerializer(
            InitiativeViewSet._shaped(Initiative.objects.order_by("key")), many=True
        ).data
    assert [r["key"] for r in rows] == ["AI-S1", "AI-S2", "AI-S3", "AI-S4"]
    assert rows == full
    assert list(rows[0]) == InitiativeSerializer.Meta.fields  # same fields, same order
    renderer = JSONRenderer()
    assert renderer.render(body.json()["results"]) == renderer.render(full)
    by_key = {r["key"]: r for r in rows}
    assert by_key["AI-S2"]["business_owner"] is None
    assert by_key["AI-S2"]["stall_at"] is None
    assert by_key["AI-S3"]["next_milestone"] is None
    assert by_key["AI-S4"]["held_from"] == "proposed"
    widest = next(m for m in by_key["AI-S1"]["metrics"] if m["name"] == "widest")
    assert (widest["baseline"], widest["target"]) == ("-99999999999.9999", "99999999999.9999")
    if zone != "UTC":
        assert not by_key["AI-S1"]["created_at"].endswith("Z")


def test_a_filtered_list_filters_and_an_unfiltered_one_does_not(client_for):
    """The filter backend skips the filter set when no parameter names a filter."""
    _every_shape()
    api = client_for(UserFactory(groups=[PMO]))
    everything = api.get("/api/v1/initiatives/?limit=10&ordering=-key").json()
    assert [r["key"] for r in everything["results"]] == ["AI-S4", "AI-S3", "AI-S2", "AI-S1"]
    assert everything["count"] == 4
    high = api.get("/api/v1/initiatives/?risk_tier=high").json()
    assert [r["key"] for r in high["results"]] == ["AI-S1"]
    held = api.get("/api/v1/initiatives/?stage=on_hold").json()
    assert [r["key"] for r in held["results"]] == ["AI-S4"]
    refused = api.get("/api/v1/initiatives/?stage=nowhere")
    assert refused.status_code == 400
    assert "stage" in refused.json()["errors"]


def test_an_initiative_read_without_the_annotations_has_the_same_representation():
    from api.serializers import InitiativeSerializer
    from api.views import InitiativeViewSet

    _every_shape()
    for key in ("AI-S1", "AI-S3"):
        plain = InitiativeSerializer(Initiative.objects.get(key=key)).data
        shaped = InitiativeSerializer(
            InitiativeViewSet._shaped(Initiative.objects.all()).get(key=key)
        ).data
        assert plain == shaped
    assert plain["next_milestone"] is None  # AI-S3: only closed milestones


def test_the_shared_subqueries_are_not_changed_by_the_querysets_using_them():
    """with_next_milestone and with_refs_and_metrics build their subqueries once per process:
    each use resolves a copy, so the SQL is the same as with subqueries built afresh, however
    (and however often) they were used before."""
    from django.db.models import OuterRef, Subquery

    from programs import selectors

    owner = UserFactory()

    def shapes():
        shaped = selectors.with_refs_and_metrics(
            selectors.with_next_milestone(selectors.initiatives_visible_to(owner))
        )
        return [
            str(shaped.query),
            str(Initiative.objects.filter(pk__in=shaped.values("pk")).query),
            str(
                Initiative.objects.annotate(
                    nxt=Subquery(shaped.filter(pk=OuterRef("pk")).values("key"))
                ).query
            ),
        ]

    used = [shapes() for _ in range(3)]
    selectors._next_milestone.cache_clear()
    selectors._refs_and_metrics.cache_clear()
    assert used == [shapes()] * 3


def test_the_next_milestones_owner_is_looked_up_not_joined():
    """The next milestone's subquery picks the milestone, then reads its owner's username by
    key. A join there let PostgreSQL hash-join every open milestone's owner against the whole
    user table once per row of the page (3 to 4 times the page's time at 20k initiatives)."""
    from programs import selectors

    sql = str(selectors.with_next_milestone(Initiative.objects.all()).query)
    assert "JOIN" not in sql.upper(), sql
    assert 'FROM "auth_user"' in sql  # its own subquery, by the picked milestone's owner_id
    owner = UserFactory(username="ines")
    initiative = InitiativeFactory()
    MilestoneFactory(initiative=initiative, owner=owner, due_at=timezone.now())
    [shaped] = selectors.with_next_milestone(Initiative.objects.filter(pk=initiative.pk))
    assert selectors.next_milestone_of(shaped)["owner"] == "ines"  # type: ignore[index]
