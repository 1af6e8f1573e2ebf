from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Installed only by bench.settings: carries the generate_portfolio command."""

    name = "bench"
    default_auto_field = "django.db.models.BigAutoField"
