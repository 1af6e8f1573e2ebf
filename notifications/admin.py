from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from gatekeeper.admin_utils import HTTPS_URL_FIELDS, EmptyStateMixin, ReadOnlyInline, ViewOnlyMixin
from notifications import services
from notifications.models import Delivery, DeliveryStatus, Event, Notification, WebhookEndpoint


class DeliveryInline(ReadOnlyInline):
    model = Delivery
    fields = ("channel", "recipient_label", "status", "attempts", "next_attempt_at", "last_error")
    readonly_fields = fields
    show_change_link = True


@admin.register(Event)
class EventAdmin(EmptyStateMixin, ViewOnlyMixin, admin.ModelAdmin):
    empty_message = "No event has been recorded yet."
    list_display = ["type", "key", "created_at"]
    list_filter = ["type"]
    search_fields = ["key", "type"]
    date_hierarchy = "created_at"
    readonly_fields = ["type", "key", "payload", "created_at"]
    inlines = [DeliveryInline]


@admin.register(Delivery)
class DeliveryAdmin(EmptyStateMixin, ViewOnlyMixin, admin.ModelAdmin):
    empty_message = "Nothing has been sent or queued yet."
    list_display = [
        "id",
        "event_type",
        "channel",
        "recipient_label",
        "status",
        "attempts",
        "next_attempt_at",
        "short_error",
        "delivered_at",
    ]
    list_filter = ["status", "channel", "event__type"]
    search_fields = ["event__key", "recipient_email", "endpoint__name", "uuid"]
    list_select_related = ["event", "endpoint", "recipient_user"]
    readonly_fields = [
        "event",
        "channel",
        "recipient_user",
        "recipient_email",
        "endpoint",
        "uuid",
        "status",
        "attempts",
        "next_attempt_at",
        "claimed_at",
        "last_error",
        "last_status_code",
        "delivered_at",
        "created_at",
        "updated_at",
    ]
    actions = ["retry_dead"]

    @admin.display(ordering="event__type", description="event")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.type

    @admin.display(description="last error")
    def short_error(self, obj: Delivery) -> str:
        return obj.last_error[:80]

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # Rows are read-only in the admin, but whoever may change them may re-send them.
        return request.user.has_perm("notifications.change_delivery")

    @admin.action(description="Retry selected dead deliveries", permissions=["retry"])
    def retry_dead(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        ids = list(queryset.filter(status=DeliveryStatus.DEAD).values_list("id", flat=True))
        retried = sum(services.delivery_retry(delivery_id=i) for i in ids)
        skipped = queryset.count() - retried
        self.message_user(request, f"{retried} dead deliveries queued for another round.")
        if skipped:
            self.message_user(
                request,
                f"{skipped} selected deliveries were not dead; left alone.",
                messages.WARNING,
            )
        inactive = queryset.filter(pk__in=ids, endpoint__is_active=False).count()
        if inactive:
            self.message_user(
                request,
                f"{inactive} of them go to a disabled webhook endpoint; re-enable it or they "
                "will die again.",
                messages.WARNING,
            )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(EmptyStateMixin, admin.ModelAdmin):
    empty_message = "No webhook endpoint is configured."
    list_display = ["name", "url", "is_active", "event_types", "owner", "disabled_reason"]
    list_filter = ["is_active"]
    search_fields = ["name", "url"]
    raw_id_fields = ["owner"]
    formfield_overrides = HTTPS_URL_FIELDS
    # is_active and its reason/time change only through endpoint_enable/endpoint_disable (the
    # actions below), so disabling always tells the owner and re-enabling clears the reason.
    readonly_fields = ["is_active", "disabled_reason", "disabled_at", "created_at", "updated_at"]
    actions = ["enable", "disable"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The secret is generated on creation and shown so the receiver can be configured;
        # it is not hand-edited afterwards (a typo would silently break every signature).
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "secret"] if obj is not None else fields

    @admin.action(description="Re-enable selected endpoints", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = sum(services.endpoint_enable(endpoint_id=e.pk) for e in queryset)
        self.message_user(request, f"{count} endpoints re-enabled.")

    @admin.action(description="Disable selected endpoints", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = sum(
            services.endpoint_disable(endpoint_id=e.pk, reason=f"was disabled by {request.user}")
            for e in queryset
        )
        self.message_user(request, f"{count} endpoints disabled.")


@admin.register(Notification)
class NotificationAdmin(EmptyStateMixin, admin.ModelAdmin):
    """Each user's own inbox: every staff user sees theirs, and only theirs."""

    empty_message = "You have no notifications."

    list_display = ["title", "event_type", "created_at", "is_read", "open_link"]
    list_filter = ["event_type", ("read_at", admin.EmptyFieldListFilter)]
    search_fields = ["title", "body"]
    readonly_fields = ("event_type", "title", "body", "link", "created_at", "read_at")
    fields = readonly_fields
    actions = ["mark_read"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Notification]:
        return super().get_queryset(request).filter(user_id=request.user.pk)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request) and (
            obj is None or obj.user_id == request.user.pk
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # "Change" only enables the mark-read action; every field is read-only.
        return self.has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        # Opening a notification reads it.
        if object_id.isdigit():
            services.notifications_mark_read(user=request.user, notification_ids=[int(object_id)])
        return super().change_view(request, object_id, *args, **kwargs)

    @admin.display(boolean=True, description="read")
    def is_read(self, obj: Notification) -> bool:
        return obj.read_at is not None

    @admin.display(description="")
    def open_link(self, obj: Notification) -> str:
        return format_html('<a href="{}">open</a>', obj.link) if obj.link else ""

    @admin.action(description="Mark as read")
    def mark_read(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        count = services.notifications_mark_read(
            user=request.user,
            notification_ids=list(queryset.values_list("id", flat=True)),
        )
        self.message_user(request, f"{count} notifications marked as read.")
