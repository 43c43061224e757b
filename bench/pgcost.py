"""What one delivery costs PostgreSQL: WAL bytes, row updates (HOT or not) and CPU seconds, per 1,000.

A PostgreSQL stack with ``mailhooks api`` + N ``worker`` processes drains a held backlog (as ``run.py``'s
drain does); around the drain (the release's own re-queue excluded) it reads:

- WAL: ``pg_current_wal_lsn()`` before and after (cluster-wide: other databases' writes count too, so
  the script also prints how many other backends were active);
- ``pg_stat_user_tables`` n_tup_upd / n_tup_hot_upd / n_tup_ins for ``deliveries`` and ``attempts``;
- CPU (utime + stime from /proc) of the workers, the API process and every postgres process.

    .venv/bin/python bench/pgcost.py --events 20000 --workers 1 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from harness import Receiver, Stack, ingest, new_tmp

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def postgres_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-u", "postgres"], capture_output=True, text=True, timeout=5).stdout
    return [int(p) for p in out.split()]


async def pg_figures(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        lsn = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
        tables = {r["relname"]: dict(r) for r in await conn.fetch(
            "SELECT relname, n_tup_upd, n_tup_hot_upd, n_tup_ins FROM pg_stat_user_tables "
            "WHERE relname IN ('deliveries', 'attempts')")}
        ours = [r[0] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
        db_oid = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = current_database()")
        names = {int(r[0]): r[1] for r in await conn.fetch(
            "SELECT pg_relation_filenode(oid), relname FROM pg_class WHERE pg_relation_filenode(oid) IS NOT NULL")}
    finally:
        await conn.close()
    return {"lsn": lsn, "tables": tables, "backends": ours, "db_oid": db_oid, "names": names}


def lsn_bytes(lsn: str) -> int:
    """A ``pg_lsn`` text ('16/B374D848') as a byte position."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


class WalFollower:
    """``pg_waldump --follow`` from an LSN, keeping only the records that touch one database: other
    helpers' databases share the cluster's WAL, and segments are recycled soon after a checkpoint."""

    def __init__(self, waldump: str, wal_dir: str, start: str, db_oid: int, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            f"{waldump} -f -p {wal_dir} -s {start} | grep -F 'rel 1663/{db_oid}/' > {out}",
            shell=True, start_new_session=True)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)

    def sizes(self, end: str, names: dict[int, str]) -> tuple[dict[str, int], dict[str, int]]:
        """Bytes per relation (by the record's first block reference) up to ``end``: with the full-page
        images, and without them (those depend on when the last checkpoint was, the rest does not)."""
        limit = lsn_bytes(end)
        marker = re.compile(r"rel \d+/\d+/(\d+)")
        sizes: dict[str, int] = {}
        records: dict[str, int] = {}
        for line in self.out.read_text().splitlines():
            found = marker.search(line)
            if found is None or "lsn: " not in line:
                continue
            if lsn_bytes(line.split("lsn: ", 1)[1].split(",", 1)[0]) > limit:
                continue
            record, total = (int(n) for n in line.split("len (rec/tot):", 1)[1].split(",", 1)[0].split("/"))
            name = names.get(int(found.group(1)), found.group(1))
            sizes[name] = sizes.get(name, 0) + total
            records[name] = records.get(name, 0) + record
        return sizes, records


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {pid: cpu_seconds(pid) for pid in pids}


async def one_run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = new_tmp()
    receiver = Receiver(tmp)
    receiver.up()
    try:
        async with Stack("postgresql", tmp, receiver) as stack:
            if args.sql:  # a schema variant to compare, applied before any process starts
                conn = await asyncpg.connect(stack.db_url, timeout=10)
                try:
                    await conn.execute(args.sql)
                finally:
                    await conn.close()
            api = stack.run("api", name="api")
            workers = [stack.run("worker", name=f"worker{i}") for i in range(args.workers)]
            await ingest(stack, args.events, batch=100, concurrency=4)
            deadline = time.monotonic() + 60
            for i in range(args.workers):
                while b"dispatcher_started" not in (tmp / f"worker{i}.log").read_bytes():
                    if time.monotonic() > deadline:
                        raise SystemExit(f"worker {i} did not start: see {tmp / f'worker{i}.log'}")
                    await asyncio.sleep(0.05)
            dsn = stack.db_url
            await receiver.call("/reset")
            await asyncio.sleep(1.5)  # statistics of the ingest flushed
            mine = [api.pid] + [w.pid for w in workers]
            released_at = time.time()
            assert await stack.release() == args.events
            before_pg = await pg_figures(dsn)
            before_cpu = cpu_by_pid(mine + postgres_pids())
            follower = (WalFollower(args.waldump, args.wal_dir, before_pg["lsn"], before_pg["db_oid"],
                                    tmp / "wal.txt") if args.waldump else None)
            got, done_at = await receiver.wait_for(args.events, within=300)
            after_cpu = cpu_by_pid(mine + postgres_pids())
            await asyncio.sleep(1.5)  # the backends flush their table statistics at most once a second
            after_pg = await pg_figures(dsn)
            by_relation: dict[str, int] = {}
            without_fpi: dict[str, int] = {}
            if follower is not None:
                await asyncio.sleep(1.0)
                follower.stop()
                by_relation, without_fpi = follower.sizes(after_pg["lsn"], after_pg["names"])
    finally:
        receiver.down()

    def spent(pids: list[int]) -> float:
        return sum(after_cpu.get(p, 0.0) - before_cpu.get(p, 0.0) for p in pids)

    per = 1000 / got
    ours = set(after_pg["backends"])
    result: dict[str, Any] = {
        "deliveries": got, "rate": got / (done_at - released_at),
        "cpu_worker_per_1000": spent([w.pid for w in workers]) * per,
        "cpu_api_per_1000": spent([api.pid]) * per,
        "cpu_pg_backends_per_1000": spent(sorted(ours)) * per,  # this database's connections only
        "cpu_pg_all_per_1000": spent([p for p in after_cpu if p not in mine]) * per,  # other helpers' too
    }
    if by_relation:
        result["wal_kb_per_1000"] = sum(by_relation.values()) / 1024 * per
        result["wal_bytes_per_delivery_by_relation"] = {
            name: round(size / got) for name, size in sorted(by_relation.items(), key=lambda kv: -kv[1])}
        result["wal_kb_per_1000_without_fpi"] = sum(without_fpi.values()) / 1024 * per
        result["wal_bytes_per_delivery_without_fpi"] = {
            name: round(size / got) for name, size in sorted(without_fpi.items(), key=lambda kv: -kv[1])}
    else:
        result["wal_kb_per_1000_cluster"] = (lsn_bytes(after_pg["lsn"]) - lsn_bytes(before_pg["lsn"])) / 1024 * per
    for table in ("deliveries", "attempts"):
        a, b = after_pg["tables"][table], before_pg["tables"][table]
        for col in ("n_tup_upd", "n_tup_hot_upd", "n_tup_ins"):
            result[f"{table}.{col}_per_1000"] = (a[col] - b[col]) * per
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--label", default="")
    parser.add_argument("--sql", default="", help="statements run on the fresh database first (A/B of a schema)")
    parser.add_argument("--waldump", default="", help="pg_waldump to print the drain's WAL by record type")
    parser.add_argument("--wal-dir", default="/var/lib/postgresql/15/main/pg_wal")
    parser.add_argument("--json", type=Path, help="append the result as one JSON line")
    args = parser.parse_args()
    result = {"label": args.label, **asyncio.run(one_run(args))}
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if args.json:
        with args.json.open("ab") as out:
            out.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
