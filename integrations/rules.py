"""Who manages integrations: superusers and PMO (the `rules` package, DESIGN.md §1 Roles).

An integration's secret lets its holder move milestones, so only they may create one or rotate
its secret; nobody deletes one (its inbox is the record of what it did — deactivate it instead).
"""

from __future__ import annotations

import rules

from programs.roles import PMO

manages_integrations = rules.is_superuser | rules.is_group_member(PMO)

for _model in ("integration", "inbounddelivery", "ticketstate"):
    rules.add_perm(f"integrations.view_{_model}", manages_integrations)
rules.add_perm("integrations.add_integration", manages_integrations)
rules.add_perm("integrations.change_integration", manages_integrations)
# "Change" on the inbox only enables the retry action; every field is read-only.
rules.add_perm("integrations.change_inbounddelivery", manages_integrations)
