"""REST API v1: thin viewsets over the selectors (reads) and services (writes).

Every queryset is the caller's scoped one, so an object outside their scope is a 404 whether it
exists or not. Actions validate input with a serializer and make exactly one service call; a
refusal is the service's DomainError, rendered by gatekeeper.api_errors (409 with every unmet
condition).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import filters, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import filters as api_filters
from api import serializers as s
from api.idempotency import IdempotentPostMixin
from gatekeeper.errors import TransitionRefused
from gatekeeper.types import signed_in_user
from gates import selectors as gates_selectors
from gates import services as gates_services
from gates.evidence_pack import criterion_entry
from programs import portfolio
from programs import selectors as programs_selectors
from programs import services as programs_services
from programs.models import ExternalReference, Initiative

PROBLEM = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="application/problem+json (RFC 9457): type, title, status, detail, errors",
)
REFUSED = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="Refused (problem+json): `errors.conditions` lists every unmet condition, or "
    "the object changed since the caller read it.",
    examples=[
        OpenApiExample(
            "Transition refused",
            value={
                "type": "https://gatekeeper.dev/problems/transition-refused",
                "title": "Transition refused",
                "status": 409,
                "detail": "AI-009 cannot start pilot from 'proposed'",
                "errors": {"conditions": ["the gate into pilot is not approved"]},
            },
        )
    ],
)
ERRORS = {400: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: REFUSED}


def _filtered(filterset_class: Any, request: Request, qs: QuerySet[Any]) -> QuerySet[Any]:
    filterset = filterset_class(request.query_params, queryset=qs, request=request)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    return filterset.qs  # type: ignore[no-any-return]


class ScopedViewSet(IdempotentPostMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
    """Lists and objects come from ``scoped(user)``; nothing outside it is ever looked up.
    Every POST takes an Idempotency-Key (api.idempotency)."""

    lookup_value_regex = r"[0-9]+"

    def scoped(self, user: Any) -> QuerySet[Any]:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no caller
            return self.serializer_class.Meta.model.objects.none()  # type: ignore[union-attr]
        return self.scoped(self.request.user)


# --- initiatives ------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List initiatives visible to the caller",
        parameters=[
            OpenApiParameter("ordering", str, description="e.g. key, -updated_at, stage_entered_at")
        ],
    ),
    retrieve=extend_schema(
        summary="One initiative by key", responses={200: s.InitiativeSerializer, 404: PROBLEM}
    ),
)
class InitiativeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.InitiativeSerializer
    lookup_field = "key"
    lookup_value_regex = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,19}"
    filterset_class = api_filters.InitiativeFilter
    filter_backends = [
        *ScopedViewSet.filter_backends,  # type: ignore[misc]
        filters.OrderingFilter,
    ]
    ordering_fields = ["key", "name", "stage", "stage_entered_at", "updated_at", "created_at"]
    ordering = ["key"]

    def scoped(self, user: Any) -> QuerySet[Initiative]:
        return (
            programs_selectors.initiatives_visible_to(user)
            .select_related("sponsor", "delivery_lead")
            .prefetch_related(
                Prefetch(
                    "external_refs", queryset=ExternalReference.objects.order_by("system", "key")
                )
            )
        )

    @extend_schema(
        methods=["GET"],
        summary="What the caller may do to this initiative now",
        description="Each move out of the current stage, with every unmet condition; a move the "
        "caller has no right to make is listed with `permitted: false` and a 'you may not' reason.",
        responses={200: s.TransitionOptionSerializer(many=True), 404: PROBLEM},
        examples=[
            OpenApiExample(
                "From pilot",
                response_only=True,
                value=[
                    {
                        "name": "start_integration",
                        "target": "integration",
                        "permitted": True,
                        "allowed": False,
                        "unmet": ["the gate into integration is not approved"],
                    },
                    {
                        "name": "hold",
                        "target": "on_hold",
                        "permitted": True,
                        "allowed": True,
                        "unmet": [],
                    },
                ],
            )
        ],
    )
    @extend_schema(
        methods=["POST"],
        summary="Perform one transition",
        request=s.TransitionRequestSerializer,
        responses={201: s.StageTransitionSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "Hold",
                request_only=True,
                value={"transition": "hold", "reason": "Budget review", "expected_stage": "pilot"},
            )
        ],
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def transitions(self, request: Request, key: str) -> Response:
        initiative = self.get_object()
        if request.method == "GET":
            options = programs_selectors.transitions_for(initiative=initiative, user=request.user)
            return Response(s.TransitionOptionSerializer(options, many=True).data)
        body = s.TransitionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        name, reason = data["transition"], data["reason"]
        common = {
            "initiative": initiative,
            "actor": signed_in_user(request),
            "expected_stage": data.get("expected_stage"),
        }
        if name.startswith("start_"):
            stage = data.get("expected_stage") or initiative.stage
            if Initiative.FORWARD.get(stage) != name:
                raise TransitionRefused(
                    f"{initiative.key} cannot {name.replace('_', ' ')} from '{stage}'",
                    unmet=[f"'{name}' is not possible from stage '{stage}'"],
                )
            record = programs_services.initiative_advance(reason=reason, **common)
        elif name == "hold":
            record = programs_services.initiative_hold(reason=reason, **common)
        elif name == "resume":
            record = programs_services.initiative_resume(reason=reason, **common)
        elif name == "cancel":
            record = programs_services.initiative_cancel(reason=reason, **common)
        else:
            record = programs_services.initiative_retire(reason=reason, **common)
        return Response(s.StageTransitionSerializer(record).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Transition history (append-only)",
        parameters=[OpenApiParameter("since", OpenApiTypes.DATETIME)],
        responses={200: s.StageTransitionSerializer(many=True), 404: PROBLEM},
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def history(self, request: Request, key: str) -> Response:
        initiative = self.get_object()
        qs = programs_selectors.stage_transitions_visible_to(request.user).filter(
            initiative=initiative
        )
        qs = _filtered(api_filters.StageTransitionFilter, request, qs).order_by("created_at", "id")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(s.StageTransitionSerializer(page, many=True).data)


# --- metrics and milestones ------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Success metrics of the initiatives visible to the caller"),
    retrieve=extend_schema(
        summary="One success metric", responses={200: s.SuccessMetricSerializer, 404: PROBLEM}
    ),
)
class MetricViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.SuccessMetricSerializer
    filterset_class = api_filters.MetricFilter

    def scoped(self, user: Any) -> QuerySet[Any]:
        return programs_selectors.metrics_visible_to(user).order_by("initiative__key", "name", "id")

    @extend_schema(
        methods=["GET"],
        summary="Readings of a metric, oldest first",
        parameters=[OpenApiParameter("measured_since", OpenApiTypes.DATETIME)],
        responses={200: s.MetricReadingSerializer(many=True), 404: PROBLEM},
    )
    @extend_schema(
        methods=["POST"],
        summary="Record a reading",
        request=s.MetricReadingRequestSerializer,
        responses={201: s.MetricReadingSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "Reading",
                request_only=True,
                value={"value": "57.5", "measured_at": "2026-11-20T09:00:00Z"},
            )
        ],
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[])
    def readings(self, request: Request, pk: str) -> Response:
        metric = self.get_object()
        if request.method == "GET":
            qs = programs_selectors.readings_visible_to(request.user).filter(metric=metric)
            qs = _filtered(api_filters.ReadingFilter, request, qs).order_by("measured_at", "id")
            page = self.paginate_queryset(qs)
            return self.get_paginated_response(s.MetricReadingSerializer(page, many=True).data)
        body = s.MetricReadingRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reading = programs_services.metric_record_value(
            metric=metric,
            actor=signed_in_user(request),
            value=body.validated_data["value"],
            measured_at=body.validated_data.get("measured_at"),
        )
        return Response(s.MetricReadingSerializer(reading).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="Milestones visible to the caller"),
    retrieve=extend_schema(
        summary="One milestone", responses={200: s.MilestoneSerializer, 404: PROBLEM}
    ),
)
class MilestoneViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.MilestoneSerializer
    filterset_class = api_filters.MilestoneFilter
    filter_backends = [
        *ScopedViewSet.filter_backends,  # type: ignore[misc]
        filters.OrderingFilter,
    ]
    ordering_fields = ["due_at", "created_at", "id"]
    ordering = ["due_at", "id"]

    def scoped(self, user: Any) -> QuerySet[Any]:
        return programs_selectors.milestones_visible_to(user).select_related("completed_by")

    @extend_schema(
        summary="Mark a milestone done",
        request=None,
        responses={200: s.MilestoneSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str) -> Response:
        milestone = programs_services.milestone_complete(
            milestone=self.get_object(), actor=signed_in_user(request)
        )
        return Response(s.MilestoneSerializer(milestone).data)

    @extend_schema(
        summary="Waive a milestone (a reason is required)",
        request=s.ReasonSerializer,
        responses={200: s.MilestoneSerializer, **ERRORS},
        examples=[OpenApiExample("Waive", request_only=True, value={"reason": "Out of scope"})],
    )
    @action(detail=True, methods=["post"])
    def waive(self, request: Request, pk: str) -> Response:
        milestone = self.get_object()
        body = s.ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        milestone = programs_services.milestone_waive(
            milestone=milestone, actor=signed_in_user(request), reason=body.validated_data["reason"]
        )
        return Response(s.MilestoneSerializer(milestone).data)


# --- gates ------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Gate templates (every version)"),
    retrieve=extend_schema(
        summary="One gate template version", responses={200: s.GateTemplateSerializer, 404: PROBLEM}
    ),
)
class GateTemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Published criteria and approver roles: the same for every signed-in caller."""

    serializer_class = s.GateTemplateSerializer

    def scoped(self, user: Any) -> QuerySet[Any]:
        return gates_selectors.gate_templates_published().order_by("gate__code", "-version")


@extend_schema_view(
    list=extend_schema(summary="Gate reviews visible to the caller"),
    retrieve=extend_schema(
        summary="One gate review with its checklist evaluated now",
        responses={200: s.GateReviewDetailSerializer, 404: PROBLEM},
    ),
)
class GateReviewViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.GateReviewSerializer
    filterset_class = api_filters.GateReviewFilter

    def scoped(self, user: Any) -> QuerySet[Any]:
        return gates_selectors.reviews_visible_to(user=user)

    def _detail(self, review: Any, code: int = status.HTTP_200_OK) -> Response:
        checklist = [criterion_entry(c) for c in gates_selectors.review_checklist(review=review)]
        body = s.GateReviewDetailSerializer(review, context={"checklist": checklist}).data
        return Response(body, status=code)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._detail(self.get_object())

    @extend_schema(
        summary="Open a draft review of the gate out of the initiative's current stage",
        request=s.ReviewOpenSerializer,
        responses={201: s.GateReviewDetailSerializer, **ERRORS},
        examples=[OpenApiExample("Open", request_only=True, value={"initiative": "AI-009"})],
    )
    def create(self, request: Request) -> Response:
        body = s.ReviewOpenSerializer(
            data=request.data,
            context={"initiatives": programs_selectors.initiatives_visible_to(request.user)},
        )
        body.is_valid(raise_exception=True)
        review = gates_services.gate_review_open(
            initiative=body.validated_data["initiative"], actor=signed_in_user(request)
        )
        return self._detail(self.get_queryset().get(pk=review.pk), status.HTTP_201_CREATED)

    @extend_schema(
        summary="Submit the review for decision",
        request=None,
        responses={200: s.GateReviewDetailSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk: str) -> Response:
        review = gates_services.gate_review_submit(
            review=self.get_object(), actor=signed_in_user(request)
        )
        return self._detail(self.get_queryset().get(pk=review.pk))

    @extend_schema(
        summary="Withdraw a draft or submitted review",
        request=s.ReasonSerializer,
        responses={200: s.GateReviewDetailSerializer, **ERRORS},
        examples=[OpenApiExample("Withdraw", request_only=True, value={"reason": "Scope changed"})],
    )
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: str) -> Response:
        review = self.get_object()
        body = s.ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        gates_services.gate_review_withdraw(
            review=review, actor=signed_in_user(request), reason=body.validated_data["reason"]
        )
        return self._detail(self.get_queryset().get(pk=review.pk))

    @extend_schema(
        summary="Attach evidence to a criterion of a draft review",
        request=s.EvidenceAttachSerializer,
        responses={201: s.EvidenceSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "Link",
                request_only=True,
                value={"criterion": "pilot-scope", "url": "https://wiki.example.com/AI-009/scope"},
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def evidence(self, request: Request, pk: str) -> Response:
        review = self.get_object()
        body = s.EvidenceAttachSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        item = gates_services.evidence_attach(
            review=review, actor=signed_in_user(request), **body.validated_data
        )
        return Response(s.EvidenceSerializer(item).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="Approvals of the reviews visible to the caller"),
    retrieve=extend_schema(
        summary="One approval", responses={200: s.ApprovalSerializer, 404: PROBLEM}
    ),
)
class ApprovalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.ApprovalSerializer
    filterset_class = api_filters.ApprovalFilter

    def scoped(self, user: Any) -> QuerySet[Any]:
        return gates_selectors.approvals_visible_to(user=user).order_by("due_at", "id")

    @extend_schema(
        summary="Approve or reject (the approver or their deputy; never the submitter or a "
        "service account)",
        request=s.DecisionSerializer,
        responses={200: s.ApprovalSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "Conditional Go",
                request_only=True,
                value={
                    "decision": "approve",
                    "comment": "Go, once the runbook is reviewed",
                    "outcome": "conditional_go",
                    "conditions": [
                        {
                            "title": "Runbook reviewed by operations",
                            "owner": "delivery.lead",
                            "due_at": "2026-12-15T17:00:00Z",
                        }
                    ],
                },
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def decision(self, request: Request, pk: str) -> Response:
        approval = self.get_object()
        body = s.DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        decided = gates_services.approval_decide(
            approval=approval,
            actor=signed_in_user(request),
            decision=data["decision"],
            comment=data["comment"],
            outcome=data.get("outcome") or None,
            conditions=[gates_services.ConditionSpec(**c) for c in data["conditions"]],
        )
        decided = self.get_queryset().get(pk=decided.pk)
        return Response(s.ApprovalSerializer(decided).data)


@extend_schema_view(
    list=extend_schema(summary="Evidence attached to the reviews visible to the caller"),
    retrieve=extend_schema(
        summary="One piece of evidence", responses={200: s.EvidenceSerializer, 404: PROBLEM}
    ),
)
class EvidenceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    serializer_class = s.EvidenceSerializer
    filterset_class = api_filters.EvidenceFilter

    def scoped(self, user: Any) -> QuerySet[Any]:
        return gates_selectors.evidence_visible_to(user=user).order_by(
            "review_id", "attached_at", "id"
        )


class NotFoundView(APIView):
    """Any other path under /api/: a problem+json 404 instead of Django's HTML page."""

    permission_classes: list[Any] = []
    authentication_classes: list[Any] = []
    schema = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        raise NotFound("No such endpoint.")


class PortfolioSummaryView(APIView):
    """Counts over the initiatives the caller may see (PMO: all)."""

    @extend_schema(
        summary="Portfolio summary: by stage and business unit, overdue, stalled, time in stage, "
        "pilot-to-operations conversion",
        responses={200: s.PortfolioSummarySerializer, 401: PROBLEM},
    )
    def get(self, request: Request) -> Response:
        summary = portfolio.portfolio_summary(user=request.user)
        return Response(s.PortfolioSummarySerializer(summary).data)
