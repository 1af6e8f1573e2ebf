from django.db import models


class Stage(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    PILOT = "pilot", "Pilot"
    INTEGRATION = "integration", "Integration"
    HARDENING = "hardening", "Hardening"
    OPERATIONS = "operations", "Operations"
    RETIRED = "retired", "Retired"
    ON_HOLD = "on_hold", "On hold"
    CANCELLED = "cancelled", "Cancelled"


# Stages work is still moving towards operations in; only these can be put on hold.
ACTIVE_STAGES: tuple[str, ...] = (
    Stage.PROPOSED,
    Stage.PILOT,
    Stage.INTEGRATION,
    Stage.HARDENING,
)
CANCELLABLE_STAGES: tuple[str, ...] = (*ACTIVE_STAGES, Stage.ON_HOLD)
TERMINAL_STAGES: tuple[str, ...] = (Stage.RETIRED, Stage.CANCELLED)

# The gated path; the gate code names the gate that opens the stage it maps to.
GATE_INTO: dict[str, str] = {
    Stage.PILOT: "G1",
    Stage.INTEGRATION: "G2",
    Stage.HARDENING: "G3",
    Stage.OPERATIONS: "G4",
}
NEXT_STAGE: dict[str, str] = {
    Stage.PROPOSED: Stage.PILOT,
    Stage.PILOT: Stage.INTEGRATION,
    Stage.INTEGRATION: Stage.HARDENING,
    Stage.HARDENING: Stage.OPERATIONS,
}
