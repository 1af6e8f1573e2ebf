"""An initiative's external references and success metrics read with the initiative itself
(programs.selectors.with_refs_and_metrics): the same instances, in the same order, as reading
the relations, and no query to get them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from programs.models import ExternalReference, Initiative, SuccessMetric
from programs.selectors import external_refs_of, metrics_of, with_refs_and_metrics
from tests.factories import InitiativeFactory, SuccessMetricFactory

pytestmark = pytest.mark.django_db

MEASURED = dt.datetime(2026, 3, 4, 5, 6, 7, 120000, tzinfo=dt.UTC)


def _metric_values(m: SuccessMetric) -> tuple:
    return (
        m.pk,
        m.initiative_id,
        m.name,
        m.unit,
        m.baseline,
        m.target,
        m.direction,
        m.current_value,
        m.measured_at,
    )


@pytest.fixture
def initiative() -> Initiative:
    initiative = InitiativeFactory()
    for name, value in [("latency", Decimal("-99999999999.9999")), ("adoption", None)]:
        SuccessMetricFactory(
            initiative=initiative,
            name=name,
            current_value=value,
            measured_at=MEASURED if value is not None else None,
        )
    for system, key in [("SNOW", "INC-1"), ("JIRA", "B-2"), ("JIRA", "A-3")]:
        ExternalReference.objects.create(initiative=initiative, system=system, key=key)
    return initiative


def test_the_lists_read_with_the_initiative_are_its_rows_in_order(
    initiative, django_assert_num_queries
):
    listed = with_refs_and_metrics(Initiative.objects.filter(pk=initiative.pk)).get()
    with django_assert_num_queries(0):
        metrics = metrics_of(listed)
        refs = external_refs_of(listed)
        assert all(m.initiative is listed for m in metrics)
    stored = SuccessMetric.objects.filter(initiative=initiative).order_by("name", "id")
    assert [_metric_values(m) for m in metrics] == [_metric_values(m) for m in stored]
    assert [m.name for m in metrics] == ["adoption", "latency"]
    # Decimals exactly, never through a float; an aware datetime, as the ORM reads it.
    assert metrics[1].current_value == Decimal("-99999999999.9999")
    assert metrics[1].measured_at == MEASURED
    assert [(r.system, r.key) for r in refs] == [
        ("JIRA", "A-3"),
        ("JIRA", "B-2"),
        ("SNOW", "INC-1"),
    ]
    assert {r.pk for r in refs} == set(initiative.external_refs.values_list("pk", flat=True))
    # Instances as a query builds them: saved rows, not new ones.
    assert not metrics[0]._state.adding and metrics[0]._state.db == "default"


def test_an_initiative_without_lists_reads_two_empty_ones(django_assert_num_queries):
    bare = InitiativeFactory()
    listed = with_refs_and_metrics(Initiative.objects.filter(pk=bare.pk)).get()
    with django_assert_num_queries(0):
        assert (metrics_of(listed), external_refs_of(listed)) == ([], [])


def test_an_initiative_read_without_them_reads_its_lists_in_the_same_order(
    initiative, django_assert_num_queries
):
    plain = Initiative.objects.get(pk=initiative.pk)
    listed = with_refs_and_metrics(Initiative.objects.filter(pk=initiative.pk)).get()
    with django_assert_num_queries(2):
        metrics, refs = metrics_of(plain), external_refs_of(plain)
    assert [_metric_values(m) for m in metrics] == [_metric_values(m) for m in metrics_of(listed)]
    assert [r.pk for r in refs] == [r.pk for r in external_refs_of(listed)]
