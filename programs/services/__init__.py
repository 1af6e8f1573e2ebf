"""Every write to initiatives, metrics and milestones (CONVENTIONS.md §1-3), by sub-domain.

Each use case: one transaction, the initiative row locked, the pure transition called, the
append-only record and the outbox event written before commit. Callers pass the instance they
hold; if it is stale (someone else moved the initiative meanwhile) they get a Conflict instead of
silently acting on a state they never saw. Reads live in ``programs.selectors``, what an event
says in ``programs.events``.

Callers use ``from programs import services`` and ``services.<name>``; the modules below are
where each one is written.
"""

from programs.services.initiatives import (
    EDITABLE_FIELDS,
    PMO_ONLY_FIELDS,
    initiative_assign_owner,
    initiative_create,
    initiative_update,
)
from programs.services.lifecycle import (
    initiative_advance,
    initiative_cancel,
    initiative_hold,
    initiative_resume,
    initiative_retire,
)
from programs.services.metrics import metric_add, metric_record_value, metric_update
from programs.services.milestones import (
    milestone_add,
    milestone_complete,
    milestone_flag_ticket_deleted,
    milestone_reopen,
    milestone_update,
    milestone_waive,
)
from programs.services.units import business_unit_members_set

__all__ = [
    "EDITABLE_FIELDS",
    "PMO_ONLY_FIELDS",
    "business_unit_members_set",
    "initiative_advance",
    "initiative_assign_owner",
    "initiative_cancel",
    "initiative_create",
    "initiative_hold",
    "initiative_resume",
    "initiative_retire",
    "initiative_update",
    "metric_add",
    "metric_record_value",
    "metric_update",
    "milestone_add",
    "milestone_complete",
    "milestone_flag_ticket_deleted",
    "milestone_reopen",
    "milestone_update",
    "milestone_waive",
]
