"""Migrations on a fresh database, by several processes at once (a deployment starting its API and worker
processes together, an operator running ``mailhooks db upgrade`` meanwhile): one migrates, the others wait
for it and find the schema done. Every one of them must come up; today one of them died on
``CREATE TABLE alembic_version`` (or a half-applied revision) about every other time."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support import MAILHOOKS, ROOT, ServerProcess


def test_processes_starting_together_on_a_fresh_database_all_come_up(empty_db: str, tmp_path: Path) -> None:
    servers = [ServerProcess(empty_db, log_dir=tmp_path, command=command, env={"MAILHOOKS_REDIS_URL": ""})
               for command in ("serve", "api")]
    env = servers[0].env
    upgrades = [subprocess.Popen([MAILHOOKS, "db", "upgrade"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, cwd=ROOT) for _ in range(5)]
    try:
        with ThreadPoolExecutor(len(servers)) as pool:  # at the same moment as the upgrades
            starting = [pool.submit(proc.start, 60.0, False) for proc in servers]
            outputs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in upgrades]
            for future in starting:
                future.result()
        failed = [out[-2000:] for p, out in zip(upgrades, outputs, strict=True) if p.returncode != 0]
        assert failed == [], failed[0]
        for proc in servers:
            health = httpx.get(f"{proc.base_url}/healthz", timeout=10)
            assert health.status_code == 200, (proc.command, health.text, proc.logs()[-2000:])
    finally:
        for p in upgrades:
            if p.poll() is None:
                p.kill()
        for proc in servers:
            proc.stop()
