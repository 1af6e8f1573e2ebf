from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from programs.models import Initiative


class Command(BaseCommand):
    help = "Print the initiative lifecycle: every transition with its guards (or Graphviz dot)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dot", action="store_true", help="print Graphviz dot source instead")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["dot"]:
            call_command("graph_transitions", "programs.Initiative.stage", stdout=self.stdout)
            return
        field = Initiative._meta.get_field("stage")
        rows = []
        for spec in field.get_all_transitions(Initiative):  # type: ignore[attr-defined]
            target = spec.target
            if hasattr(target, "allowed_states"):
                target = "the stage it was held from"
            conds = ", ".join(getattr(c, "__name__", repr(c)) for c in spec.conditions)
            rows.append((spec.name, str(spec.source), str(target), conds or "-"))
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        for name, source, target, conds in rows:
            self.stdout.write(
                f"{name:<{width[0]}}  {source:<{width[1]}} -> {target:<{width[2]}}  if {conds}"
            )
