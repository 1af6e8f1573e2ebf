from django.apps import AppConfig


class GatesConfig(AppConfig):
    name = "gates"
    verbose_name = "Gates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gates.adapters import GateReviewPort, gate_panel, stage_budget
        from gates.services import reviews_withdraw_on_stage_change
        from programs.ports import (
            register_gate_panel,
            register_gate_port,
            register_stage_budget,
            register_stage_listener,
        )

        register_gate_port(GateReviewPort())
        register_stage_budget(stage_budget)
        register_stage_listener(reviews_withdraw_on_stage_change)
        register_gate_panel(gate_panel)
