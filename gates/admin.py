"""Admin for gates: templates (saving writes a new version), reviews with their checklist, the
approver's inbox with approve/reject, approver roles and delegations.

Every write goes through gates.services, so the admin keeps separation of duties, writes the
review log and emits the same outbox events as any other caller.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import http
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from gatekeeper.admin_utils import (
    EmptyStateMixin,
    ReadOnlyInline,
    SelectorListMixin,
    ServiceAdminMixin,
    ViewOnlyMixin,
    report_refusal,
)
from gatekeeper.errors import DomainError
from gates import selectors, services
from gates.forms import (
    ConditionFormSet,
    DecisionForm,
    DelegationForm,
    EvidenceForm,
    GateApproverForm,
    OpenReviewForm,
    RiskTiersForm,
)
from gates.models import (
    Approval,
    ApprovalInbox,
    ApprovalStatus,
    ApproverRule,
    Criterion,
    CriterionKind,
    Delegation,
    Evidence,
    Gate,
    GateApprover,
    GateReview,
    GateTemplate,
    ReviewEvent,
    ReviewState,
)
from programs.models import Initiative


def _may_prepare_reviews(request: Any) -> bool:
    """Whether the user may open or submit a review for any initiative at all: only then do the
    review list's Add button and submit action mean something to them. Asked by every admin
    page's menu, so kept on the request."""
    cached = getattr(request, "_gatekeeper_may_prepare_reviews", None)
    if cached is None:
        cached = bool(request.user.is_staff) and (
            selectors.initiatives_user_may_review(user=request.user).exists()
        )
        request._gatekeeper_may_prepare_reviews = cached
    return cached


# --- gates and templates -----------------------------------------------------------------


@admin.register(Gate)
class GateAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "from_stage", "to_stage", "current_version")
    readonly_fields = ("code", "name", "from_stage", "to_stage", "current_version")

    @admin.display(description="Current template")
    def current_version(self, obj: Gate) -> str:
        try:
            template = selectors.gate_template_current(gate=obj)
        except LookupError:
            return "—"
        url = reverse("admin:gates_gatetemplate_change", args=[template.pk])
        return format_html('<a href="{}">v{}</a>', url, template.version)

    def has_add_permission(self, request: http.HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False


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
class GateTemplateAdmin(ServiceAdminMixin, admin.ModelAdmin):
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
        self.run_service(
            request,
            lambda: services.gate_template_revise(
                gate=form.instance.gate,
                actor=request.user,
                criteria=[spec for _, spec in sorted(criteria, key=lambda c: c[0])],
                approvers=approvers,
                quorum_policy=data["quorum_policy"],
                quorum_n=data.get("quorum_n"),
                decision_sla_business_days=data["decision_sla_business_days"],
                expected_stage_days=data.get("expected_stage_days"),
                note=data.get("note") or "",
            ),
            form=form,
        )

    def construct_change_message(
        self, request: Any, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        # The formsets were never saved (the rows are immutable), so describe the new version.
        new = self.service_result(request)
        return f"Revised as {new}" if new is not None else ""

    def log_change(self, request: Any, obj: Any, message: Any) -> Any:
        # Logged against the new version, which is what this save created.
        return super().log_change(request, self.service_result(request), message)

    def response_change(self, request: Any, obj: Any) -> http.HttpResponse:
        if self.refused(request):
            return super().response_change(request, obj)
        new = self.service_result(request)
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


@admin.register(GateReview)
class GateReviewAdmin(SelectorListMixin, EmptyStateMixin, ServiceAdminMixin, admin.ModelAdmin):
    empty_message = "No gate review concerns you yet."
    list_select_related = ("template__gate",)

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
    # Only the gates of reviews the user may see (the filter reads the admin's queryset).
    list_filter = ("state", ("gate", admin.RelatedOnlyFieldListFilter), "outcome")
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
        return _may_prepare_reviews(request)

    def get_actions(self, request: Any) -> Any:
        actions = super().get_actions(request)
        if "submit_reviews" in actions and not _may_prepare_reviews(request):
            del actions["submit_reviews"]
        return actions

    def has_view_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    def has_change_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        # Read-only page: a review changes only through its actions (services).
        return False

    def has_delete_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "initiative":
            kwargs["queryset"] = selectors.initiatives_user_may_review(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: Any, obj: GateReview, form: Any, change: bool) -> None:
        initiative: Initiative = form.cleaned_data["initiative"]
        self.run_service(
            request,
            lambda: services.gate_review_open(initiative=initiative, actor=request.user),
            form=form,
        )

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        pass  # a new review has no inlines; gate_review_open wrote all there is

    def log_addition(self, request: Any, obj: Any, message: Any) -> Any:
        # Logged against the review the service opened (``obj`` is the unsaved form instance).
        return super().log_addition(request, self.service_result(request), message)

    def response_add(self, request: Any, obj: Any, post_url_continue: Any = None) -> Any:
        if self.refused(request):
            return super().response_add(request, obj, post_url_continue)
        review = self.service_result(request)
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
                format_html_join("", '<div class="help">{}</div>', ((line,) for line in s.details)),
            )
            for s in selectors.review_checklist(review=obj, with_details=True)
        ]
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>", rows
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
                report_refusal(request, exc)

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
        form = EvidenceForm(request.POST or None, criteria=choices)
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
                report_refusal(request, exc, form=form)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Attach evidence to {review}",
            "review": review,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/gates/attach_evidence.html", context)


# --- the approvals inbox -----------------------------------------------------------------


def _condition_rows(formset: Any) -> list[Any]:
    """The rows that say anything, in the order their conditions go to the service."""
    return [f for f in formset.forms if f.has_changed() and f.cleaned_data]


def _condition_spec(row: Any) -> services.ConditionSpec:
    return services.ConditionSpec(
        title=row.cleaned_data["title"].strip(),
        owner=row.cleaned_data["owner"],
        due_at=row.cleaned_data["due_at"],
    )


DECIDED = "decided"


class InboxViewFilter(admin.SimpleListFilter):
    """Two views of the inbox: what waits for the user (the default) and what they decided."""

    title = "status"
    parameter_name = "view"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [(DECIDED, "Decided by me")]

    def choices(self, changelist: Any) -> Any:
        yield {
            "selected": self.value() != DECIDED,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Waiting for me",
        }
        yield {
            "selected": self.value() == DECIDED,
            "query_string": changelist.get_query_string({self.parameter_name: DECIDED}),
            "display": "Decided by me",
        }

    def queryset(self, request: Any, queryset: QuerySet[Approval]) -> QuerySet[Approval]:
        return queryset  # ApprovalInboxAdmin.get_queryset already chose the view's rows


def _decided_view(request: Any) -> bool:
    return request.GET.get(InboxViewFilter.parameter_name) == DECIDED


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def _deadline(due_at: dt.datetime, now: dt.datetime) -> str:
    """A deadline as a person reads it: "overdue by 3 days" (red), "due today", "due in 2 days"."""
    late_by = (timezone.localdate(now) - timezone.localdate(due_at)).days
    if due_at < now:
        text = f"overdue by {_days(late_by)}" if late_by > 0 else "overdue since today"
        return format_html('<strong class="overdue" style="color: #ba2121;">{}</strong>', text)
    if late_by == 0:
        return "due today"
    return f"due in {_days(-late_by)}"


def _role_list(labels: list[str]) -> str:
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def what_happens_next(approval: Approval) -> str:
    """After a decision: whom the gate still waits for, or what the decided review did."""
    review = GateReview.objects.select_related("gate", "initiative").get(pk=approval.review_id)
    gate, initiative = review.gate.code, review.initiative
    if review.state == ReviewState.SUBMITTED:
        approvals = list(selectors.review_approvals(review=review))
        approved = sum(a.status == ApprovalStatus.APPROVED for a in approvals)
        waiting = [a.get_role_display() for a in approvals if a.status == ApprovalStatus.PENDING]
        approvers = "approver" if len(waiting) == 1 else "approvers"
        return (
            f"the {gate} gate still waits for the {_role_list(waiting)} {approvers} "
            f"({approved} of {len(approvals)} approved)."
        )
    stage = initiative.get_stage_display()
    if review.state == ReviewState.APPROVED and initiative.stage == review.gate.to_stage:
        conditional = " with conditions" if review.outcome == "conditional_go" else ""
        return f"{gate} approved{conditional}: {initiative.key} moved to {stage}."
    outcome = f" ({review.get_outcome_display()})" if review.outcome else ""
    return f"{gate} {review.get_state_display().lower()}{outcome}: {initiative.key} is now {stage}."


@admin.register(ApprovalInbox)
class ApprovalInboxAdmin(EmptyStateMixin, ViewOnlyMixin, admin.ModelAdmin):
    """Pending approvals the signed-in user can decide (their own and their principals'), the
    overdue ones first; the "Decided by me" view lists what they decided."""

    list_display = (
        "initiative",
        "gate",
        "role",
        "approver",
        "submitted_by",
        "due_at",
        "deadline",
        "decide",
    )
    decided_list_display = (
        "initiative",
        "gate",
        "role",
        "approver",
        "decision",
        "decided_at",
        "evidence_pack",
    )
    list_display_links = None
    list_filter = (InboxViewFilter,)
    show_facets = admin.ShowFacets.NEVER

    def changelist_view(self, request: Any, extra_context: Any = None) -> Any:
        title = "Approvals you decided" if _decided_view(request) else "Approvals waiting for you"
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    def get_queryset(self, request: Any) -> QuerySet[Approval]:
        if _decided_view(request):
            return selectors.approvals_decided_by(user=request.user)
        return selectors.approvals_inbox(user=request.user)

    def get_ordering(self, request: Any) -> Any:
        # Earliest deadline first, which puts every overdue approval at the top.
        return ("-decided_at", "-id") if _decided_view(request) else ("due_at", "id")

    def get_list_display(self, request: Any) -> Any:
        return self.decided_list_display if _decided_view(request) else self.list_display

    def get_empty_message(self, request: Any) -> str:
        if _decided_view(request):
            return "You have not decided any approval yet."
        return "Nothing waits for your decision."

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

    @admin.display(description="Deadline", ordering="due_at")
    def deadline(self, obj: Approval) -> str:
        return _deadline(obj.due_at, timezone.now())

    @admin.display(description="Decision")
    def decision(self, obj: Approval) -> str:
        outcome = f" ({obj.get_outcome_display()})" if obj.outcome else ""
        behalf = f", for {obj.approver}" if obj.on_behalf else ""
        return f"{obj.get_status_display()}{outcome}{behalf}"

    @admin.display(description="")
    def evidence_pack(self, obj: Approval) -> str:
        url = reverse("gates:evidence-pack-html", args=[obj.review_id])
        return format_html('<a href="{}">Evidence pack</a>', url)

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
        approval = get_object_or_404(selectors.approvals_inbox(user=request.user), pk=approval_id)
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
            # Conditions on a rejection go to the service too: it refuses them rather than
            # dropping silently what the approver typed.
            rows = _condition_rows(conditions) if sent_conditions else []
            try:
                services.approval_decide(
                    approval=approval,
                    actor=request.user,
                    decision=data["decision"],
                    comment=data["comment"],
                    outcome=data["outcome"] or None,
                    conditions=[_condition_spec(row) for row in rows],
                )
                next_step = what_happens_next(approval)
                joiner = "; " if next_step.startswith("the ") else ". "
                messages.success(request, f"Recorded your decision{joiner}{next_step}")
                return redirect("admin:gates_approvalinbox_changelist")
            except DomainError as exc:
                report_refusal(request, exc, form=form, rows={"conditions": rows})
        review = approval.review
        initiative = review.initiative
        initiative_url = (
            reverse("admin:programs_initiative_change", args=[initiative.pk])
            if request.user.has_perm("programs.view_initiative", initiative)
            else None
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Decide: {review}",
            "approval": approval,
            "review": review,
            "initiative_url": initiative_url,
            "deadline": _deadline(approval.due_at, timezone.now()),
            "checklist": selectors.review_checklist(review=review, with_details=True),
            "others": selectors.review_approvals(review=review),
            "form": form,
            "conditions": conditions,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/gates/approval_decide.html", context)


# --- approver roles and delegation --------------------------------------------------------


@admin.register(GateApprover)
class GateApproverAdmin(EmptyStateMixin, ServiceAdminMixin, admin.ModelAdmin):
    empty_message = "Nobody holds a gate role yet: add who approves for each role."
    form = GateApproverForm
    list_display = ("role", "business_unit", "user")
    list_filter = ("role", "business_unit")

    def has_change_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        # Reassigning is adding the new holder for the role (it replaces the old one).
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: Any, obj: GateApprover, form: Any, change: bool) -> None:
        saved = self.run_service(
            request,
            lambda: services.gate_approver_assign(
                actor=request.user, user=obj.user, role=obj.role, business_unit=obj.business_unit
            ),
            form=form,
        )
        if saved is not None:
            obj.pk = saved.pk


@admin.register(Delegation)
class DelegationAdmin(EmptyStateMixin, ServiceAdminMixin, admin.ModelAdmin):
    empty_message = "No delegation names you."
    list_display = ("principal", "deputy", "starts_on", "ends_on", "reason", "revoked_at")
    list_filter = ("revoked_at",)
    form = DelegationForm
    actions = ("revoke",)

    def has_change_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return obj is None and bool(request.user.is_staff)

    def has_add_permission(self, request: Any) -> bool:
        # Only someone approvals can come to (or who delegates for others) has anything to
        # hand to a deputy.
        user = request.user
        return bool(user.is_staff) and (
            user.has_perm("gates.delegate", None) or selectors.may_receive_approvals(user=user)
        )

    def get_actions(self, request: Any) -> Any:
        actions = super().get_actions(request)
        user = request.user
        # Revoking is the principal's (or PMO's) call; a deputy only sees theirs.
        if "revoke" in actions and not (
            user.has_perm("gates.delegate", None)
            or selectors.delegations_visible_to(user=user).filter(principal=user).exists()
        ):
            del actions["revoke"]
        return actions

    def has_view_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff)

    def has_delete_permission(self, request: http.HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: Any) -> QuerySet[Delegation]:
        return selectors.delegations_visible_to(user=request.user)

    def save_model(self, request: Any, obj: Delegation, form: Any, change: bool) -> None:
        created = self.run_service(
            request,
            lambda: services.delegation_create(
                actor=request.user,
                principal=obj.principal,
                deputy=obj.deputy,
                starts_on=obj.starts_on,
                ends_on=obj.ends_on,
                reason=obj.reason,
            ),
            form=form,
        )
        if created is not None:
            obj.pk = created.pk

    @admin.action(description="Revoke selected delegations")
    def revoke(self, request: Any, queryset: QuerySet[Delegation]) -> None:
        for delegation in queryset:
            try:
                services.delegation_revoke(actor=request.user, delegation=delegation)
            except DomainError as exc:
                report_refusal(request, exc)
