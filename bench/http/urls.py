"""The app's URLconf with the bare comparison endpoints in front (bench settings only)."""

from django.urls import include, path

from bench.http import views

urlpatterns = [
    path("bench/same-writes/", views.SameWritesView.as_view()),
    path("bench/one-row/<int:unit>/", views.OneRowView.as_view()),
    path("", include("gatekeeper.urls")),
]
