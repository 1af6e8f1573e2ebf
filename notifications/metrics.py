"""Scrape-time metrics for the outbox (listed in settings.GATEKEEPER_METRICS_COLLECTORS)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import DatabaseError
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from notifications.models import Delivery, DeliveryStatus


class DeliveryBacklogCollector(Collector):
    """Deliveries not yet delivered, by status: one grouped COUNT when Prometheus scrapes.

    ``dead`` deliveries need a person (the admin's retry action); a growing ``pending`` means
    the worker or a receiver is behind."""

    STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.DEAD)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "gatekeeper_deliveries", "Deliveries not delivered, by status.", labels=["status"]
        )
        try:
            counts = dict(
                Delivery.objects.filter(status__in=self.STATUSES)
                .order_by()
                .values("status")
                .annotate(n=Count("pk"))
                .values_list("status", "n")
            )
        except DatabaseError:
            return  # the scrape still reports the rest; /readyz says what is wrong
        for status in self.STATUSES:
            family.add_metric([str(status.value)], counts.get(status.value, 0))
        yield family
