"""Run callables at the same instant in threads, as concurrent requests or workers would."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_at_once(*calls: Callable[[], Any], timeout: float = 60) -> list[Any]:
    """Start every call in its own thread, release them together through a barrier, and return
    each one's result, or the exception it raised, in call order.

    Each thread uses (and closes) its own database connection, so the calls really contend for
    PostgreSQL's row locks; the test must use a transactional database.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except BaseException as exc:  # handed to the test to assert on
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a concurrent call did not finish"
    return results
