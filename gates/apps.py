from django.apps import AppConfig


class GatesConfig(AppConfig):
    name = "gates"
    verbose_name = "Gates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gates.port import GateReviewPort, stage_budget
        from programs.ports import register_gate_port, register_stage_budget

        register_gate_port(GateReviewPort())
        register_stage_budget(stage_budget)
