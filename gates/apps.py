from django.apps import AppConfig


class GatesConfig(AppConfig):
    name = "gates"
    verbose_name = "Gates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gates.port import GateReviewPort
        from programs.ports import register_gate_port

        register_gate_port(GateReviewPort())
