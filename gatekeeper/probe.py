"""``python -m gatekeeper.probe``: the readiness checks (gatekeeper.health) from the command
line, for processes without an HTTP server (the Celery worker's container healthcheck).
Exits 0 when ready, 1 with the failing checks on stderr otherwise."""

from __future__ import annotations

import asyncio
import os
import sys


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gatekeeper.settings")
    import django

    django.setup()
    from gatekeeper.health import ReadinessView

    async def results() -> list:
        return list(await asyncio.gather(*(c.get_result() for c in ReadinessView().get_checks())))

    failed = [r for r in asyncio.run(results()) if r.error]
    for result in failed:
        print(f"{result.check!r}: {result.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
