from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse

from gatekeeper.admin_utils import ViewOnlyMixin
from gatekeeper.types import signed_in_user
from integrations import services
from integrations.models import InboundDelivery, InboundStatus, Integration, TicketState
from programs import services as program_services
from programs.models import BusinessUnit


class _RulesModuleMixin:
    """Staff who may view the model see the app (rules answers per model, not per module)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(
            request.user.is_active and request.user.is_staff and self.has_view_permission(request)  # type: ignore[attr-defined]
        )


def _show_secret_once(
    request: HttpRequest, integration: Integration, secret: str, what: str
) -> None:
    messages.warning(
        request,
        f"{what} signing secret of {integration.name}: {secret} — copy it into the "
        "ticketing system now; it will not be shown again.",
    )


class IntegrationForm(forms.ModelForm):
    """The integration's fields plus its service account's business units, the scope it acts in.

    The units are not the integration's: they are the account's memberships
    (``BusinessUnit.members``), shown and changed here so the PMO sets the scope where it sets up
    the integration, and written only through ``programs.services.business_unit_members_set``.
    """

    business_units = forms.ModelMultipleChoiceField(
        queryset=BusinessUnit.objects.all(),
        required=False,
        widget=FilteredSelectMultiple("business units", is_stacked=False),
        # The list as shown comes back with the post, so a save changes only what this person
        # added or removed, never memberships changed elsewhere since the page was loaded.
        show_hidden_initial=True,
        label="Business units (of the service account)",
        help_text=(
            "Only milestones of initiatives in these units (or created by the service account) "
            "may be changed; none = nothing. These are the service account's memberships, the "
            "same as each business unit's members: an account shared by several integrations "
            "gives them one scope. Units added or removed here are added to or removed from the "
            "account."
        ),
    )

    class Meta:
        model = Integration
        fields = ["name", "slug", "kind", "service_user", "is_active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and self.instance.service_user_id is not None:
            units = BusinessUnit.objects.filter(members=self.instance.service_user_id)
            self.fields["business_units"].initial = list(units.values_list("pk", flat=True))

    def units_shown(self) -> set[BusinessUnit]:
        """The units the page showed when it was loaded (none if the post does not say)."""
        field = self.fields["business_units"]
        raw = field.hidden_widget().value_from_datadict(
            self.data, self.files, self.add_initial_prefix("business_units")
        )
        pks = [value for value in raw or () if str(value).isdigit()]
        return set(BusinessUnit.objects.filter(pk__in=pks))

    def units_changed(self) -> tuple[set[BusinessUnit], set[BusinessUnit]]:
        """(added, removed) relative to what the page showed."""
        chosen = set(self.cleaned_data.get("business_units") or ())
        shown = self.units_shown()
        return chosen - shown, shown - chosen


@admin.register(Integration)
class IntegrationAdmin(_RulesModuleMixin, admin.ModelAdmin):
    form = IntegrationForm
    list_display = ["name", "kind", "slug", "is_active", "service_user", "scope", "masked_secret"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "slug"]
    fields = [
        "name",
        "slug",
        "kind",
        "service_user",
        "business_units",
        "is_active",
        "webhook_path",
        "masked_secret",
        "secret_rotated_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "webhook_path",
        "masked_secret",
        "secret_rotated_at",
        "created_at",
        "updated_at",
    ]
    actions = ["rotate_secret"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The URL Jira calls contains the slug and the kind decides how it is read.
        locked = ["slug", "kind"] if obj is not None else []
        return [*super().get_readonly_fields(request, obj), *locked]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Integration]:
        return (
            super()
            .get_queryset(request)
            .select_related("service_user")
            .prefetch_related("service_user__business_units")
        )

    @admin.display(description="business units (of the service account)")
    def scope(self, obj: Integration) -> str:
        units = obj.service_user.business_units.all()  # type: ignore[attr-defined]
        return ", ".join(unit.code for unit in units) or "none"

    @admin.display(description="secret")
    def masked_secret(self, obj: Integration) -> str:
        return obj.masked_secret

    @admin.display(description="webhook URL path")
    def webhook_path(self, obj: Integration) -> str:
        if obj.pk is None:
            return "(after saving)"
        return reverse(f"integrations:{obj.kind}", args=[obj.slug])

    def save_model(self, request: HttpRequest, obj: Integration, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        self._save_scope(request, obj, form)
        if not change:
            _show_secret_once(request, obj, obj.secret, "The")

    def _save_scope(self, request: HttpRequest, obj: Integration, form: IntegrationForm) -> None:
        added, removed = form.units_changed()
        if not added and not removed:
            return
        account = obj.service_user
        current = set(BusinessUnit.objects.filter(members=account))
        program_services.business_unit_members_set(
            actor=signed_in_user(request), user=account, units=(current | added) - removed
        )
        sharing = Integration.objects.filter(service_user=account).exclude(pk=obj.pk)
        if sharing.exists():
            names = ", ".join(sharing.values_list("name", flat=True))
            messages.info(
                request,
                f"The service account {account} also acts for {names}: "
                "their scope changed as well.",
            )

    @admin.action(description="Rotate the signing secret (shown once)", permissions=["change"])
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        for integration in queryset:
            secret = services.integration_rotate_secret(integration=integration)
            _show_secret_once(request, integration, secret, "New")


@admin.register(InboundDelivery)
class InboundDeliveryAdmin(_RulesModuleMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "integration",
        "delivery_id",
        "event_type",
        "status",
        "attempts",
        "received_at",
        "next_attempt_at",
        "short_note",
        "short_error",
    ]
    list_filter = ["status", "integration", "event_type"]
    search_fields = ["delivery_id", "result_note", "last_error"]
    list_select_related = ["integration"]
    date_hierarchy = "received_at"
    readonly_fields = [
        "integration",
        "delivery_id",
        "event_type",
        "body",
        "received_at",
        "status",
        "attempts",
        "next_attempt_at",
        "claimed_at",
        "last_error",
        "applied_at",
        "result_note",
        "updated_at",
    ]
    fields = tuple(readonly_fields)
    actions = ["retry"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the inbox is the record of what the ticketing systems asked for

    @admin.display(description="result")
    def short_note(self, obj: InboundDelivery) -> str:
        return obj.result_note[:80]

    @admin.display(description="last error")
    def short_error(self, obj: InboundDelivery) -> str:
        return obj.last_error[:80]

    @admin.action(description="Retry selected dead or failed deliveries", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[InboundDelivery]) -> None:
        retryable = [InboundStatus.DEAD, InboundStatus.FAILED]
        ids = list(queryset.filter(status__in=retryable).values_list("id", flat=True))
        retried = sum(services.inbound_delivery_retry(delivery_id=i) for i in ids)
        self.message_user(request, f"{retried} deliveries queued to be applied again.")
        skipped = queryset.count() - retried
        if skipped:
            self.message_user(
                request,
                f"{skipped} selected deliveries were not dead or failed; left alone.",
                messages.WARNING,
            )


@admin.register(TicketState)
class TicketStateAdmin(_RulesModuleMixin, ViewOnlyMixin, admin.ModelAdmin):
    list_display = ["integration", "issue_key", "last_event_ts", "updated_at"]
    list_filter = ["integration"]
    search_fields = ["issue_key"]
