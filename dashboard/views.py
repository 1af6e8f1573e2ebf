"""The PMO portfolio dashboard and its CSV export (PMO and superusers only).

Thin views: the figures come from dashboard.selectors (which reads through programs.portfolio
and gates.portfolio); the page is the admin's look (admin/base_site.html) with server-side SVG.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import wraps
from typing import Any

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify

from dashboard import charts
from dashboard.forms import PortfolioFilterForm
from dashboard.rules import VIEW_PORTFOLIO
from dashboard.selectors import business_units, dashboard_build, portfolio_with_causes
from gatekeeper.types import signed_in_user
from programs.portfolio import PATH_STAGES, InitiativeRow, PortfolioFilters
from programs.stages import ACTIVE_STAGES, Stage

View = Callable[..., HttpResponseBase]


def pmo_only(view: View) -> View:
    """Anonymous: to the admin login and back. Signed in without the right: 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not request.user.has_perm(VIEW_PORTFOLIO):
            raise PermissionDenied("The portfolio dashboard is for the PMO.")
        return view(request, *args, **kwargs)

    return wrapper


def _filter_form(request: HttpRequest) -> PortfolioFilterForm:
    return PortfolioFilterForm(request.GET, units=business_units())


def _chrome(request: HttpRequest) -> dict[str, Any]:
    """The admin's page frame (``admin.site.each_context``) without its app sidebar: the menu
    asks every app's permissions and whether the user may add initiatives and reviews, six
    queries on every load; the dashboard links the admin instead (its own nav)."""
    site = admin.site
    script_name = request.META["SCRIPT_NAME"]
    return {
        "site_title": site.site_title,
        "site_header": site.site_header,
        "site_url": script_name if site.site_url == "/" and script_name else site.site_url,
        "has_permission": site.has_permission(request),
        "available_apps": [],
        "is_popup": False,
        "is_nav_sidebar_enabled": False,
    }


@pmo_only
def portfolio(request: HttpRequest) -> HttpResponse:
    # The unit's choices come with the panels (one statement): the risk tier and stage are
    # checked first, the unit by the query itself (dashboard_scope), then by the form below.
    filters = replace(
        PortfolioFilterForm(request.GET, units=[]).filters(),
        business_unit=request.GET.get("unit") or "",
    )
    data = dashboard_build(user=signed_in_user(request), filters=filters)
    form = PortfolioFilterForm(request.GET, units=data.units)
    form.is_valid()
    matrix_stages = [s for s in Stage.values if any(c[s] for c in data.matrix.values())]
    flows = [*data.flow.by_unit, data.flow.overall]
    context = {
        **_chrome(request),
        "title": "Portfolio dashboard",
        "form": form,
        "d": data,
        "path_stages": [(s, Stage(s).label) for s in PATH_STAGES],
        "active_stages": [(s, Stage(s).label) for s in ACTIVE_STAGES],
        "side_stages": [
            (Stage(s).label, data.funnel[s]) for s in Stage.values if s not in PATH_STAGES
        ],
        "matrix_stages": [(s, Stage(s).label) for s in matrix_stages],
        "matrix_rows": [
            (unit, [cells[s] for s in matrix_stages], sum(cells.values()))
            for unit, cells in data.matrix.items()
        ],
        "flow_rows": [
            (
                flow.business_unit or "All units",
                flow,
                [(flow.median_days[s], flow.stays[s]) for s in ACTIVE_STAGES],
            )
            for flow in flows
        ],
        "funnel_chart": charts.funnel_chart(data.funnel, PATH_STAGES),
        "unit_chart": charts.unit_stage_chart(data.matrix, matrix_stages),
        "conversion_chart": charts.conversion_chart(flows),
        "in_stage": [(row, charts.budget_bar(row.budget_used)) for row in data.in_stage],
        "shown": {
            "stalled": _shown_of(len(data.stalled), data.stalled_total, "stalled initiatives"),
            "overdue": _shown_of(
                sum(len(group.milestones) for group in data.overdue_by_owner),
                data.overdue_total,
                "overdue milestones",
            ),
            "in_stage": _shown_of(
                len(data.in_stage),
                data.in_stage_total,
                "initiatives in an active stage, most of their budget used first",
            ),
        },
        "csv_url": _with_query(reverse("dashboard:portfolio-csv"), request),
    }
    return TemplateResponse(request, "dashboard/portfolio.html", context)


def _shown_of(shown: int, total: int, what: str) -> str:
    """The line under a list the page cut short; empty when it shows every row."""
    return f"Showing {shown:,} of {total:,} {what}" if shown < total else ""


def _with_query(url: str, request: HttpRequest) -> str:
    query = request.GET.urlencode()
    return f"{url}?{query}" if query else url


# --- CSV ----------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "Key",
    "Name",
    "Business unit",
    "Stage",
    "Days in stage",
    "Expected max days",
    "Stalled",
    "Stall causes",
    "Business owner",
    "Sponsor",
    "Delivery lead",
    "Risk tier",
    "Health",
    "Next gate",
    "Open milestones",
    "Overdue milestones",
    "Last transition",
    "Pilot started",
    "Operations reached",
]

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _date(value: Any) -> str:
    return timezone.localtime(value).date().isoformat() if value else ""


def _whole_days(value: float | None) -> int | str:
    return int(value) if value is not None else ""


def csv_row(row: InitiativeRow) -> list[object]:
    return [
        row.key,
        row.name,
        row.business_unit,
        row.stage_label,
        _whole_days(row.days_in_stage),
        _whole_days(row.expected_max_days),
        "yes" if row.stalled else "no",
        "; ".join(row.causes),
        row.business_owner,
        row.sponsor,
        row.delivery_lead,
        row.risk_tier,
        row.health,
        row.next_gate,
        row.open_milestones,
        row.overdue_milestones,
        _date(row.last_transition_at),
        _date(row.pilot_started_at),
        _date(row.operations_reached_at),
    ]


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterable[InitiativeRow]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    # A byte-order mark, so Excel (where steering-committee decks start) reads UTF-8 names right.
    yield "\ufeff" + writer.writerow(CSV_COLUMNS)
    for row in rows:
        yield writer.writerow([csv_safe(cell) for cell in csv_row(row)])


def csv_filename(filters: PortfolioFilters, now: Any) -> str:
    parts = ["portfolio", timezone.localtime(now).strftime("%Y-%m-%d")]
    parts += [slugify(v) for v in (filters.business_unit, filters.risk_tier, filters.stage) if v]
    return "-".join(p for p in parts if p) + ".csv"


@pmo_only
def portfolio_csv(request: HttpRequest) -> StreamingHttpResponse:
    filters = _filter_form(request).filters()
    now = timezone.now()
    rows = portfolio_with_causes(user=signed_in_user(request), filters=filters, now=now)
    response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        content_disposition_header(as_attachment=True, filename=csv_filename(filters, now)) or ""
    )
    response["Cache-Control"] = "no-store"
    return response
