"""CPU seconds per process group over a window, from ``/proc`` (utime + stime), for the scale curve.

PostgreSQL is every process named ``postgres`` (postmaster, backends, background writers). A backend that
exits inside the window takes its time with it, but the postmaster reaps it, so the postmaster's
``cutime + cstime`` grow by that backend's whole life: counting both keeps the sum right (what the backend
had at the start is subtracted from what the postmaster gained). PostgreSQL is shared with anything else
using the same server at the time, so on a busy machine its share includes their work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float, float] | None:
    """(comm, ppid, own utime+stime, reaped children's cutime+cstime) in seconds; None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return comm, int(fields[1]), (utime + stime) / TICK, (cutime + cstime) / TICK


def process_seconds(pid: int) -> float:
    found = _stat(pid)
    return found[2] if found else 0.0


def postgres_seconds() -> dict[int, float]:
    """Each ``postgres`` process's CPU seconds; the postmaster's entry includes what it has reaped."""
    procs = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) and found[0] == "postgres":
            procs[int(entry.name)] = found
    return {pid: own + (reaped if ppid not in procs else 0.0) for pid, (_, ppid, own, reaped) in procs.items()}


@dataclass
class CpuWindow:
    """Snapshot named processes and PostgreSQL at :meth:`start`, again at :meth:`stop`; the deltas."""

    groups: dict[str, list[int]]  # e.g. {"api": [pid], "worker0": [pid], "receiver": [pid]}
    before: dict[str, float] = field(default_factory=dict)
    pg_before: dict[int, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        return {name: sum(process_seconds(pid) for pid in pids) for name, pids in self.groups.items()}

    def start(self) -> None:
        self.before, self.pg_before = self._now(), postgres_seconds()

    def stop(self) -> dict[str, float]:
        after, pg_after = self._now(), postgres_seconds()
        self.spent = {name: after[name] - self.before[name] for name in self.groups}
        # A backend born inside the window counts from 0; one gone is counted by the postmaster's reaped time.
        self.spent["postgresql"] = sum(pg_after.values()) - sum(self.pg_before.values())
        return self.spent


SCALE_RISE = 1.1  # one more step of workers "pays" while it adds at least 10 %
RowTuple = tuple[str, float, str, str, bool | None]
PER_K = "s / 1k deliv."


def scale_rows(drains: dict[int, tuple[dict[str, float], float, int]]) -> list[RowTuple]:
    """The scale curve from PostgreSQL x1 drains keyed by worker count, each (CPU seconds per group, drain
    seconds, deliveries): per run the rate, CPU seconds per 1,000 deliveries of each group and the cores'
    share; then the rate's gain per step and the worker count past which it stops rising."""
    cores = os.cpu_count() or 1
    out: list[RowTuple] = []
    rates: dict[int, float] = {}
    for workers, (spent, seconds, delivered) in sorted(drains.items()):
        rates[workers] = delivered / seconds
        label = f"postgresql {workers} worker{'s' * (workers > 1)}, {delivered:,} x 1"
        per_k = 1000 / delivered
        each = [spent[f"worker{i}"] for i in range(workers)]
        total = sum(spent.values())
        out += [
            (f"{label}: drain", rates[workers], "deliveries/s", "", None),
            (f"{label}: CPU api", per_k * spent["api"], PER_K, "", None),
            (f"{label}: CPU workers, sum (each {', '.join(f'{per_k * w:.2f}' for w in each)})",
             per_k * sum(each), PER_K, "", None),
            (f"{label}: CPU postgresql (every postgres process)", per_k * spent["postgresql"], PER_K, "",
             None),
            (f"{label}: CPU receiver", per_k * spent["receiver"], PER_K, "", None),
            (f"{label}: CPU total", per_k * total, PER_K, "", None),
            (f"{label}: postgresql's share of the {cores} cores", 100 * spent["postgresql"] / (seconds * cores), "%",
             "", None),
            (f"{label}: all measured processes' share of the {cores} cores", 100 * total / (seconds * cores), "%", "",
             None)]
    counts = sorted(rates)
    steps = list(zip(counts, counts[1:], strict=False))
    for fewer, more in steps:
        out.append((f"drain with {more} workers / with {fewer}", rates[more] / rates[fewer], "x", "", None))
    if counts:
        saturated = next((w for w, more in steps if rates[more] < SCALE_RISE * rates[w]), counts[-1])
        out.append((f"the drain stops rising (< +{SCALE_RISE - 1:.0%} per step) past", saturated, "workers", "",
                    None))
    return out
