"""Outbox events, their deliveries, webhook endpoints and in-app notifications (DESIGN.md §2).

An ``Event`` is the fact; each ``Delivery`` is one attempt-tracked way of telling someone about it
(an email to one address, a POST to one endpoint, one in-app notification). Deliveries are claimed
with a conditional UPDATE, so any number of workers and sweeps can race over them safely.
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q

from gatekeeper.validators import validate_no_nul, validate_single_line
from notifications.destinations import destination_problem


class Event(models.Model):
    """An outbox row, written in the same transaction as the change that caused it.

    ``key`` is the idempotency key: the same fact (e.g. "milestone 7 overdue, level 1") can only
    ever be recorded once, whichever worker or sweep tries to record it.
    """

    type = models.CharField(max_length=64, db_index=True, validators=[validate_single_line])
    key = models.CharField(max_length=200, unique=True, validators=[validate_single_line])
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} [{self.key}]"


def generate_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


# "review.submitted", "initiative.stage_changed"; "review.*" subscribes to every review event.
_EVENT_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?")


def event_types_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid subscription list, or None if it is.

    A JSON field takes anything: a bare string would match by substring (``"review"`` in
    ``"review.submitted"``) and a number would make every emit raise, so only a list of event type
    names (each optionally ending in ``.*``) is accepted.
    """
    if not isinstance(value, list):
        return (
            f'must be a list of event types such as ["review.submitted"], not '
            f"{type(value).__name__}"
        )
    for item in value:
        if not isinstance(item, str) or not item.strip():
            return f"each event type must be a non-empty string, not {item!r}"
        if not _EVENT_TYPE_PATTERN.fullmatch(item):
            return (
                f"{item!r} is not an event type name (lowercase dotted, such as "
                '"review.submitted", or a prefix wildcard such as "review.*")'
            )
    return None


class WebhookEndpoint(models.Model):
    """A receiver registered by an integration owner; events are POSTed to it, signed."""

    name = models.CharField(max_length=120, validators=[validate_single_line])
    # Plain http(s) only: the transport speaks HTTP, and an ftp:// URL would fail at send time.
    url = models.URLField(
        max_length=500, validators=[URLValidator(schemes=["http", "https"]), validate_single_line]
    )
    secret = models.CharField(
        max_length=120,
        default=generate_webhook_secret,
        help_text="Standard Webhooks signing secret (whsec_…); the receiver verifies with it.",
        validators=[validate_single_line],
    )
    event_types = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            'Event types to send, e.g. ["review.submitted", "milestone.*"] ("x.*" is every '
            "type starting with x.); empty means every type."
        ),
    )
    is_active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhook_endpoints",
        help_text="Told when the endpoint is disabled (e.g. it answered 410 Gone).",
    )
    disabled_reason = models.CharField(
        max_length=300, blank=True, validators=[validate_single_line]
    )
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.url})"

    def clean(self) -> None:
        super().clean()
        if self.event_types is None:
            self.event_types = []  # a cleared admin field: every type, as the help text says
        problem = event_types_problem(self.event_types)
        if problem is not None:
            raise ValidationError({"event_types": problem})
        # A clear error at save; the send itself is guarded at connect time regardless.
        url_problem = destination_problem(self.url) if self.url else None
        if url_problem is not None:
            raise ValidationError({"url": f"This URL {url_problem}."})

    def subscribes_to(self, event_type: str) -> bool:
        """Callers check ``event_types_problem`` first; this assumes a valid list."""
        if not self.event_types:
            return True
        for pattern in self.event_types:
            if pattern.endswith(".*"):
                if event_type.startswith(pattern[:-1]):  # "review.*" → prefix "review."
                    return True
            elif event_type == pattern:
                return True
        return False


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"
    IN_APP = "in_app", "In-app"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Dead (gave up)"


UNDELIVERED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


def dispatched_with(channel: str, endpoint_id: int | None) -> int | None:
    """What a delivery's dispatch message is grouped by: its webhook endpoint's id, or None for
    a person's delivery (e-mails and in-app notes travel together)."""
    return endpoint_id if channel == Channel.WEBHOOK else None


class Delivery(models.Model):
    """One event told through one channel to one recipient (an address, an endpoint, a user)."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    recipient_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    recipient_email = models.EmailField(blank=True, validators=[validate_single_line])
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    # Stable across retries: it is the Standard Webhooks `webhook-id` receivers dedupe on.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # Null once delivered or dead, so the partial index below holds only work still to do.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set by the redispatch sweep when it queues a message for the delivery, with
    # ``next_attempt_at`` pushed out by the re-queue interval: the next sweeps leave it alone
    # until then, while that message (or any earlier one) can still claim it. Cleared by a claim.
    # A database default too: a row written by SQL that predates the column (a data fix, a
    # bulk load) is simply not sweep-queued.
    sweep_queued = models.BooleanField(default=False, db_default=False, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, validators=[validate_no_nul])
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            # The redispatch sweep reads "undelivered and due, oldest first"; the index holds
            # only undelivered rows, so the sweep costs what is due, not the table's history.
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due_idx",
                condition=Q(status__in=["pending", "sending"]),
            ),
            models.Index(fields=["status", "channel"], name="delivery_status_idx"),
        ]
        constraints = [
            # Emitting is idempotent per recipient even if delivery creation is ever re-run.
            models.UniqueConstraint(
                fields=["event", "recipient_email"],
                condition=Q(channel="email"),
                name="delivery_once_per_email",
            ),
            models.UniqueConstraint(
                fields=["event", "endpoint"],
                condition=Q(channel="webhook"),
                name="delivery_once_per_endpoint",
            ),
            models.UniqueConstraint(
                fields=["event", "recipient_user"],
                condition=Q(channel="in_app"),
                name="delivery_once_per_user_in_app",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event.type} → {self.channel}:{self.recipient_label} ({self.status})"

    @property
    def recipient_label(self) -> str:
        if self.channel == Channel.EMAIL:
            return self.recipient_email
        if self.channel == Channel.WEBHOOK:
            return self.endpoint.name if self.endpoint else "(deleted endpoint)"
        return str(self.recipient_user) if self.recipient_user else "(deleted user)"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.uuid.hex}"


class Notification(models.Model):
    """An in-app notification, shown in the admin to its user only."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    # One notification per in-app delivery: a retried delivery cannot show twice.
    delivery = models.OneToOneField(
        Delivery, on_delete=models.SET_NULL, null=True, blank=True, related_name="notification"
    )
    event_type = models.CharField(max_length=64, validators=[validate_single_line])
    title = models.CharField(max_length=300, validators=[validate_single_line])
    body = models.TextField(blank=True, validators=[validate_no_nul])
    link = models.CharField(max_length=500, blank=True, validators=[validate_single_line])
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["user", "-created_at"],
                name="notification_unread_idx",
                condition=Q(read_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return self.title
