"""REST API v1: thin viewsets over the selectors (reads) and services (writes).

Every queryset is the caller's scoped one, so an object outside their scope is a 404 whether it
exists or not. Actions validate input with a serializer and make exactly one service call; a
refusal is the service's DomainError, rendered by gatekeeper.api_errors (409 with every unmet
condition).
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from typing import Any

from django.db import connections, transaction
from django.db.models import F, QuerySet
from django.urls import reverse
from django.utils.http import parse_etags
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
from api.pagination import CountedPage
from api.throttling import BatchedThrottlesMixin
from gatekeeper.compiled import CompiledRead
from gatekeeper.db import EqualsAny, ParamList
from gatekeeper.errors import DomainError, PermissionDenied, TransitionRefused
from gatekeeper.types import signed_in_user
from gates import selectors as gates_selectors
from gates import services as gates_services
from gates.evidence_pack import criterion_entry
from notifications import services as notification_services
from notifications.models import WebhookEndpoint
from programs import portfolio
from programs import selectors as programs_selectors
from programs import services as programs_services
from programs.models import Initiative, Milestone
from programs.roles import INTEGRATIONS, PMO

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
STALE = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="The object changed since the caller read it: `If-Match` named an older ETag "
    "(problem+json). Read it again and retry with the new ETag.",
    examples=[
        OpenApiExample(
            "Changed",
            value={
                "type": "https://gatekeeper.dev/problems/precondition-failed",
                "title": "Precondition failed",
                "status": 412,
                "detail": "AI-009 changed since you read it; read it again and retry.",
                "errors": {"If-Match": ['the current ETag is "3f2a…"']},
            },
        )
    ],
)
# Optimistic concurrency on the initiative and milestone writes.
CONDITIONAL_ERRORS = {**ERRORS, 412: STALE}
IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description="The ETag of the caller's last read; if the object changed since, the answer is "
    "412 and nothing is done. Without it the write goes ahead as before.",
)
ETAG = OpenApiParameter(
    "ETag",
    str,
    OpenApiParameter.HEADER,
    response=[200, 201],
    description="Version of this representation; send it back as `If-Match` on a write.",
)


class PreconditionFailed(DomainError):
    status_code = 412
    type_slug = "precondition-failed"
    title = "Precondition failed"


def etag_of(representation: Any) -> str:
    """A strong ETag: a digest of exactly what a read returns, so any visible change moves it."""
    canonical = json.dumps(representation, sort_keys=True, default=str, separators=(",", ":"))
    return '"' + hashlib.sha256(canonical.encode()).hexdigest()[:40] + '"'


def require_if_match(request: Request, current: str, what: str) -> None:
    """412 unless ``If-Match`` (when sent) names ``current``; weak tags never match (RFC 9110)."""
    header = request.headers.get("If-Match")
    if header is None:
        return
    tags = parse_etags(header)
    if "*" in tags or current in tags:
        return
    raise PreconditionFailed(
        f"{what} changed since you read it; read it again and retry.",
        errors={"If-Match": [f"the current ETag is {current}"]},
    )


def refuse_unknown_fields(data: Any, serializer_class: Any) -> None:
    """A PATCH naming a field it may not change is a 400 naming it, not a silent no-op."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["expected a JSON object"]})
    writable = set(serializer_class().fields)
    refused = sorted(str(name) for name in data if name not in writable)
    if refused:
        raise ValidationError(
            {name[:100]: ["read-only or unknown: cannot be changed here"] for name in refused}
        )


def _filtered(filterset_class: Any, request: Request, qs: QuerySet[Any]) -> QuerySet[Any]:
    filterset = filterset_class(request.query_params, queryset=qs, request=request)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    return filterset.qs  # type: ignore[no-any-return]


class ScopedViewSet(IdempotentPostMixin, BatchedThrottlesMixin, viewsets.GenericViewSet):  # type: ignore[type-arg]
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


def _list_rows(qs: QuerySet[Initiative]) -> QuerySet[Initiative, tuple[Any, ...]]:
    """``qs`` with the detail's shape, read as the list's values (its joins are the columns')."""
    return InitiativeViewSet._shaped(qs).values_list(*s.INITIATIVE_LIST_COLUMNS)


def _page_rows_by_key() -> QuerySet[Initiative, tuple[Any, ...]]:
    keys = ParamList("keys", Initiative._meta.get_field("key"))  # type: ignore[arg-type]
    return _list_rows(Initiative.objects.filter(EqualsAny(F("key"), keys)).order_by())


# The page's statement (three correlated subqueries building the references, metrics and next
# milestone) cost more CPU to build and compile than PostgreSQL spends running it; it is
# compiled once per connection, for a list of keys bound as one array.
_PAGE_ROWS_BY_KEY = CompiledRead(Initiative, _page_rows_by_key)


def _initiative_page(scope: QuerySet[Initiative], index: slice) -> list[tuple[Any, ...]]:
    """The rows (``INITIATIVE_LIST_COLUMNS``) of the page ``index`` of ``scope``, in its order."""
    if connections[scope.db].vendor != "postgresql":
        # SQLite, the embedded default, has no array parameter: one statement built per page.
        return list(_list_rows(scope)[index])
    # The page's keys in the scope's order and filters (cheap to compile), then their rows.
    keys = list(scope.values_list("key", flat=True)[index])
    rows = {row[0]: row for row in _PAGE_ROWS_BY_KEY(keys=keys)}
    # A key gone between the two reads (a deleted initiative) is left out, not an error.
    return [rows[key] for key in keys if key in rows]


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
    http_method_names = ["get", "post", "patch", "head", "options"]
    lookup_field = "key"
    lookup_value_regex = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,19}"
    filterset_class = api_filters.InitiativeFilter
    filter_backends = [
        *ScopedViewSet.filter_backends,  # type: ignore[misc]
        filters.OrderingFilter,
    ]
    ordering_fields = ["key", "name", "stage", "stage_entered_at", "updated_at", "created_at"]
    ordering = ["key"]

    @staticmethod
    def _shaped(qs: QuerySet[Initiative]) -> QuerySet[Initiative]:
        return programs_selectors.with_refs_and_metrics(
            programs_selectors.with_next_milestone(
                qs.select_related("business_unit", "business_owner", "sponsor", "delivery_lead")
            )
        )

    def scoped(self, user: Any) -> QuerySet[Initiative]:
        return self._shaped(programs_selectors.initiatives_visible_to(user))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Filtered, ordered and counted on the caller's scope alone; only the page's rows get
        # the shape's subqueries (a DISTINCT scope's count would otherwise compute them for
        # every row in it), read as plain values and represented as InitiativeSerializer would.
        scope = self.filter_queryset(programs_selectors.initiatives_visible_to(request.user))
        page = self.paginate_queryset(
            CountedPage(scope, partial(_initiative_page, scope))  # type: ignore[arg-type]
        )
        assert page is not None  # the list is always paginated
        return self.get_paginated_response(s.initiative_list_rows(page, db=scope.db))

    def _detail(self, pk: int, code: int = status.HTTP_200_OK) -> Response:
        # The caller just wrote it; a creator who isn't named on it still gets what they made.
        initiative = self.get_queryset().filter(pk=pk).first() or self._shaped(
            Initiative.objects.all()
        ).get(pk=pk)
        body = s.InitiativeSerializer(initiative).data
        headers = {"ETag": etag_of(body)}
        if code == status.HTTP_201_CREATED:
            headers["Location"] = reverse("api:initiative-detail", args=[initiative.key])
        return Response(body, status=code, headers=headers)

    @extend_schema(parameters=[ETAG])
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = s.InitiativeSerializer(self.get_object()).data
        return Response(body, headers={"ETag": etag_of(body)})

    @extend_schema(
        summary="Create an initiative (born proposed)",
        description="Business owner, sponsor, delivery lead and a risk tier other than medium "
        "are PMO's to name: anyone else naming them gets 403. Service accounts may create; they "
        "then see and act on what they created.",
        request=s.InitiativeCreateSerializer,
        responses={201: s.InitiativeSerializer, **ERRORS},
        parameters=[ETAG],
        examples=[
            OpenApiExample(
                "Create",
                request_only=True,
                value={
                    "name": "Claims triage assistant",
                    "business_unit": "claims",
                    "summary": "Route incoming claims to the right team",
                    "target_workflow": "First-notice-of-loss triage",
                },
            )
        ],
    )
    def create(self, request: Request) -> Response:
        body = s.InitiativeCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        initiative = programs_services.initiative_create(
            actor=signed_in_user(request), **body.validated_data
        )
        return self._detail(initiative.pk, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Edit an initiative's descriptive fields",
        description="Only the fields sent change. Any other field (key, stage, dates, history) "
        "is refused with a 400 naming it; the stage moves only through `transitions/`. The "
        "business owner, sponsor, delivery lead, business unit and risk tier are PMO-only (403).",
        request=s.InitiativeUpdateSerializer,
        responses={200: s.InitiativeSerializer, **CONDITIONAL_ERRORS},
        parameters=[IF_MATCH, ETAG],
        examples=[
            OpenApiExample(
                "Describe",
                request_only=True,
                value={"summary": "Route claims by severity", "health": "amber"},
            )
        ],
    )
    def partial_update(self, request: Request, key: str) -> Response:
        initiative = self.get_object()
        refuse_unknown_fields(request.data, s.InitiativeUpdateSerializer)
        body = s.InitiativeUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        require_if_match(request, etag_of(s.InitiativeSerializer(initiative).data), initiative.key)
        programs_services.initiative_update(
            initiative=initiative, actor=signed_in_user(request), changes=dict(body.validated_data)
        )
        return self._detail(initiative.pk)

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
        responses={201: s.StageTransitionSerializer, **CONDITIONAL_ERRORS},
        parameters=[IF_MATCH],
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
        require_if_match(request, etag_of(s.InitiativeSerializer(initiative).data), initiative.key)
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
    http_method_names = ["get", "post", "patch", "head", "options"]

    def scoped(self, user: Any) -> QuerySet[Any]:
        return programs_selectors.metrics_visible_to(user).order_by("initiative__key", "name", "id")

    @extend_schema(
        summary="Add a success metric to an initiative",
        request=s.MetricCreateSerializer,
        responses={201: s.SuccessMetricSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "Metric",
                request_only=True,
                value={
                    "initiative": "AI-009",
                    "name": "Claims routed without rework",
                    "unit": "%",
                    "baseline": "61.0",
                    "target": "85.0",
                    "direction": "higher",
                },
            )
        ],
    )
    def create(self, request: Request) -> Response:
        body = s.MetricCreateSerializer(
            data=request.data,
            context={"initiatives": programs_selectors.initiatives_visible_to(request.user)},
        )
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        metric = programs_services.metric_add(
            initiative=data.pop("initiative"), actor=signed_in_user(request), **data
        )
        return Response(
            s.SuccessMetricSerializer(self.get_queryset().get(pk=metric.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        summary="Edit a success metric's definition",
        description="Only the fields sent change; any other field is refused with a 400 naming "
        "it. Once G1 has passed, only PMO may move the baseline, target or direction (403).",
        request=s.MetricUpdateSerializer,
        responses={200: s.SuccessMetricSerializer, **ERRORS},
        examples=[OpenApiExample("Rename", request_only=True, value={"unit": "percent"})],
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        metric = self.get_object()
        refuse_unknown_fields(request.data, s.MetricUpdateSerializer)
        body = s.MetricUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        programs_services.metric_update(
            metric=metric, actor=signed_in_user(request), changes=dict(body.validated_data)
        )
        return Response(s.SuccessMetricSerializer(self.get_queryset().get(pk=metric.pk)).data)

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
    http_method_names = ["get", "post", "patch", "head", "options"]
    filter_backends = [
        *ScopedViewSet.filter_backends,  # type: ignore[misc]
        filters.OrderingFilter,
    ]
    ordering_fields = ["due_at", "created_at", "id"]
    ordering = ["due_at", "id"]

    def scoped(self, user: Any) -> QuerySet[Any]:
        return programs_selectors.milestones_visible_to(user).select_related("completed_by")

    def _detail(self, pk: int, code: int = status.HTTP_200_OK) -> Response:
        milestone = self.get_queryset().filter(pk=pk).first() or (
            Milestone.objects.select_related("initiative", "owner", "completed_by").get(pk=pk)
        )
        body = s.MilestoneSerializer(milestone).data
        return Response(body, status=code, headers={"ETag": etag_of(body)})

    def _unchanged_since_read(self, request: Request, milestone: Milestone) -> None:
        current = etag_of(s.MilestoneSerializer(milestone).data)
        require_if_match(request, current, f"Milestone {milestone.pk}")

    @extend_schema(parameters=[ETAG])
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = s.MilestoneSerializer(self.get_object()).data
        return Response(body, headers={"ETag": etag_of(body)})

    @extend_schema(
        summary="Add a milestone to an initiative, optionally linked to a ticket",
        description="A ticket (`external_system` + `external_key`) links to one milestone only; "
        "closing or reopening it in that system then completes or reopens the milestone.",
        request=s.MilestoneCreateSerializer,
        responses={201: s.MilestoneSerializer, **ERRORS},
        parameters=[ETAG],
        examples=[
            OpenApiExample(
                "Linked to Jira",
                request_only=True,
                value={
                    "initiative": "AI-009",
                    "title": "Pilot sign-off with the claims team",
                    "owner": "delivery.lead",
                    "due_at": "2026-12-01T17:00:00Z",
                    "external_system": "JIRA",
                    "external_key": "AIOPS-12",
                },
            )
        ],
    )
    def create(self, request: Request) -> Response:
        body = s.MilestoneCreateSerializer(
            data=request.data,
            context={"initiatives": programs_selectors.initiatives_visible_to(request.user)},
        )
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        milestone = programs_services.milestone_add(
            initiative=data.pop("initiative"), actor=signed_in_user(request), **data
        )
        return self._detail(milestone.pk, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Reschedule, retitle or reassign an open milestone",
        description="Fields not sent keep their value; any other field is refused with a 400 "
        "naming it. A new due date restarts its overdue alerts. A gate condition's date or owner "
        "is PMO's to move (403).",
        request=s.MilestoneUpdateSerializer,
        responses={200: s.MilestoneSerializer, **CONDITIONAL_ERRORS},
        parameters=[IF_MATCH, ETAG],
        examples=[
            OpenApiExample(
                "Reschedule", request_only=True, value={"due_at": "2026-12-15T17:00:00Z"}
            )
        ],
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        milestone = self.get_object()
        refuse_unknown_fields(request.data, s.MilestoneUpdateSerializer)
        body = s.MilestoneUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        self._unchanged_since_read(request, milestone)
        data = body.validated_data
        programs_services.milestone_update(
            milestone=milestone,
            actor=signed_in_user(request),
            title=data.get("title", milestone.title),
            owner=data.get("owner", milestone.owner),
            due_at=data.get("due_at", milestone.due_at),
        )
        return self._detail(milestone.pk)

    @extend_schema(
        summary="Mark a milestone done",
        request=None,
        responses={200: s.MilestoneSerializer, **CONDITIONAL_ERRORS},
        parameters=[IF_MATCH],
    )
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str) -> Response:
        milestone = self.get_object()
        self._unchanged_since_read(request, milestone)
        milestone = programs_services.milestone_complete(
            milestone=milestone, actor=signed_in_user(request)
        )
        return Response(s.MilestoneSerializer(milestone).data)

    @extend_schema(
        summary="Waive a milestone (a reason is required)",
        request=s.ReasonSerializer,
        responses={200: s.MilestoneSerializer, **CONDITIONAL_ERRORS},
        parameters=[IF_MATCH],
        examples=[OpenApiExample("Waive", request_only=True, value={"reason": "Out of scope"})],
    )
    @action(detail=True, methods=["post"])
    def waive(self, request: Request, pk: str) -> Response:
        milestone = self.get_object()
        body = s.ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self._unchanged_since_read(request, milestone)
        milestone = programs_services.milestone_waive(
            milestone=milestone, actor=signed_in_user(request), reason=body.validated_data["reason"]
        )
        return Response(s.MilestoneSerializer(milestone).data)

    @extend_schema(
        summary="Reopen a done milestone (its ticket was reopened); open already is a no-op",
        description="A waived milestone stays waived (409): that was a person's decision. Its "
        "overdue alerts start over from its due date.",
        request=s.ReopenSerializer,
        responses={200: s.MilestoneSerializer, **CONDITIONAL_ERRORS},
        parameters=[IF_MATCH],
        examples=[
            OpenApiExample(
                "Reopen", request_only=True, value={"reason": "JIRA AIOPS-12 was reopened"}
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def reopen(self, request: Request, pk: str) -> Response:
        milestone = self.get_object()
        body = s.ReopenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self._unchanged_since_read(request, milestone)
        programs_services.milestone_reopen(
            milestone=milestone, actor=signed_in_user(request), reason=body.validated_data["reason"]
        )
        return self._detail(milestone.pk)


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

    def get_object(self) -> Any:
        if self.action != "decision":
            return super().get_object()
        # The lookup only proves the caller may see the approval: the decision locks and reads
        # the rows it needs itself, and the answer is built from those. One compiled statement
        # (the scope's rule with the PMO check and the deputy's principals inside it), where
        # building the list's queryset cost more CPU than the decision's own reads.
        approval = gates_selectors.approval_visible_to(
            user=self.request.user, pk=int(self.kwargs[self.lookup_field])
        )
        if approval is None:
            raise NotFound()
        self.check_object_permissions(self.request, approval)
        return approval

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
        # The saved row as the decision locked it (review, initiative, gate and people loaded):
        # what a read would return now, without reading it again.
        return Response(s.approval_representation(decided))


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


# --- webhook subscriptions -------------------------------------------------------------------


def _manages_webhooks(user: Any) -> bool:
    # Registering an endpoint is for PMO and the service accounts the PMO set up, not for every
    # signed-in person; each endpoint is then sent the events about what its owner may see
    # (notifications.audience).
    return bool(user.is_superuser or user.groups.filter(name__in=[PMO, INTEGRATIONS]).exists())


@extend_schema_view(
    list=extend_schema(summary="Webhook endpoints: the caller's own (PMO: every one)"),
    retrieve=extend_schema(
        summary="One webhook endpoint (the secret is never shown again after creation)",
        responses={200: s.WebhookEndpointSerializer, 404: PROBLEM},
    ),
)
class WebhookEndpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Signed event subscriptions. The URL passes the same checks as in the admin (http(s)
    only, no private or loopback address); enabling and disabling go through the same services,
    so a disabled endpoint's owner is told."""

    serializer_class = s.WebhookEndpointSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scoped(self, user: Any) -> QuerySet[Any]:
        qs = WebhookEndpoint.objects.select_related("owner").order_by("name", "id")
        if user.is_superuser or user.groups.filter(name=PMO).exists():
            return qs
        return qs.filter(owner=user)

    @extend_schema(
        summary="Subscribe a receiver to events (PMO and service accounts)",
        description="The answer carries the signing `secret` (Standard Webhooks, `whsec_…`) "
        "this once; store it on the receiver. Private, loopback and non-http(s) URLs are "
        "refused with a 400. The endpoint is sent the subscribed events about the initiatives "
        "its owner (the caller) may see: a service account's are those of its units and those "
        "it created.",
        request=s.WebhookEndpointWriteSerializer,
        responses={201: s.WebhookEndpointCreatedSerializer, **ERRORS},
        examples=[
            OpenApiExample(
                "Subscribe",
                request_only=True,
                value={
                    "name": "Jira automation",
                    "url": "https://hooks.example.com/gatekeeper",
                    "event_types": ["milestone.*", "initiative.stage_changed"],
                },
            )
        ],
    )
    def create(self, request: Request) -> Response:
        if not _manages_webhooks(request.user):
            raise PermissionDenied(f"{request.user} may not register webhook endpoints")
        body = s.WebhookEndpointWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = WebhookEndpoint(owner=signed_in_user(request), **body.validated_data)
        endpoint.full_clean()  # the model's own checks, as in the admin: scheme, address, types
        endpoint.save()
        return Response(
            s.WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        summary="Change a webhook endpoint, or disable/re-enable it",
        description="Only the fields sent change; any other field (the secret included) is "
        "refused with a 400 naming it. `is_active: false` disables it and tells its owner.",
        request=s.WebhookEndpointUpdateSerializer,
        responses={200: s.WebhookEndpointSerializer, **ERRORS},
        examples=[OpenApiExample("Disable", request_only=True, value={"is_active": False})],
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        endpoint = self.get_object()
        if not _manages_webhooks(request.user):
            raise PermissionDenied(f"{request.user} may not change webhook endpoints")
        refuse_unknown_fields(request.data, s.WebhookEndpointUpdateSerializer)
        body = s.WebhookEndpointUpdateSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        active = changes.pop("is_active", None)
        with transaction.atomic():
            if changes:
                for name, value in changes.items():
                    setattr(endpoint, name, value)
                endpoint.full_clean()
                endpoint.save(update_fields=[*changes, "updated_at"])
            if active is False:
                notification_services.endpoint_disable(
                    endpoint_id=endpoint.pk, reason=f"was disabled by {request.user}"
                )
            elif active is True:
                notification_services.endpoint_enable(endpoint_id=endpoint.pk)
        return Response(s.WebhookEndpointSerializer(self.get_queryset().get(pk=endpoint.pk)).data)

    @extend_schema(
        summary="Delete a webhook endpoint (nothing more is sent to it)",
        request=None,
        responses={204: None, 401: PROBLEM, 404: PROBLEM},
    )
    def destroy(self, request: Request, pk: str) -> Response:
        self.get_object().delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class NotFoundView(APIView):
    """Any other path under /api/: a problem+json 404 instead of Django's HTML page."""

    permission_classes: list[Any] = []
    authentication_classes: list[Any] = []
    schema = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        raise NotFound("No such endpoint.")


class PortfolioSummaryView(BatchedThrottlesMixin, APIView):
    """Counts over the initiatives the caller may see (PMO: all)."""

    @extend_schema(
        summary="Portfolio summary: by stage and business unit, overdue, stalled, time in stage, "
        "pilot-to-operations conversion",
        responses={200: s.PortfolioSummarySerializer, 401: PROBLEM},
    )
    def get(self, request: Request) -> Response:
        summary = portfolio.portfolio_summary(user=request.user)
        return Response(s.PortfolioSummarySerializer(summary).data)
