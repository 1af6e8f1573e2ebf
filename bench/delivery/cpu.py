"""Where a run's CPU goes: per-process CPU time from ``/proc`` (Linux), read before and after.

The machine has two cores and runs everything: the workers, PostgreSQL, Redis, the receiver and
this script's polling. A rate alone says how fast; these figures say who spent the CPU, so a
change can be judged by the part it touched, and the bench's own share (receiver, polling) is
visible instead of silently taken out of the workers' time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after its ")" splits cleanly.
    return text.rsplit(")", 1)[1].split()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads); 0 if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def group_pids(pgid: int) -> list[int]:
    """The processes of one process group (a worker and its pool children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def machine() -> tuple[float, float, float, int]:
    """Whole machine since boot: (user, system, busy) CPU seconds and context switches."""
    user = system = busy = 0.0
    switches = 0
    for line in Path("/proc/stat").read_text().splitlines():
        parts = line.split()
        if parts[0] == "cpu":
            # user nice system idle iowait irq softirq steal ...
            values = [int(v) / _TICK for v in parts[1:9]]
            user = values[0] + values[1]
            system = values[2] + values[5] + values[6]
            busy = sum(values) - values[3] - values[4]
        elif parts[0] == "ctxt":
            switches = int(parts[1])
    return user, system, busy, switches


@dataclass
class Accounting:
    """CPU seconds per part between ``start()`` and ``stop()``.

    Parts are named pid sets read at each end (``pids`` is called both times), so processes
    that appear during the window (a worker's database connection) count from zero.
    """

    parts: dict[str, list[int]] = field(default_factory=dict)
    thread_seconds: dict[str, float] = field(default_factory=dict)
    _before: dict[int, float] = field(default_factory=dict)
    _machine: tuple[float, float, float, int] = (0.0, 0.0, 0.0, 0)
    result: dict[str, float] = field(default_factory=dict)

    def start(self, parts: dict[str, list[int]]) -> None:
        self._before = {pid: process_cpu(pid) for pids in parts.values() for pid in pids}
        self._machine = machine()

    def stop(self, parts: dict[str, list[int]], *, seconds: float) -> dict[str, float]:
        """CPU seconds per part, plus ``machine busy/user/system`` and ``context switches/s``."""
        result: dict[str, float] = {}
        for name, pids in parts.items():
            result[name] = sum(process_cpu(pid) - self._before.get(pid, 0.0) for pid in pids)
        user, system, busy, switches = machine()
        result["machine busy"] = busy - self._machine[2]
        result["machine user"] = user - self._machine[0]
        result["machine system"] = system - self._machine[1]
        result["context switches/s"] = (switches - self._machine[3]) / seconds if seconds else 0
        self.result = result
        return result


def describe(result: dict[str, float], *, count: int, seconds: float) -> str:
    """One line per part: CPU ms per item and the share of the two cores over the window."""
    cores = os.cpu_count() or 1
    lines = []
    for name, value in result.items():
        if name == "context switches/s":
            lines.append(f"  {name:<28} {value:10.0f}")
            continue
        share = value / (seconds * cores) if seconds else 0.0
        lines.append(
            f"  {name:<28} {value * 1000 / count if count else 0:8.2f} ms/item"
            f" {share:6.0%} of {cores} cores"
        )
    return "\n".join(lines)
