from django.urls import path

from integrations import views

app_name = "integrations"

urlpatterns = [
    path("jira/<str:ref>/", views.jira_webhook, name="jira"),
    path("servicenow/<str:ref>/", views.servicenow_webhook, name="servicenow"),
]
