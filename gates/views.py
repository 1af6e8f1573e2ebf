"""Evidence pack of one gate review: JSON for archives and tools, HTML for people (print to PDF)."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from gates.evidence_pack import evidence_pack, pack_for_people, review_for_pack
from gates.models import GateReview


def _review(request: HttpRequest, review_id: int) -> GateReview | HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    try:
        review = review_for_pack(review_id)
    except GateReview.DoesNotExist:
        raise Http404("No such review") from None
    if not request.user.has_perm("gates.export_evidence_pack", review):
        raise PermissionDenied
    return review


def evidence_pack_json(request: HttpRequest, review_id: int) -> HttpResponse:
    review = _review(request, review_id)
    if isinstance(review, HttpResponse):
        return review
    pack = evidence_pack(review=review)
    response = JsonResponse(pack, json_dumps_params={"indent": 2})
    filename = f"{review.initiative.key}-{review.gate.code}-review-{review.pk}.json"
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


def evidence_pack_html(request: HttpRequest, review_id: int) -> HttpResponse:
    review = _review(request, review_id)
    if isinstance(review, HttpResponse):
        return review
    pack = pack_for_people(evidence_pack(review=review), review=review)
    return render(request, "gates/evidence_pack.html", {"pack": pack})
