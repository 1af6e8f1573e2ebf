"""Every write to gates (CONVENTIONS.md §1-3), one module per concern.

- ``templates``: gate template revisions, who holds the gate roles, delegation to deputies.
- ``reviews``: a review from draft to submission, and its withdrawal.
- ``decisions``: each approver's decision, and the gate's once quorum is reached.

Each use case is one transaction: the initiative row and then the review row are locked first
(``_common.lock_review``: the same order as programs' lifecycle moves, so neither side can
deadlock the other; decisions on one review run one at a time and quorum is counted once), the
pure transition is called, the append-only review event and the outbox events
(``gates.events``) are written, and a decided review moves the initiative through the programs
services before commit.

Callers use this package (``from gates import services``); the modules are how it is filed.
"""

from gates.services.decisions import ConditionSpec, approval_decide
from gates.services.reviews import (
    evidence_attach,
    gate_review_open,
    gate_review_submit,
    gate_review_withdraw,
    reviews_withdraw_on_stage_change,
)
from gates.services.templates import (
    ApproverSpec,
    CriterionSpec,
    delegation_create,
    delegation_revoke,
    gate_approver_assign,
    gate_template_revise,
)

__all__ = [
    "ApproverSpec",
    "ConditionSpec",
    "CriterionSpec",
    "approval_decide",
    "delegation_create",
    "delegation_revoke",
    "evidence_attach",
    "gate_approver_assign",
    "gate_review_open",
    "gate_review_submit",
    "gate_review_withdraw",
    "gate_template_revise",
    "reviews_withdraw_on_stage_change",
]
