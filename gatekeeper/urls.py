from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect
from django.urls import include, path, reverse
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

import gatekeeper.beat_admin  # noqa: F401 -- re-registers beat's admin (see there)
from gatekeeper.health import ReadinessView
from gatekeeper.metrics import metrics_view


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


# The admin's "View site" link goes to `/`, which sends each person to their home.
admin.site.site_url = "/"


def home(request: HttpRequest) -> HttpResponseRedirect:
    """`/`: PMO (and superusers) to the portfolio dashboard, other people to the admin index
    (their approvals and initiatives), anyone not signed in to the admin login."""
    if not request.user.is_authenticated:
        return redirect_to_login("/", reverse("admin:login"))
    # By permission name: the kernel imports no app (the dashboard's rules define it).
    if request.user.has_perm("dashboard.view_portfolio"):
        return redirect("dashboard:portfolio")
    return redirect("admin:index")


urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", ReadinessView.as_view(), name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("gates/", include("gates.urls")),
    path("dashboard/", include("dashboard.urls")),
    path("api/v1/integrations/", include("integrations.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path(
        "api/redoc/",
        # Redoc's sidebar shows its vendor's logo from their CDN: allowed as an image on this
        # page only (no script, style or connection to another origin anywhere).
        csp_update({"img-src": ["https://cdn.redoc.ly"]})(
            SpectacularRedocView.as_view(url_name="schema")
        ),
        name="api-redoc",
    ),
    path("api/", include("api.urls")),
]
