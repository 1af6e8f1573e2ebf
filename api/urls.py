from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from api import views

router = DefaultRouter()
router.include_root_view = False
router.register("initiatives", views.InitiativeViewSet, basename="initiative")
router.register("metrics", views.MetricViewSet, basename="metric")
router.register("milestones", views.MilestoneViewSet, basename="milestone")
router.register("gate-templates", views.GateTemplateViewSet, basename="gatetemplate")
router.register("reviews", views.GateReviewViewSet, basename="review")
router.register("approvals", views.ApprovalViewSet, basename="approval")
router.register("evidence", views.EvidenceViewSet, basename="evidence")
router.register("webhook-endpoints", views.WebhookEndpointViewSet, basename="webhookendpoint")

app_name = "api"

urlpatterns = [
    path("v1/", include(router.urls)),
    path("v1/portfolio/summary/", views.PortfolioSummaryView.as_view(), name="portfolio-summary"),
    re_path(r"^.*$", views.NotFoundView.as_view(), name="not-found"),
]
