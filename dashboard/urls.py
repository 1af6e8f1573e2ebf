from django.urls import path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.portfolio, name="portfolio"),
    path("portfolio.csv", views.portfolio_csv, name="portfolio-csv"),
]
