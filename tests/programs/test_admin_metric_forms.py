"""No silent data loss on the metric forms: what the admin sends exactly as typed (the admin form
is ``novalidate``) either saves or comes back with the reason on its field, changing nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from notifications.models import Event
from programs.models import Initiative, MetricReading, SuccessMetric
from programs.roles import PMO
from programs.stages import Stage
from tests.factories import InitiativeFactory, SuccessMetricFactory, UserFactory
from tests.unguarded import unguarded

pytestmark = pytest.mark.django_db

BAD_NUMBERS = {
    "text": "abc",
    "comma decimal": "1,5",
    "too many digits": "1" + "0" * 20,
    "above 100 percent": "150",
    "below 0 percent": "-1",
    "empty": "",
}


@pytest.fixture
def owner_client(client):
    owner = UserFactory(username="carla", is_staff=True, groups=["business-owners"])
    initiative = InitiativeFactory(business_owner=owner)
    client.force_login(owner)
    return client, initiative


def _post_metric(client, initiative, metric, **row):
    data = {
        "name": initiative.name,
        "summary": initiative.summary,
        "sponsor": initiative.sponsor_id or "",
        "delivery_lead": "",
        "target_workflow": initiative.target_workflow,
        "health": initiative.health,
        "metrics-TOTAL_FORMS": "1",
        "metrics-INITIAL_FORMS": row.pop("INITIAL_FORMS", "1"),
        "metrics-0-id": metric.pk or "",
        "metrics-0-initiative": initiative.pk,
        "metrics-0-name": metric.name,
        "metrics-0-unit": metric.unit,
        "metrics-0-direction": metric.direction,
        "metrics-0-baseline": str(metric.baseline or ""),
        "metrics-0-target": str(metric.target or ""),
        **{k: row.pop(k) for k in ("business_unit", "risk_tier", "business_owner") if k in row},
        **{f"metrics-0-{k}": v for k, v in row.items()},
        **{f"{p}-TOTAL_FORMS": "0" for p in ("milestones", "transitions")},
        **{f"{p}-INITIAL_FORMS": "0" for p in ("milestones", "transitions")},
    }
    return client.post(f"/admin/programs/initiative/{initiative.pk}/change/", data)


def _row_errors(response):
    metrics = next(
        f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "metrics"
    )
    return metrics.formset.forms[0].errors


@pytest.mark.parametrize("field", ["baseline", "target"])
@pytest.mark.parametrize("typed", BAD_NUMBERS.values(), ids=BAD_NUMBERS.keys())
def test_a_bad_number_in_a_metric_gives_a_field_error_and_changes_nothing(
    owner_client, field, typed
):
    client, initiative = owner_client
    metric = SuccessMetricFactory(initiative=initiative, unit="%", baseline=40, target=60)
    response = _post_metric(client, initiative, metric, **{field: typed})
    assert response.status_code == 200
    assert field in _row_errors(response)
    assert list(_row_errors(response)) == [field]
    metric.refresh_from_db()
    assert (metric.baseline, metric.target) == (40, 60)
    assert not Event.objects.exists()


def test_out_of_range_is_judged_by_the_unit(owner_client):
    client, initiative = owner_client
    metric = SuccessMetricFactory(initiative=initiative, unit="minutes", baseline=40, target=60)
    response = _post_metric(client, initiative, metric, target="150")
    assert response.status_code == 302
    assert SuccessMetric.objects.get(pk=metric.pk).target == 150


def test_clearing_a_baseline_takes_the_explicit_checkbox(owner_client):
    client, initiative = owner_client
    metric = SuccessMetricFactory(initiative=initiative, baseline=40, target=60)
    response = _post_metric(client, initiative, metric, baseline="40", clear_baseline="on")
    assert response.status_code == 302
    metric.refresh_from_db()
    assert (metric.baseline, metric.target) == (None, 60)


def test_after_g1_clearing_a_target_is_refused_unless_pmo(owner_client):
    client, initiative = owner_client
    metric = SuccessMetricFactory(initiative=initiative, baseline=40, target=60)
    with unguarded():
        Initiative.objects.filter(pk=initiative.pk).update(stage=Stage.PILOT)
    initiative.refresh_from_db()
    response = _post_metric(client, initiative, metric, clear_target="on")
    assert response.status_code == 302  # back to the page, with the refusal as a message
    shown = [str(m) for m in client.get(response["Location"]).context["messages"]]
    assert any("may not" in m for m in shown), shown
    assert SuccessMetric.objects.get(pk=metric.pk).target == 60

    client.force_login(UserFactory(is_staff=True, groups=[PMO]))
    pmo_fields = {
        "business_unit": initiative.business_unit_id,
        "risk_tier": initiative.risk_tier,
        "business_owner": initiative.business_owner_id,
    }
    response = _post_metric(client, initiative, metric, clear_target="on", **pmo_fields)
    assert response.status_code == 302
    assert SuccessMetric.objects.get(pk=metric.pk).target is None
    assert Event.objects.filter(type="metric.redefined").count() == 1


def test_a_new_metric_may_start_without_baseline_or_target(owner_client):
    client, initiative = owner_client
    new = SuccessMetric(name="Adoption", unit="%", direction="higher")
    response = _post_metric(client, initiative, new, **{"INITIAL_FORMS": "0"})
    assert response.status_code == 302
    created = SuccessMetric.objects.get(initiative=initiative, name="Adoption")
    assert (created.baseline, created.target) == (None, None)


@pytest.mark.parametrize("typed", BAD_NUMBERS.values(), ids=BAD_NUMBERS.keys())
def test_a_bad_reading_gives_a_field_error_and_records_nothing(owner_client, typed):
    client, initiative = owner_client
    metric = SuccessMetricFactory(initiative=initiative, unit="%")
    now = timezone.localtime()
    response = client.post(
        "/admin/programs/metricreading/add/",
        {
            "metric": metric.pk,
            "value": typed,
            "measured_at_0": now.strftime("%Y-%m-%d"),
            "measured_at_1": now.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 200
    assert "value" in response.context["adminform"].form.errors
    assert not MetricReading.objects.exists()
    assert SuccessMetric.objects.get(pk=metric.pk).current_value is None


def test_the_service_holds_a_percentage_to_0_to_100(owner_client):
    from gatekeeper.errors import ValidationFailed
    from programs import services

    _, initiative = owner_client
    with pytest.raises(ValidationFailed) as refused:
        services.metric_add(
            initiative=initiative, actor=None, name="Adoption", unit="%", target=101
        )
    assert set(refused.value.errors) == {"target"}
    metric = SuccessMetricFactory(initiative=initiative, unit="percent of cases")
    with pytest.raises(ValidationFailed):
        services.metric_update(metric=metric, actor=None, changes={"baseline": Decimal("-5")})
    with pytest.raises(ValidationFailed):
        services.metric_record_value(metric=metric, actor=None, value="100.5")
    assert services.metric_record_value(metric=metric, actor=None, value="100").value == 100
