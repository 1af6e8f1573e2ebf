from django.apps import AppConfig


class ProgramsConfig(AppConfig):
    name = "programs"
    verbose_name = "Programs"

    def ready(self) -> None:
        from notifications import audience
        from programs.audience import ProgramsAudience

        audience.register(ProgramsAudience())
