"""CPU seconds per process group over a window, from ``/proc`` (utime + stime), for the scale curve.

PostgreSQL is the server's processes named ``postgres``: its background processes (postmaster, writers,
checkpointer, autovacuum) and the client backends connected to the stack's own database; backends of other
databases on the same server (other benchmarks, tests) are left out. A backend of ours that exits inside the
window takes its time with it (the pools keep theirs open through a drain). Without a database name, every
``postgres`` process counts, and the postmaster's reaped children (``cutime + cstime``) too, so that exited
backends are counted: what one had at the start is subtracted from what the postmaster gained.
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


def _ours(pid: int, database: str) -> bool:
    """A background process, or a client backend (``user database host(port) state``) of ``database``."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    is_client = "(" in title or "[local]" in title
    return not is_client or f" {database} " in title


def postgres_seconds(database: str | None = None) -> dict[int, float]:
    """Each ``postgres`` process's CPU seconds (see the module docstring for ``database``)."""
    procs = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) and found[0] == "postgres":
            procs[int(entry.name)] = found
    if database is not None:
        return {pid: own for pid, (_, _, own, _) in procs.items() if _ours(pid, database)}
    return {pid: own + (reaped if ppid not in procs else 0.0) for pid, (_, ppid, own, reaped) in procs.items()}


@dataclass
class CpuWindow:
    """Snapshot named processes and PostgreSQL at :meth:`start`, again at :meth:`stop`; the deltas."""

    groups: dict[str, list[int]]  # e.g. {"api": [pid], "worker0": [pid], "receiver": [pid]}
    database: str | None = None  # PostgreSQL's database of the stack: other databases' backends are left out
    before: dict[str, float] = field(default_factory=dict)
    pg_before: dict[int, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        return {name: sum(process_seconds(pid) for pid in pids) for name, pids in self.groups.items()}

    def start(self) -> None:
        self.before, self.pg_before = self._now(), postgres_seconds(self.database)

    def stop(self) -> dict[str, float]:
        after, pg_after = self._now(), postgres_seconds(self.database)
        self.spent = {name: after[name] - self.before[name] for name in self.groups}
        # A backend born inside the window counts from 0; see the module docstring for one that is gone.
        if self.database is None:
            self.spent["postgresql"] = sum(pg_after.values()) - sum(self.pg_before.values())
        else:
            self.spent["postgresql"] = sum(v - self.pg_before.get(pid, 0.0) for pid, v in pg_after.items())
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
            (f"{label}: CPU postgresql (server + this database's backends)", per_k * spent["postgresql"], PER_K, "",
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
