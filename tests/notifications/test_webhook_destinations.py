"""Webhooks never reach internal addresses in production settings (SSRF)."""

from __future__ import annotations

import pytest
from django.db import transaction

from notifications.models import Channel, Delivery, DeliveryStatus
from notifications.outbox import emit
from notifications.services import delivery_attempt
from notifications.transports import TransportError, refuse_non_public_destination
from tests.notifications.conftest import payload_with


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_non_public_destinations_are_refused_permanently(url, settings):
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(TransportError) as refused:
        refuse_non_public_destination(url)
    assert refused.value.permanent
    assert "non-public" in refused.value.message


def test_public_address_passes(settings):
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    refuse_non_public_destination("https://93.184.216.34/hook")  # an IP literal: no DNS, no I/O


@pytest.mark.django_db
def test_delivery_to_a_private_endpoint_is_dead_lettered_unsent(settings, endpoint, receiver):
    settings.GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    with transaction.atomic():
        event = emit("review.submitted", payload_with(), key="ssrf")
    delivery = Delivery.objects.get(event=event, channel=Channel.WEBHOOK)

    delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DEAD
    assert "non-public" in delivery.last_error
    assert receiver.requests == []


@pytest.mark.django_db
def test_clearing_event_types_in_the_admin_means_every_type(endpoint):
    endpoint.event_types = None  # what a cleared JSON field posts
    endpoint.full_clean()
    assert endpoint.event_types == []
    assert endpoint.subscribes_to("initiative.stalled")
