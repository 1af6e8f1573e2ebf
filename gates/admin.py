"""Admin for gates: templates (saving writes a new version), reviews with their checklist, the
approver's inbox with approve/reject, approver roles and delegations.

Every write goes through gates.services, so the admin keeps separation of duties, writes the
review log and emits the same outbox events as any other caller.
"""

from __future__ import annotations

from typing import Any

from django import forms, http
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from gatekeeper.admin_utils import ReadOnlyInline, ViewOnlyMixin
from gatekeeper.errors import DomainError
from gates import selectors, services
from gates.models import (
    REJECT_OUTCOMES,
    Approval,
    ApprovalInbox,
    ApproverRule,
    Criterion,
    CriterionKind,
    Decision,
    Delegation,
    Evidence,
    Gate,
    GateApprover,
    GateReview,
    GateTemplate,
    Outcome,
    ReviewEvent,
)
from programs.models import Initiative, RiskTier
from programs.roles import INTEGRATIONS


def _report(request: http.HttpRequest, exc: DomainError) -> None:
    """Show a refusal with every reason the domain gave, not just its headline."""
    reasons = [
        f"{field}: {msg}" if field not in ("conditions", "non_field_errors") else msg
        for field, msgs in exc.errors.items()
        for msg in msgs
    ]
    messages.error(request, exc.detail + (" — " + "; ".join(reasons) if reasons else ""))


# --- gates and templates -----------------------------------------------------------------


@admin.register(Gate)
class GateAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "from_stage", "to_stage", "current_version")
    readonly_fields = ("code", "name", "from_stage", "to_stage", "current_version")

    @admin.display(description="Current template")
    def current_version(self, obj: Gate) -> str:
        template = obj.templates.order_by("-version").first()
        if template is None:
            return "—"
        url = reverse("admin:gates_gatetemplate_change", args=[template.pk])
        return format_html('<a href="{}">v{}</a>', url, template.version)

    def has_add_permission(self, request: http.HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False


def clean_risk_tiers(value: Any) -> list[str]:
    """A JSON field takes anything; only a list of known tiers means "applies to these tiers".

    Without this a number crashed the save (``list(5)``) and a string became its letters.
    """
    if value in (None, ""):
        return []
    known = ", ".join(f'"{t}"' for t in RiskTier.values)
    if not isinstance(value, list):
        raise forms.ValidationError(
            f"Enter a list of risk tiers, e.g. [{known}]; an empty list means every tier."
        )
    unknown = [t for t in value if not isinstance(t, str) or t not in RiskTier.values]
    if unknown:
        raise forms.ValidationError(
            f"Unknown risk tier(s) {', '.join(repr(t) for t in unknown)}; use {known}."
        )
    return list(dict.fromkeys(value))


class RiskTiersForm(forms.ModelForm):
    def clean_risk_tiers(self) -> list[str]:
        return clean_risk_tiers(self.cleaned_data.get("risk_tiers"))


class CriterionInline(admin.TabularInline):
    model = Criterion
    form = RiskTiersForm
    extra = 1
    fields = ("position", "code", "text", "kind", "check_name", "required", "risk_tiers")


class ApproverRuleInline(admin.TabularInline):
    model = ApproverRule
    form = RiskTiersForm
    extra = 1
    fields = ("role", "risk_tiers")


@admin.register(GateTemplate)
class GateTemplateAdmin(admin.ModelAdmin):
    """Saving any version writes the next version of its gate; existing rows never change."""

    list_display = (
        "gate",
        "version",
        "quorum_policy",
        "quorum_n",
        "decision_sla_business_days",
        "expected_stage_days",
        "created_by",
        "created_at",
    )
    list_filter = ("gate",)
    fields = (
        "gate",
        "version",
        "quorum_policy",
        "quorum_n",
        "decision_sla_business_days",
        "expected_stage_days",
        "note",
    )
    readonly_fields = ("gate", "version")
    inlines = (CriterionInline, ApproverRuleInline)

    def has_add_permission(self, request: http.HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: Any, obj: Any, form: Any, change: bool) -> None:
        # Nothing is written here: save_related turns the whole form into a new version.
        pass

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        criteria: list[tuple[int, services.CriterionSpec]] = []
        approvers: list[services.ApproverSpec] = []
        for formset in formsets:
            for f in formset.forms:
                data = getattr(f, "cleaned_data", None)
                if not data or data.get("DELETE"):  # blank extra rows have no cleaned data
                    continue
                if formset.model is Criterion:
                    criteria.append(
                        (
                            data.get("position") or 0,
                            services.CriterionSpec(
                                code=data.get("code") or "",
                                text=data.get("text") or "",
                                kind=data.get("kind") or "",
                                check_name=data.get("check_name") or "",
                                required=bool(data.get("required")),
                                risk_tiers=list(data.get("risk_tiers") or []),
                            ),
                        )
                    )
                elif formset.model is ApproverRule:
                    approvers.append(
                        services.ApproverSpec(
                            role=data["role"], risk_tiers=list(data.get("risk_tiers") or [])
                        )
                    )
        data = form.cleaned_data
        try:
            request._gates_new_template = services.gate_template_revise(
                gate=form.instance.gate,
                actor=request.user,
                criteria=[spec for _, spec in sorted(criteria, key=lambda c: c[0])],
                approvers=approvers,
                quorum_policy=data["quorum_policy"],
                quorum_n=data.get("quorum_n"),
                decision_sla_business_days=data["decision_sla_business_days"],
                expected_stage_days=data.get("expected_stage_days"),
                note=data.get("note") or "",
            )
        except DomainError as exc:
            _report(request, exc)

    def construct_change_message(
        self, request: Any, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        # The formsets were never saved (the rows are immutable), so describe the new version.
        new = getattr(request, "_gates_new_template", None)
        return f"Revised as {new}" if new is not None else ""

    def log_change(self, request: Any, obj: Any, message: Any) -> Any:
        new = getattr(request, "_gates_new_template", None)
        return super().log_change(request, new, message) if new is not None else None

    def response_change(self, request: Any, obj: Any) -> http.HttpResponse:
        new = getattr(request, "_gates_new_template", None)
        if new is None:
            return redirect("admin:gates_gatetemplate_change", obj.pk)
        messages.success(request, f"Saved as {new}; reviews already open keep v{obj.version}.")
        return redirect("admin:gates_gatetemplate_change", new.pk)


# --- reviews -----------------------------------------------------------------------------


class EvidenceInline(ReadOnlyInline):
    model = Evidence
    fields = ("criterion", "url", "note", "attached_by", "attached_at", "carried_from")
    readonly_fields = fields


class ApprovalInline(ReadOnlyInline):
    model = Approval
    fields = (
        "role",
        "approver",
        "status",
        "outcome",
        "comment",
        "decided_by",
        "decided_at",
        "due_at",
    )
    readonly_fields = fields


class ReviewEventInline(ReadOnlyInline):
    model = ReviewEvent
    fields = ("created_at", "kind", "actor", "on_behalf_of", "approval")
    readonly_fields = fields


class OpenReviewForm(forms.ModelForm):
    class Meta:
        model = GateReview
        fields = ("initiative",)


class EvidenceForm(forms.Form):
    criterion = forms.ChoiceField()
    url = forms.URLField(required=False, assume_scheme="https")
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


@admin.register(GateReview)
class GateReviewAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "initiative",
        "gate",
        "template",
        "state",
        "outcome",
        "submitted_at",
        "decided_at",
    )
    list_filter = ("state", "gate", "outcome")
    search_fields = ("initiative__key", "initiative__name")
    readonly_fields = (
        "initiative",
        "gate",
        "template",
        "state",
        "outcome",
        "risk_tier",
        "created_by",
        "created_at",
        "submitted_by",
        "submitted_at",
        "decided_at",
        "decision_summary",
        "closed_reason",
        "checklist",
        "links",
    )
    inlines = (EvidenceInline, ApprovalInline, ReviewEventInline)
    actions = ("submit_reviews",)

    def get_queryset(self, request: Any) -> QuerySet[GateReview]:
        return selectors.reviews_visible_to(user=request.user)

    def get_form(self, request: Any, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = OpenReviewForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: Any, obj: Any = None) -> Any:
        return ("initiative",) if obj is None else self.readonly_fields

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    def get_inlines(self, request: Any, obj: Any) -> Any:
        return self.inlines if obj is not None else ()

    def has_add_permission(self, request: http.HttpRequest) -> bool:
        return bool(request.user.is_staff)

    def has_view_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    def has_change_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        # Read-only page: a review changes only through its actions (services).
        return False

    def has_delete_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "initiative":
            from programs.selectors import initiatives_visible_to

            kwargs["queryset"] = initiatives_visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: Any, obj: GateReview, form: Any, change: bool) -> None:
        initiative: Initiative = form.cleaned_data["initiative"]
        try:
            request._gates_review = services.gate_review_open(
                initiative=initiative, actor=request.user
            )
        except DomainError as exc:
            _report(request, exc)

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        pass

    def log_addition(self, request: Any, obj: Any, message: Any) -> Any:
        review = getattr(request, "_gates_review", None)
        return super().log_addition(request, review, message) if review is not None else None

    def response_add(self, request: Any, obj: Any, post_url_continue: Any = None) -> Any:
        review = getattr(request, "_gates_review", None)
        if review is None:
            return redirect("admin:gates_gatereview_add")
        messages.success(request, f"Opened {review}.")
        return redirect("admin:gates_gatereview_change", review.pk)

    @admin.display(description="Criteria checklist")
    def checklist(self, obj: GateReview) -> str:
        rows = [
            (
                "✔" if s.satisfied else "✘",
                s.criterion.text,
                s.criterion.get_kind_display(),
                "required" if s.criterion.required else "advisory",
                "; ".join(s.reasons) or ", ".join(e.url or e.note[:60] for e in s.evidence),
            )
            for s in selectors.review_checklist(review=obj)
        ]
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
        )
        return format_html(
            "<table><tr><th></th><th>Criterion</th><th>Kind</th><th></th><th>Detail</th></tr>"
            "{}</table>",
            body,
        )

    @admin.display(description="Actions and exports")
    def links(self, obj: GateReview) -> str:
        return format_html(
            '<a href="{}">Attach evidence</a> · <a href="{}">Evidence pack</a> · '
            '<a href="{}">JSON</a>',
            reverse("admin:gates_gatereview_attach", args=[obj.pk]),
            reverse("gates:evidence-pack-html", args=[obj.pk]),
            reverse("gates:evidence-pack-json", args=[obj.pk]),
        )

    @admin.action(description="Submit selected reviews for decision")
    def submit_reviews(self, request: Any, queryset: QuerySet[GateReview]) -> None:
        for review in queryset:
            try:
                services.gate_review_submit(review=review, actor=request.user)
                messages.success(request, f"Submitted {review}.")
            except DomainError as exc:
                _report(request, exc)

    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "<int:review_id>/attach-evidence/",
                self.admin_site.admin_view(self.attach_view),
                name="gates_gatereview_attach",
            ),
        ]
        return extra + super().get_urls()

    def attach_view(self, request: Any, review_id: int) -> http.HttpResponse:
        review = get_object_or_404(self.get_queryset(request), pk=review_id)
        choices = [
            (c.code, c.text)
            for c in selectors.template_criteria(review.template, review.effective_risk_tier)
            if c.kind == CriterionKind.EVIDENCE
        ]
        form = EvidenceForm(request.POST or None)
        criterion_field = form.fields["criterion"]
        assert isinstance(criterion_field, forms.ChoiceField)
        criterion_field.choices = choices
        if request.method == "POST" and form.is_valid():
            try:
                services.evidence_attach(
                    review=review,
                    actor=request.user,
                    criterion=form.cleaned_data["criterion"],
                    url=form.cleaned_data["url"],
                    note=form.cleaned_data["note"],
                )
                messages.success(request, "Evidence attached.")
                return redirect("admin:gates_gatereview_change", review.pk)
            except DomainError as exc:
                _report(request, exc)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Attach evidence to {review}",
            "review": review,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/gates/attach_evidence.html", context)


# --- the approvals inbox -----------------------------------------------------------------


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=Decision.choices, widget=forms.RadioSelect)
    outcome = forms.ChoiceField(
        choices=[("", "—")] + [(o, Outcome(o).label) for o in REJECT_OUTCOMES],
        required=False,
        help_text="For a rejection: Recycle (rework, new review), Hold or Kill.",
    )
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)


class ConditionForm(forms.Form):
    """One condition of a Conditional Go; a row left entirely blank is ignored."""

    title = forms.CharField(max_length=200, required=False)
    # The queryset is set per form (below) so it is read when the page is built, not at import.
    owner = forms.ModelChoiceField(
        queryset=get_user_model()._default_manager.none(), required=False
    )
    due_at = forms.DateTimeField(
        label="Due",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner = self.fields["owner"]
        assert isinstance(owner, forms.ModelChoiceField)
        # Whoever owns a condition owns the milestone it becomes: a person who can still sign
        # in, never a service account.
        owner.queryset = (
            get_user_model()
            ._default_manager.filter(is_active=True)
            .exclude(groups__name=INTEGRATIONS)
            .order_by("username")
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # Blank extra rows are skipped by the formset; a row with anything in it is complete.
        if not (data.get("title") or "").strip():
            self.add_error("title", "Give the condition a title.")
        if data.get("owner") is None:
            self.add_error("owner", "Choose who owns this condition.")
        due_at = data.get("due_at")
        if due_at is None:
            if "due_at" not in self.errors:
                self.add_error("due_at", "Give a due date and time.")
        elif due_at <= timezone.now():
            self.add_error("due_at", "The due date must be in the future.")
        return data


ConditionFormSet = forms.formset_factory(ConditionForm, extra=3, max_num=20, validate_max=True)


def _condition_specs(formset: Any) -> list[services.ConditionSpec]:
    return [
        services.ConditionSpec(
            title=f.cleaned_data["title"].strip(),
            owner=f.cleaned_data["owner"],
            due_at=f.cleaned_data["due_at"],
        )
        for f in formset.forms
        if f.has_changed() and f.cleaned_data
    ]


@admin.register(ApprovalInbox)
class ApprovalInboxAdmin(ViewOnlyMixin, admin.ModelAdmin):
    """Pending approvals the signed-in user can decide: their own and their principals'."""

    list_display = (
        "initiative",
        "gate",
        "role",
        "approver",
        "submitted_by",
        "due_at",
        "overdue",
        "decide",
    )
    list_display_links = None

    def get_queryset(self, request: Any) -> QuerySet[Approval]:
        return selectors.approvals_inbox(user=request.user)

    def has_module_permission(self, request: http.HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    @admin.display(description="Initiative")
    def initiative(self, obj: Approval) -> Any:
        return obj.review.initiative

    @admin.display(description="Gate")
    def gate(self, obj: Approval) -> str:
        return f"{obj.review.gate.code} v{obj.review.template.version}"

    @admin.display(description="Submitted by")
    def submitted_by(self, obj: Approval) -> Any:
        return obj.review.submitted_by

    @admin.display(description="Overdue", boolean=True)
    def overdue(self, obj: Approval) -> bool:
        return obj.due_at < timezone.now()

    @admin.display(description="")
    def decide(self, obj: Approval) -> str:
        url = reverse("admin:gates_approvalinbox_decide", args=[obj.pk])
        return format_html('<a class="button" href="{}">Decide</a>', url)

    def get_urls(self) -> list[Any]:
        extra = [
            path(
                "<int:approval_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="gates_approvalinbox_decide",
            ),
        ]
        return extra + super().get_urls()

    def decide_view(self, request: Any, approval_id: int) -> http.HttpResponse:
        approval = get_object_or_404(self.get_queryset(request), pk=approval_id)
        data_in = request.POST if request.method == "POST" else None
        form = DecisionForm(data_in)
        # A post with no condition fields at all (a script, an older page) is a decision
        # without conditions; one with any of them must carry a complete formset.
        sent_conditions = data_in is not None and any(k.startswith("conditions-") for k in data_in)
        conditions = ConditionFormSet(data_in if sent_conditions else None, prefix="conditions")
        # Both validated, so every problem is shown at once.
        valid = request.method == "POST" and all(
            [form.is_valid(), not sent_conditions or conditions.is_valid()]
        )
        if valid:
            data = form.cleaned_data
            specs = _condition_specs(conditions) if sent_conditions else []
            if specs and data["decision"] != Decision.APPROVE:
                # Dropping them silently would lose what the approver typed; say why instead.
                form.add_error(
                    None, "Conditions go with an approval (Conditional Go); clear them to reject."
                )
                valid = False
        if valid:
            try:
                services.approval_decide(
                    approval=approval,
                    actor=request.user,
                    decision=data["decision"],
                    comment=data["comment"],
                    outcome=data["outcome"] or None,
                    conditions=specs,
                )
                messages.success(request, f"Recorded your decision on {approval}.")
                return redirect("admin:gates_approvalinbox_changelist")
            except DomainError as exc:
                _report(request, exc)
        review = approval.review
        context = {
            **self.admin_site.each_context(request),
            "title": f"Decide: {review}",
            "approval": approval,
            "review": review,
            "checklist": selectors.review_checklist(review=review),
            "others": review.approvals.select_related("approver", "decided_by"),
            "form": form,
            "conditions": conditions,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/gates/approval_decide.html", context)


# --- approver roles and delegation --------------------------------------------------------


class ServiceCreatedAdmin(admin.ModelAdmin):
    """Add forms whose save is a service call; a refusal returns to the form with the reason."""

    def log_addition(self, request: Any, obj: Any, message: Any) -> Any:
        return super().log_addition(request, obj, message) if obj.pk is not None else None

    def response_add(self, request: Any, obj: Any, post_url_continue: Any = None) -> Any:
        if obj.pk is None:
            return redirect(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_add")
        return super().response_add(request, obj, post_url_continue)


class GateApproverForm(forms.ModelForm):
    class Meta:
        model = GateApprover
        fields = ("user", "role", "business_unit")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # Adding a holder for a role that has one replaces it (gate_approver_assign): validate
        # against the existing row so the one-per-role constraint is not a form error.
        existing = GateApprover.objects.filter(
            role=data.get("role"), business_unit=data.get("business_unit")
        ).first()
        if existing is not None:
            self.instance = existing
        return data


@admin.register(GateApprover)
class GateApproverAdmin(ServiceCreatedAdmin):
    form = GateApproverForm
    list_display = ("role", "business_unit", "user")
    list_filter = ("role", "business_unit")

    def has_change_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        # Reassigning is adding the new holder for the role (it replaces the old one).
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: Any, obj: GateApprover, form: Any, change: bool) -> None:
        try:
            saved = services.gate_approver_assign(
                actor=request.user, user=obj.user, role=obj.role, business_unit=obj.business_unit
            )
            obj.pk = saved.pk
        except DomainError as exc:
            _report(request, exc)


class DelegationForm(forms.ModelForm):
    class Meta:
        model = Delegation
        fields = ("principal", "deputy", "starts_on", "ends_on", "reason")


@admin.register(Delegation)
class DelegationAdmin(ServiceCreatedAdmin):
    list_display = ("principal", "deputy", "starts_on", "ends_on", "reason", "revoked_at")
    list_filter = ("revoked_at",)
    form = DelegationForm
    actions = ("revoke",)

    def has_change_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return obj is None and bool(request.user.is_staff)

    def has_add_permission(self, request: http.HttpRequest) -> bool:
        return bool(request.user.is_staff)

    def has_view_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    def has_delete_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: Any) -> QuerySet[Delegation]:
        qs = super().get_queryset(request).select_related("principal", "deputy")
        if request.user.is_superuser or request.user.has_perm("gates.delegate", None):
            return qs
        return qs.filter(principal=request.user) | qs.filter(deputy=request.user)

    def save_model(self, request: Any, obj: Delegation, form: Any, change: bool) -> None:
        try:
            created = services.delegation_create(
                actor=request.user,
                principal=obj.principal,
                deputy=obj.deputy,
                starts_on=obj.starts_on,
                ends_on=obj.ends_on,
                reason=obj.reason,
            )
            obj.pk = created.pk
        except DomainError as exc:
            _report(request, exc)

    @admin.action(description="Revoke selected delegations")
    def revoke(self, request: Any, queryset: QuerySet[Delegation]) -> None:
        for delegation in queryset:
            try:
                services.delegation_revoke(actor=request.user, delegation=delegation)
            except DomainError as exc:
                _report(request, exc)
