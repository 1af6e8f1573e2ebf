from django.urls import path

from gates import views

app_name = "gates"

urlpatterns = [
    path(
        "reviews/<int:review_id>/evidence-pack.json",
        views.evidence_pack_json,
        name="evidence-pack-json",
    ),
    path(
        "reviews/<int:review_id>/evidence-pack/",
        views.evidence_pack_html,
        name="evidence-pack-html",
    ),
]
