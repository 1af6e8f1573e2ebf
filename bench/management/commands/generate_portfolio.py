"""``manage.py generate_portfolio``: a generated portfolio in its own database, kept for poking at.

Runs only under ``DJANGO_SETTINGS_MODULE=bench.settings`` (the bench app is installed nowhere
else). Creates (or recreates) the database named by ``--database``, migrates it, loads the
portfolio (bench/generate.py, triggers off for the load, see there) and leaves it in place.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from bench import generate
from bench.cli import positive


class Command(BaseCommand):
    help = "Create a database and fill it with a generated portfolio (bench settings only)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--initiatives", type=positive, default=generate.FULL.initiatives)
        parser.add_argument("--quick", action="store_true", help="2,000 initiatives")
        parser.add_argument("--milestones-per", type=positive, default=generate.FULL.milestones_per)
        parser.add_argument(
            "--transitions-per", type=positive, default=generate.FULL.transitions_per
        )
        parser.add_argument(
            "--database",
            default="bench_portfolio",
            help="database to (re)create on the configured server; must start with bench_",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["database"]
        if not name.startswith("bench_"):
            raise CommandError("--database must start with bench_ (it is dropped and recreated)")
        connection.settings_dict.setdefault("TEST", {})["NAME"] = name
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        size = generate.Size(
            initiatives=generate.QUICK.initiatives if options["quick"] else options["initiatives"],
            milestones_per=options["milestones_per"],
            transitions_per=options["transitions_per"],
        )
        generate.generate(size)
        self.stdout.write(f"portfolio in database {name}; drop it with: dropdb {name}")
