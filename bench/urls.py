"""The app's URLconf with the reads bench's bare list endpoint in front (bench settings only)."""

from django.urls import include, path

from bench import views

urlpatterns = [
    path("bench/initiatives-raw/", views.RawInitiativeListView.as_view()),
    path("", include("gatekeeper.urls")),
]
