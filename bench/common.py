"""What every bench script shares: Django on bench.settings, a throwaway database, timings, and
the lines that put each figure next to its target.

Run a script from the repository root: ``python -m bench.<name> [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Always the bench settings (a shell or pytest may export the test settings): the peer app and
# the bench database name live there.
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"


def setup() -> None:
    import django

    django.setup()


def arguments(description: str, **extra: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="CI size: seconds, not minutes")
    for name, kwargs in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", **kwargs)
    return parser.parse_args()


def machine() -> str:
    cores = os.cpu_count() or 0
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        mem = "? GiB"
    return f"{cores} cores / {mem}, Python {platform.python_version()}"


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Migrate a fresh database on the local server, yield its name, drop it afterwards."""
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    # DEBUG off, as in production: bench.settings inherits the test settings' DEBUG, and with it
    # on every statement would also be formatted into the query log (setup_test_environment
    # keeps the setting's value unless told otherwise).
    setup_test_environment(debug=False)
    started = time.perf_counter()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    name = connection.settings_dict["NAME"]
    print(f"database {name} migrated in {time.perf_counter() - started:.1f} s; {machine()}")
    try:
        yield name
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
        _purge_dispatch_queue()


def _purge_dispatch_queue() -> None:
    """The outbox queued dispatch messages no worker will take: drop them (bench's own Redis
    database, see bench.settings)."""
    try:
        from gatekeeper.celery import app

        app.control.purge()
    except Exception as exc:  # an unreachable broker only means nothing was queued
        print(f"(could not purge the bench dispatch queue: {exc})")


def ms(seconds: float) -> float:
    return seconds * 1000


@dataclass
class Samples:
    """Wall-clock samples of one operation, in seconds, and its queries per run."""

    name: str
    times: list[float] = field(default_factory=list)
    queries: int | None = None

    def add(self, seconds: float) -> None:
        self.times.append(seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p95(self) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    def line(self) -> str:
        q = "?" if self.queries is None else str(self.queries)
        return (
            f"  {self.name:<44} median {ms(self.median):8.2f} ms   p95 {ms(self.p95):8.2f} ms"
            f"   {q:>4} queries"
        )


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


_BOOKKEEPING = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO)\b", re.I
)


def count_queries(fn: Callable[[], Any]) -> tuple[int, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        result = fn()
    # Transaction and savepoint bookkeeping is not a query a reader of the code would count.
    real = [q for q in captured.captured_queries if not _BOOKKEEPING.match(q["sql"])]
    return len(real), result


def target(label: str, measured: float, limit: float, unit: str = "") -> bool:
    """Print one ``TARGET`` line; the quick test greps for these."""
    met = measured <= limit
    verdict = "met" if met else "NOT MET"
    print(f"TARGET {label}: {measured:.2f}{unit} <= {limit:g}{unit} ... {verdict}")
    return met
