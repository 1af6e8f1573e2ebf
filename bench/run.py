"""Side-by-side cost of a lifecycle move through the service vs. the bare row writes it makes.

The service locks the row, evaluates the transition's conditions, writes the transition record
and the outbox event with its deliveries, all in one transaction. The baseline does the same
INSERT/UPDATEs with plain ORM calls and no checks. Both run in the same process against the same
PostgreSQL database (a throwaway test database), interleaved, so the ratio is what the
guarantees cost, not machine noise. Run with `make bench`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gatekeeper.settings_test")

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "200"))


def main() -> None:
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        run()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run() -> None:
    from notifications.models import Event
    from programs import ports, services
    from programs.models import BusinessUnit, Initiative, StageTransition
    from programs.ports import GateVerdict
    from programs.stages import Stage

    class Approved:
        def verdict(self, initiative, target_stage):
            return GateVerdict(approved=True, review_id=None)

    ports.register_gate_port(Approved())
    unit = BusinessUnit.objects.create(code="bench", name="Bench")

    def fresh() -> Initiative:
        return services.initiative_create(actor=None, name="bench", business_unit=unit)

    def via_service(initiative: Initiative) -> None:
        services.initiative_hold(initiative=initiative, actor=None, reason="bench")

    def bare(initiative: Initiative) -> None:
        with transaction.atomic():
            Initiative.objects.filter(pk=initiative.pk).update(
                stage=Stage.ON_HOLD, held_from=Stage.PROPOSED, stage_entered_at=timezone.now()
            )
            record = StageTransition.objects.create(
                initiative=initiative,
                transition="hold",
                from_stage=Stage.PROPOSED,
                to_stage=Stage.ON_HOLD,
                reason="bench",
            )
            Event.objects.create(
                type="initiative.stage_changed", key=f"bare:{record.pk}", payload={}
            )

    timings: dict[str, list[float]] = {"service": [], "bare": []}
    for _ in range(ROUNDS):
        for name, fn in (("service", via_service), ("bare", bare)):
            initiative = fresh()
            start = time.perf_counter()
            fn(initiative)
            timings[name].append(time.perf_counter() - start)

    service = statistics.median(timings["service"]) * 1000
    baseline = statistics.median(timings["bare"]) * 1000
    print(f"hold transition, median of {ROUNDS} interleaved runs on PostgreSQL")
    print(f"  service (lock + conditions + record + outbox): {service:.3f} ms")
    print(f"  bare ORM writes of the same rows:             {baseline:.3f} ms")
    print(f"  ratio service/bare: {service / baseline:.2f}x")


if __name__ == "__main__":
    main()
