"""P0: what Gatekeeper's engine costs per operation, next to the peer a Django developer would
build instead (``bench.peer``: django-fsm-2, django-fsm-log, an outbox row).

Same process, same database, interleaved rounds, so the ratio is the engine's extra work and not
machine noise. Timed:

- peer hold: ``select_for_update``, the FSM transition (django-fsm-log writes its StateLog row
  from the transition signal), ``save``, one outbox row;
- Gatekeeper hold: ``programs.services.initiative_hold``;
- Gatekeeper deciding approval: ``gates.services.approval_decide`` of a G1 review's last pending
  approval, outcome Go (quorum reached, the review decided, the initiative moved into pilot).

Queries per operation are counted in one extra, untimed run of each.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from bench import common
from bench.cli import positive

TARGET_HOLD_RATIO = 1.5
TARGET_DECIDE_MS = 15.0
# The peer's hold when the issue set the decision's 15 ms (same machine, same bench).
ISSUE_PEER_HOLD_MS = 2.8


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0], rounds={"type": positive, "default": None})
    common.setup()
    rounds = args.rounds or (30 if args.quick else 300)
    with common.throwaway_database():
        run(rounds)


def _world():
    """The people and one business unit every round uses, set up through the services."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from gates import services as gates
    from programs.models import BusinessUnit
    from programs.roles import APPROVERS, BUSINESS_OWNERS, PMO

    User = get_user_model()

    def person(username: str, group: str):
        user = User.objects.create_user(username=username, email=f"{username}@example.com")
        user.groups.add(Group.objects.get(name=group))
        return user

    panel = {
        role: person(f"{role}.approver", APPROVERS)
        for role in ("business", "risk", "platform", "security")
    }
    panel["pmo"] = person("pmo.lead", PMO)
    for role, user in panel.items():
        gates.gate_approver_assign(actor=None, user=user, role=role)
    owner = person("owner", BUSINESS_OWNERS)
    lead = User.objects.create_user(username="delivery.lead", email="lead@example.com")
    unit = BusinessUnit.objects.create(code="bench", name="Bench")
    unit.members.add(owner)
    return panel, owner, lead, unit


def _initiative(owner, lead, unit, n: int):
    from programs import services

    initiative = services.initiative_create(
        actor=None,
        name=f"Bench {n}",
        business_unit=unit,
        business_owner=owner,
        delivery_lead=lead,
        target_workflow="Claims triage: adjusters review model suggestions",
    )
    services.metric_add(
        initiative=initiative, actor=None, name="Cycle time", unit="%", baseline="40", target="60"
    )
    return initiative


def _last_pending_approval(initiative, owner, lead, panel):
    """A submitted G1 review with every approval but one decided: the next decision decides."""
    from gates import selectors, services
    from gates.models import ApprovalStatus, CriterionKind, GateRole

    review = services.gate_review_open(initiative=initiative, actor=lead)
    for status in selectors.review_checklist(review=review):
        criterion = status.criterion
        if criterion.kind == CriterionKind.EVIDENCE and not status.evidence:
            services.evidence_attach(
                review=review,
                actor=lead,
                criterion=criterion,
                url=f"https://wiki.example.com/{criterion.code}",
            )
    review = services.gate_review_submit(review=review, actor=lead)
    approvals = list(review.approvals.filter(status=ApprovalStatus.PENDING).order_by("id"))

    def who(approval):
        return owner if approval.role == GateRole.BUSINESS_OWNER else panel[approval.role]

    for approval in approvals[:-1]:
        services.approval_decide(
            approval=approval, actor=who(approval), decision="approve", comment="ok"
        )
    last = approvals[-1]
    last.refresh_from_db()
    return last, who(last)


def run(rounds: int) -> None:
    from django.apps import apps
    from django.db import transaction
    from django.utils import timezone

    # Looked up, not imported: the type checker runs on the production settings, where the
    # bench-only peer app is not installed.
    from gates import services as gates
    from programs import services as programs

    PeerInitiative: Any = apps.get_model("bench_peer", "PeerInitiative")
    PeerOutbox: Any = apps.get_model("bench_peer", "PeerOutbox")

    panel, owner, lead, unit = _world()

    def peer_hold(pk: int) -> None:
        with transaction.atomic():
            row = PeerInitiative.objects.select_for_update().get(pk=pk)
            row.hold(by=owner)
            row.save()
            PeerOutbox.objects.create(
                topic="initiative.stage_changed",
                payload={
                    "id": row.pk,
                    "from": row.held_from,
                    "to": row.stage,
                    "at": timezone.now().isoformat(),
                },
            )

    def our_hold(initiative) -> None:
        programs.initiative_hold(initiative=initiative, actor=owner, reason="waiting on budget")

    def our_decide(approval, actor) -> None:
        gates.approval_decide(
            approval=approval, actor=actor, decision="approve", outcome="go", comment="go"
        )

    from notifications.publisher import publisher

    peer = common.Samples("peer hold (fsm + fsm-log + outbox row)")
    hold = common.Samples("Gatekeeper initiative_hold")
    decide = common.Samples("Gatekeeper deciding approval (G1, Go)")
    # Our dispatch message goes to Redis from the publisher thread once the caller has its
    # answer. Waited for after each of our steps, outside the timing, so it is neither hidden
    # in the next step's time (the peer's, half the time) nor lost from the report.
    published = common.Samples("  then: our dispatch publish (publisher thread)")

    # One untimed run of each to count queries (and warm caches: content types, templates).
    warm_peer = PeerInitiative.objects.create(name="w")
    peer.queries, _ = common.count_queries(lambda: peer_hold(warm_peer.pk))
    warm = _initiative(owner, lead, unit, 0)
    hold.queries, _ = common.count_queries(lambda: our_hold(warm))
    approval, actor = _last_pending_approval(_initiative(owner, lead, unit, -1), owner, lead, panel)
    decide.queries, _ = common.count_queries(lambda: our_decide(approval, actor))

    for n in range(1, rounds + 1):
        peer_row = PeerInitiative.objects.create(name=f"peer {n}")
        initiative = _initiative(owner, lead, unit, n)
        approval, actor = _last_pending_approval(
            _initiative(owner, lead, unit, -n - 1), owner, lead, panel
        )
        # Alternate the order so neither side always runs right after the setup's writes.
        steps: list[tuple[common.Samples, Callable[[], Any]]] = [
            (peer, partial(peer_hold, peer_row.pk)),
            (hold, partial(our_hold, initiative)),
            (decide, partial(our_decide, approval, actor)),
        ]
        if n % 2:
            steps.reverse()
        for samples, fn in steps:
            took, _ = common.timed(fn)
            samples.add(took)
            if samples is not peer:
                waited, _ = common.timed(publisher.flush)
                published.add(waited)

    print(
        f"P0 engine overhead: {rounds} interleaved rounds on PostgreSQL "
        "(same process, same database)"
    )
    for samples in (peer, hold, decide, published):
        print(samples.line())
    ratio = hold.median / peer.median
    print(f"  ratio hold/peer (median): {ratio:.2f}x   (p95: {hold.p95 / peer.p95:.2f}x)")
    # The decision's target is a time on the machine it was set on, where the peer's hold took
    # 2.8 ms: in peer holds, comparable across machines as the time is not.
    print(
        f"  deciding approval in peer holds (median): {decide.median / peer.median:.2f}x   "
        f"(the 15 ms target was {TARGET_DECIDE_MS / ISSUE_PEER_HOLD_MS:.2f}x the "
        f"{ISSUE_PEER_HOLD_MS} ms peer hold of the machine it was set on)"
    )
    common.target("hold vs peer-with-outbox, median ratio", ratio, TARGET_HOLD_RATIO, "x")
    common.target("deciding approval, median", common.ms(decide.median), TARGET_DECIDE_MS, " ms")


if __name__ == "__main__":
    main()
