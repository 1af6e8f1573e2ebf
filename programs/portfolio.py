"""Portfolio reads for PMO tools: where initiatives are, what is late, how many make it.

Each figure is over the initiatives the caller may see (``initiatives_visible_to``), so a
business owner gets their own portfolio and PMO gets everyone's, from one code path. A fixed
number of queries whatever the portfolio's size.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from typing import Any

from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from programs.models import Initiative, Milestone, MilestoneStatus, StageTransition
from programs.selectors import initiatives_visible_to
from programs.stages import ACTIVE_STAGES, Stage


def portfolio_summary(*, user: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    visible = initiatives_visible_to(user).order_by()
    ids = visible.values("pk")
    by_stage = {s.value: 0 for s in Stage}
    for row in visible.values("stage").annotate(n=Count("pk", distinct=True)):
        by_stage[row["stage"]] = row["n"]
    by_unit: dict[str, dict[str, int]] = defaultdict(lambda: {s.value: 0 for s in Stage})
    for row in visible.values("business_unit__code", "stage").annotate(
        n=Count("pk", distinct=True)
    ):
        by_unit[row["business_unit__code"]][row["stage"]] = row["n"]

    overdue_milestone = Milestone.objects.filter(
        initiative=OuterRef("pk"), status=MilestoneStatus.OPEN, due_at__lt=now
    )
    scoped = Initiative.objects.filter(pk__in=ids)
    overdue = scoped.filter(Exists(overdue_milestone)).count()
    stalled = scoped.filter(stage__in=ACTIVE_STAGES, stall_at__lte=now).count()

    days_in_stage: dict[str, list[float]] = defaultdict(list)
    for stage, entered in scoped.filter(stage__in=ACTIVE_STAGES).values_list(
        "stage", "stage_entered_at"
    ):
        days_in_stage[stage].append((now - entered).total_seconds() / 86400)
    median_days = {
        stage: round(statistics.median(days_in_stage[stage]), 1) if days_in_stage[stage] else None
        for stage in ACTIVE_STAGES
    }

    reached = StageTransition.objects.filter(initiative__in=ids)
    entered_pilot = reached.filter(to_stage=Stage.PILOT).values("initiative").distinct().count()
    reached_ops = reached.filter(to_stage=Stage.OPERATIONS).values("initiative").distinct().count()
    return {
        "generated_at": now,
        "total": sum(by_stage.values()),
        "by_stage": by_stage,
        "by_business_unit": [
            {"business_unit": code, "by_stage": stages} for code, stages in sorted(by_unit.items())
        ],
        "overdue": overdue,
        "stalled": stalled,
        "median_days_in_stage": median_days,
        "pilot_to_operations": {
            "entered_pilot": entered_pilot,
            "reached_operations": reached_ops,
            "rate": round(reached_ops / entered_pilot, 3) if entered_pilot else None,
        },
    }
