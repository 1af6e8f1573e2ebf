"""The quorum rule, pure: used by the decision service and re-checked by the gate verdict
adapter (``gates.adapters``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gates.models import ApprovalStatus, QuorumPolicy


@dataclass(frozen=True)
class QuorumResult:
    decided: bool
    approved: bool
    reason: str


def quorum(policy: str, n: int | None, statuses: Iterable[str]) -> QuorumResult:
    """Decide a review from its approvals' statuses. One rejection rejects under either policy."""
    # Void approvals stay in M (they were required) but never count as approving, so an
    # "all" review can only pass with every approval actually given.
    counted = list(statuses)
    total = len(counted)
    approved = counted.count(ApprovalStatus.APPROVED)
    if ApprovalStatus.REJECTED in counted:
        return QuorumResult(True, False, "an approver rejected")
    if total == 0:
        return QuorumResult(False, False, "the review has no approvers")
    needed = total if policy == QuorumPolicy.ALL else (n or total)
    if needed > total:
        return QuorumResult(False, False, f"quorum needs {needed} approvals but only {total} exist")
    if approved >= needed:
        return QuorumResult(True, True, f"{approved} of {total} approved (needed {needed})")
    return QuorumResult(False, False, f"{approved} of {needed} needed approvals so far")
