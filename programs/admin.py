"""Admin for initiatives: the business owner's home (DESIGN.md §2 Admin UI).

Stage buttons come from django-fsm-2's FSMAdminMixin, but every click runs through the services,
so the admin writes the same transition record and outbox events as the API and can't skip a gate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import http
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_fsm.admin import FSMAdminMixin

from gatekeeper.admin_utils import (
    HTTPS_URL_FIELDS,
    EmptyStateMixin,
    ReadOnlyInline,
    SelectorListMixin,
    ServiceAdminMixin,
    ViewOnlyMixin,
    refusal_message,
)
from gatekeeper.errors import DomainError
from gatekeeper.types import signed_in_user
from programs import ports, selectors, services
from programs.forms import ReasonForm, RequiredReasonForm, SuccessMetricForm
from programs.models import (
    BusinessUnit,
    ExternalReference,
    Initiative,
    MetricReading,
    Milestone,
    StageTransition,
    SuccessMetric,
)

_SERVICE_FOR: dict[str, Callable[..., Any]] = {
    "start_pilot": services.initiative_advance,
    "start_integration": services.initiative_advance,
    "start_hardening": services.initiative_advance,
    "start_operations": services.initiative_advance,
    "hold": services.initiative_hold,
    "resume": services.initiative_resume,
    "cancel": services.initiative_cancel,
    "retire": services.initiative_retire,
}


_LABELS = {
    "start_pilot": "Start pilot (G1 approved)",
    "start_integration": "Start integration (G2 approved)",
    "start_hardening": "Start hardening (G3 approved)",
    "start_operations": "Go to operations (G4 approved)",
    "hold": "Put on hold",
    "resume": "Resume",
    "cancel": "Cancel (kill)",
    "retire": "Retire",
}


class SuccessMetricInline(admin.TabularInline):
    model = SuccessMetric
    form = SuccessMetricForm
    extra = 0
    can_delete = False  # a metric the gates judged stays on record
    fields = (
        "name",
        "unit",
        "direction",
        "baseline",
        "clear_baseline",
        "target",
        "clear_target",
        "current_value",
        "measured_at",
    )
    readonly_fields = ("current_value", "measured_at")


class MilestoneInline(ReadOnlyInline):
    """Read-only here: milestones are added and changed on their own page, through services."""

    model = Milestone
    fields = ("stage", "title", "owner", "due", "status", "completed_at", "is_gate_condition")
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="Due")
    def due(self, obj: Milestone) -> str:
        day = f"{timezone.localtime(obj.due_at):%Y-%m-%d}"
        if not obj.is_overdue(timezone.now()):
            return day
        late = (timezone.now() - obj.due_at).days
        return format_html('<span class="gk-overdue">{} (overdue {} d)</span>', day, late)


def _review_link(review_id: int | None) -> str:
    """A link to the gate review's admin page; programs knows the review only by its id."""
    if review_id is None:
        return "-"
    try:
        url = reverse("admin:gates_gatereview_change", args=[review_id])
    except NoReverseMatch:  # gates not installed
        return f"review #{review_id}"
    return format_html('<a href="{}">review #{}</a>', url, review_id)


class StageTransitionInline(ReadOnlyInline):
    model = StageTransition
    verbose_name = "stage move"
    verbose_name_plural = "history of stage moves"
    fields = ("when", "actor", "move", "reason", "review")
    readonly_fields = fields

    @admin.display(description="When")
    def when(self, obj: StageTransition) -> str:
        return f"{timezone.localtime(obj.created_at):%Y-%m-%d %H:%M}"

    @admin.display(description="From → to")
    def move(self, obj: StageTransition) -> str:
        return f"{obj.get_from_stage_display()} → {obj.get_to_stage_display()}"

    @admin.display(description="Gate review")
    def review(self, obj: StageTransition) -> str:
        return _review_link(obj.gate_review_id)


def _may_change_some_initiative(request: Any) -> bool:
    """Whether the user may change any initiative at all: milestones are added and readings
    recorded only on those. Asked by every admin page's menu, so kept on the request."""
    cached = getattr(request, "_gatekeeper_may_change_initiative", None)
    if cached is None:
        cached = bool(request.user.is_staff) and (
            selectors.initiatives_changeable_by(request.user).exists()
        )
        request._gatekeeper_may_change_initiative = cached
    return cached


@admin.register(Initiative)
class InitiativeAdmin(
    SelectorListMixin, EmptyStateMixin, ServiceAdminMixin, FSMAdminMixin, admin.ModelAdmin
):
    empty_message = "No initiative concerns you yet."
    fsm_fields = ["stage"]
    fsm_forms = {
        name: RequiredReasonForm if name in ("hold", "cancel", "retire") else ReasonForm
        for name in _SERVICE_FOR
    }
    list_display = (
        "key",
        "name",
        "business_unit",
        "stage",
        "stage_entered_at",
        "health",
        "risk_tier",
        "business_owner",
    )
    # Only the units of initiatives the user may see (the filter reads the admin's queryset).
    list_filter = (
        "stage",
        ("business_unit", admin.RelatedOnlyFieldListFilter),
        "risk_tier",
        "health",
    )
    search_fields = ("key", "name", "summary", "external_refs__key")
    readonly_fields = (
        "key",
        "next_moves",
        "held_from",
        "stage_entered_at",
        "stall_at",
        "held_stage_entered_at",
        "held_stall_at",
        "created_by",
        "created_at",
        "updated_at",
    )
    inlines = [SuccessMetricInline, MilestoneInline, StageTransitionInline]
    change_form_template = "admin/programs/initiative/change_form.html"

    def render_change_form(
        self,
        request: Any,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None and obj.pk is not None:
            context["initiative_page"] = {
                "steps": selectors.lifecycle_steps(obj),
                "clock": selectors.stage_clock(obj),
                "overdue": selectors.milestones_overdue_count(obj),
                "gate": ports.gate_panel(obj),
            }
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="Next moves")
    def next_moves(self, obj: Initiative) -> str:
        """Every move out of the current stage and what still blocks it, so an owner sees why
        the forward button is missing instead of guessing."""
        if obj.pk is None:
            return "-"
        moves = selectors.available_transitions(obj)
        if not moves:
            return "none"
        items = format_html_join(
            "",
            "<li><strong>{}</strong>: {}</li>",
            (
                (_LABELS.get(name, name), "; ".join(unmet) if unmet else "possible now")
                for name, unmet in moves.items()
            ),
        )
        return format_html("<ul>{}</ul>", items)

    list_select_related = ("business_unit", "business_owner")

    def get_queryset(self, request: http.HttpRequest) -> QuerySet[Initiative]:
        return selectors.initiatives_visible_to(request.user)

    def has_view_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("programs.view_initiative", obj)

    def has_change_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("programs.change_initiative", obj)

    def has_add_permission(self, request: http.HttpRequest) -> bool:
        return request.user.has_perm("programs.add_initiative")

    def has_delete_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False  # initiatives are cancelled or retired, never deleted: history stays whole

    def save_formset(self, request: Any, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not SuccessMetric:
            super().save_formset(request, form, formset, change)
            return
        # Metrics are written through their services, like everything else on this page. The
        # admin's change message reads what a formset save would have recorded.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            if not inline_form.has_changed() or inline_form in formset.deleted_forms:
                continue
            data = {
                name: inline_form.cleaned_data.get(name)
                for name in ("name", "unit", "baseline", "target", "direction")
            }
            if inline_form.instance.pk is None:
                created = self.run_service(
                    request,
                    lambda data=data: services.metric_add(
                        initiative=form.instance, actor=signed_in_user(request), **data
                    ),
                )
                if created is not None:
                    formset.new_objects.append(created)
            else:
                changes = inline_form.changes()
                metric = self.run_service(
                    request,
                    lambda form=inline_form, changes=changes: services.metric_update(
                        metric=form.instance, actor=signed_in_user(request), changes=changes
                    ),
                )
                if metric is not None:
                    formset.changed_objects.append((metric, list(changes)))

    def get_readonly_fields(self, request: http.HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.has_perm("programs.reassign_initiative", obj):
            # A proposal needs its business unit; after that, moving it is PMO's call.
            locked = services.PMO_ONLY_FIELDS - ({"business_unit"} if obj is None else set())
            fields += sorted(locked)
        return fields

    def save_model(self, request: http.HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            changes = {
                name: form.cleaned_data[name]
                for name in form.changed_data
                if name in services.EDITABLE_FIELDS
            }
            self.run_service(
                request,
                lambda: services.initiative_update(
                    initiative=obj, actor=signed_in_user(request), changes=changes
                ),
                form=form,
            )
            return
        created = self.run_service(
            request,
            lambda: services.initiative_create(
                actor=signed_in_user(request),
                name=obj.name,
                business_unit=obj.business_unit,
                summary=obj.summary,
                business_owner=obj.business_owner,
                sponsor=obj.sponsor,
                delivery_lead=obj.delivery_lead,
                risk_tier=obj.risk_tier,
                target_workflow=obj.target_workflow,
            ),
            form=form,
        )
        if created is not None:
            obj.pk = created.pk
            obj.refresh_from_db()

    def get_fsm_label(self, transition: Any) -> str:
        return _LABELS.get(transition.name, transition.name)

    @staticmethod
    def get_fsm_block_label(fsm_field_name: str) -> str:
        return "Move this initiative"

    def is_fsm_transition_visible(self, transition: Any) -> bool:
        return transition.name in _SERVICE_FOR

    def response_change(self, request: Any, obj: Any) -> http.HttpResponse:
        name = request.POST.get(self.fsm_post_param)
        if name and name not in _SERVICE_FOR:
            raise http.Http404(f"No transition {name!r}")
        return super().response_change(request, obj)

    def fsm_transition_view(
        self, request: Any, object_id: str, transition_name: str, **kwargs: Any
    ) -> http.HttpResponse:
        if transition_name not in _SERVICE_FOR:
            raise http.Http404(f"No transition {transition_name!r}")
        obj = self.get_object(request, object_id)  # scoped: someone else's is a 404
        if obj is not None and not self.has_change_permission(request, obj):
            raise PermissionDenied
        return super().fsm_transition_view(request, object_id, transition_name, **kwargs)

    def _apply_fsm_transition(  # type: ignore[override]
        self,
        *,
        obj: Initiative,
        transition_name: str,
        request: http.HttpRequest,
        kwargs: dict[str, Any] | None = None,
    ) -> bool:
        service = _SERVICE_FOR.get(transition_name)
        if service is None:
            self.message_user(request, f"Unknown transition {transition_name}", messages.ERROR)
            return False
        reason = (kwargs or {}).get("reason", "")
        try:
            service(initiative=obj, actor=signed_in_user(request), reason=reason)
        except DomainError as exc:
            self.message_user(request, refusal_message(exc), messages.ERROR)
            return False
        self.message_user(request, f"{obj.key} is now {obj.get_stage_display()}.", messages.SUCCESS)
        return True


@admin.register(BusinessUnit)
class BusinessUnitAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")
    filter_horizontal = ("members",)


@admin.register(Milestone)
class MilestoneAdmin(SelectorListMixin, EmptyStateMixin, ServiceAdminMixin, admin.ModelAdmin):
    empty_message = "No milestone concerns you yet."
    list_display = (
        "title",
        "initiative",
        "stage",
        "owner",
        "due_at",
        "status",
        "external_deleted_at",
    )
    list_filter = (
        "status",
        "stage",
        "is_gate_condition",
        ("initiative", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("title", "initiative__key", "external_key")
    readonly_fields = (
        "status",
        "completed_at",
        "completed_by",
        "waive_reason",
        "is_gate_condition",
        "next_alert_at",
        "alert_level",
        "external_deleted_at",
    )
    list_select_related = ("initiative", "owner")
    actions = ["mark_done", "waive"]

    def get_readonly_fields(self, request: http.HttpRequest, obj: Any = None) -> Any:
        locked = ("initiative", "stage", "external_system", "external_key") if obj else ()
        return (*self.readonly_fields, *locked)

    def has_add_permission(self, request: http.HttpRequest) -> bool:
        # milestone_add needs an initiative the user may change; without one the form could
        # only be refused.
        return _may_change_some_initiative(request)

    def has_waive_permission(self, request: http.HttpRequest) -> bool:
        # Marking done needs no such check: whoever sees a milestone may complete it
        # (programs.complete_milestone), but waiving is not a service account's call.
        return selectors.milestones_changeable_by(request.user).exists()

    def has_delete_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False  # waive it instead, with a reason, so the record of the decision stays

    def save_model(
        self, request: http.HttpRequest, obj: Milestone, form: Any, change: bool
    ) -> None:
        if change:
            self.run_service(
                request,
                lambda: services.milestone_update(
                    milestone=obj,
                    actor=signed_in_user(request),
                    title=obj.title,
                    owner=obj.owner,
                    due_at=obj.due_at,
                ),
                form=form,
            )
            return
        created = self.run_service(
            request,
            lambda: services.milestone_add(
                initiative=obj.initiative,
                actor=signed_in_user(request),
                title=obj.title,
                owner=obj.owner,
                due_at=obj.due_at,
                stage=obj.stage or None,
                external_system=obj.external_system,
                external_key=obj.external_key,
            ),
            form=form,
        )
        if created is not None:
            obj.pk = created.pk

    def get_queryset(self, request: http.HttpRequest) -> QuerySet[Milestone]:
        return selectors.milestones_visible_to(request.user)

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "initiative":
            # Only the add form asks (the initiative is read-only once a milestone exists):
            # offer what the service accepts, not every initiative the user can see.
            kwargs["queryset"] = selectors.initiatives_changeable_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.action(description="Waive selected milestones (with a reason)", permissions=["waive"])
    def waive(self, request: http.HttpRequest, queryset: QuerySet[Milestone]) -> Any:
        form = RequiredReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            waived = 0
            for milestone in queryset:
                try:
                    services.milestone_waive(
                        milestone=milestone,
                        actor=signed_in_user(request),
                        reason=form.cleaned_data["reason"],
                    )
                    waived += 1
                except DomainError as exc:
                    self.message_user(
                        request, f"{milestone}: {refusal_message(exc)}", messages.ERROR
                    )
            if waived:
                self.message_user(request, f"{waived} milestone(s) waived.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Waive milestones",
            "milestones": queryset,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/programs/waive_milestones.html", context)

    @admin.action(description="Mark selected milestones done")
    def mark_done(self, request: http.HttpRequest, queryset: QuerySet[Milestone]) -> None:
        done = 0
        for milestone in queryset:
            try:
                services.milestone_complete(milestone=milestone, actor=signed_in_user(request))
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{milestone}: {refusal_message(exc)}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} milestone(s) marked done.", messages.SUCCESS)


@admin.register(StageTransition)
class StageTransitionAdmin(SelectorListMixin, EmptyStateMixin, ViewOnlyMixin, admin.ModelAdmin):
    empty_message = "No initiative you can see has moved stage yet."
    list_display = ("created_at", "initiative", "from_stage", "to_stage", "actor", "reason")
    list_filter = ("to_stage", ("initiative", admin.RelatedOnlyFieldListFilter))
    search_fields = ("initiative__key", "reason")
    list_select_related = ("initiative", "actor")

    def get_queryset(self, request: http.HttpRequest) -> QuerySet[StageTransition]:
        return selectors.stage_transitions_visible_to(request.user)


@admin.register(MetricReading)
class MetricReadingAdmin(SelectorListMixin, EmptyStateMixin, ServiceAdminMixin, admin.ModelAdmin):
    """Where pilot results are recorded: each reading goes through metric_record_value."""

    empty_message = "No metric reading has been recorded for an initiative you can see."

    list_display = ("metric", "initiative", "value", "measured_at", "recorded_by")
    list_select_related = ("metric__initiative", "recorded_by")
    list_filter = (("metric__initiative", admin.RelatedOnlyFieldListFilter),)
    fields = ("metric", "value", "measured_at")
    search_fields = ("metric__name", "metric__initiative__key")

    @admin.display(description="Initiative")
    def initiative(self, obj: MetricReading) -> Any:
        return obj.metric.initiative

    def get_queryset(self, request: http.HttpRequest) -> QuerySet[MetricReading]:
        return selectors.readings_visible_to(request.user)

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "metric":
            # Readings are only added (never changed): offer the metrics the service accepts.
            kwargs["queryset"] = selectors.metrics_recordable_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_view_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("programs.view_initiative", getattr(obj, "metric", None))

    def has_add_permission(self, request: http.HttpRequest) -> bool:
        return _may_change_some_initiative(request)

    def has_change_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False  # readings are history: record a new one instead

    def has_delete_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: http.HttpRequest, obj: Any, form: Any, change: bool) -> None:
        reading = self.run_service(
            request,
            lambda: services.metric_record_value(
                metric=obj.metric,
                actor=signed_in_user(request),
                value=obj.value,
                measured_at=obj.measured_at,
            ),
            form=form,
        )
        if reading is not None:
            obj.pk = reading.pk


@admin.register(ExternalReference)
class ExternalReferenceAdmin(admin.ModelAdmin):
    formfield_overrides = HTTPS_URL_FIELDS


admin.site.site_header = "Gatekeeper"
admin.site.site_title = "Gatekeeper"
