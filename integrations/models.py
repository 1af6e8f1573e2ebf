"""Inbound ticketing webhooks: integrations, their inbox, and per-ticket ordering (DESIGN.md §2).

The mirror of the outbox in ``notifications``: an ``InboundDelivery`` is stored before the sender
is answered, then applied by a worker that claims it with a conditional UPDATE, retries it with
backoff, and dead-letters it after its attempts. Nothing received is lost; nothing is applied
twice, because the milestone change and the "applied" mark commit in one transaction.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from gatekeeper.validators import bounded, validate_no_nul, validate_single_line
from programs.roles import INTEGRATIONS


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


class IntegrationKind(models.TextChoices):
    JIRA = "jira", "Jira Cloud"
    SERVICENOW = "servicenow", "ServiceNow"


# The ``Milestone.external_system`` each kind answers for (matched case-insensitively).
EXTERNAL_SYSTEM = {IntegrationKind.JIRA: "jira", IntegrationKind.SERVICENOW: "servicenow"}


class Integration(models.Model):
    """One ticketing system allowed to move milestones, with the secret it signs requests with.

    Its scope is its service account's: initiatives of the business units the account is a member
    of, plus those it created (``programs.rules.in_service_scope``), the same in the API, the
    services and here; the integration keeps no list of its own to drift from it.
    """

    name = models.CharField(max_length=120, unique=True, validators=[validate_single_line])
    slug = models.SlugField(
        max_length=60,
        unique=True,
        help_text="Part of the webhook URL, e.g. jira-prod.",
        validators=[validate_single_line],
    )
    kind = models.CharField(max_length=16, choices=IntegrationKind.choices)
    # Used as the HMAC key, so it is stored as is; it is shown once (on creation or rotation) and
    # masked everywhere else.
    secret = models.CharField(
        max_length=100, default=generate_secret, editable=False, validators=[validate_single_line]
    )
    service_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"groups__name": INTEGRATIONS},
        help_text=f"The account changes are made as; must be in the '{INTEGRATIONS}' group.",
    )
    is_active = models.BooleanField(default=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self) -> None:
        super().clean()
        user = self.service_user if self.service_user_id else None
        if user is not None and not user.groups.filter(name=INTEGRATIONS).exists():
            raise ValidationError(
                {"service_user": f"The service account must be in the '{INTEGRATIONS}' group."}
            )

    @property
    def masked_secret(self) -> str:
        return f"…{self.secret[-4:]}" if self.secret else ""

    @property
    def external_system(self) -> str:
        return EXTERNAL_SYSTEM[IntegrationKind(self.kind)]


class InboundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLYING = "applying", "Applying"
    APPLIED = "applied", "Applied"
    IGNORED = "ignored", "Ignored (nothing to change)"
    FAILED = "failed", "Failed (will retry)"
    DEAD = "dead", "Dead (gave up)"


# Still to do: the apply task or the redispatch sweep will pick these up.
UNFINISHED = (InboundStatus.PENDING, InboundStatus.APPLYING, InboundStatus.FAILED)


class InboundDelivery(models.Model):
    """One webhook request as received, stored before it is answered."""

    integration = models.ForeignKey(
        Integration, on_delete=models.PROTECT, related_name="deliveries"
    )
    # Jira's X-Atlassian-Webhook-Identifier; ServiceNow's sys_id + updated_on.
    delivery_id = models.CharField(max_length=200, validators=[validate_single_line])
    event_type = models.CharField(max_length=64, blank=True, validators=[validate_single_line])
    body = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(
        max_length=16, choices=InboundStatus.choices, default=InboundStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # Null once finished, so the partial index below holds only work still to do.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, validators=[validate_no_nul])
    applied_at = models.DateTimeField(null=True, blank=True)
    result_note = models.CharField(max_length=500, blank=True, validators=[validate_single_line])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name_plural = "inbound deliveries"
        constraints = [
            # The de-duplication: a sender's retry of the same delivery is a no-op insert.
            models.UniqueConstraint(
                fields=["integration", "delivery_id"], name="inbound_delivery_once"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="inbound_due_idx",
                condition=Q(status__in=["pending", "applying", "failed"]),
            ),
            models.Index(fields=["status", "integration"], name="inbound_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.integration.slug}:{self.delivery_id} ({self.status})"


# The last millisecond of year 9999: a later "timestamp" is no time at all.
MAX_EVENT_TS = 253_402_300_799_999


class TicketState(models.Model):
    """The newest event applied per ticket, so an older event delivered late is ignored."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="tickets")
    issue_key = models.CharField(max_length=100, validators=[validate_single_line])
    # Milliseconds since the epoch, as Jira's ``timestamp`` (ServiceNow's updated_on converted).
    last_event_ts = models.BigIntegerField(validators=bounded(-1, MAX_EVENT_TS))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # -1 is the "nothing applied yet" a new row starts with.
            models.CheckConstraint(
                condition=Q(last_event_ts__gte=-1, last_event_ts__lte=MAX_EVENT_TS),
                name="ticket_state_ts_bounded",
            ),
            models.UniqueConstraint(fields=["integration", "issue_key"], name="ticket_state_once"),
        ]

    def __str__(self) -> str:
        return f"{self.integration.slug}:{self.issue_key}"
