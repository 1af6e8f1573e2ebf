from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_login_failed

        from api.authentication import mark_failed_address

        # Here rather than at import: a failed admin sign-in may come before any API request.
        user_login_failed.connect(mark_failed_address, dispatch_uid="api.mark_failed_address")
