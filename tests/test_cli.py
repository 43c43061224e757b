"""The ``mailhooks`` command line contract (README.md#command-line), run as real subprocesses on an empty SQLite file
and an empty PostgreSQL database: accounts, keys, domains, ``db upgrade``, and the first-start
bootstrap of ``mailhooks serve`` whose printed curl lines must work as printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from tests.support import MAILHOOKS, ROOT, ServerProcess

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BOOTSTRAP_VARS = ("MAILHOOKS_BOOTSTRAP_USER", "MAILHOOKS_BOOTSTRAP_DOMAIN")


def base_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in BOOTSTRAP_VARS}
    return {**env, "MAILHOOKS_DATABASE_URL": db_url, **extra}


def cli(db_url: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([MAILHOOKS, *args], env=base_env(db_url), capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    if ok:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    else:
        assert done.returncode != 0, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("error: "), done.stderr
    return done


def one_json_line(done: subprocess.CompletedProcess[str]) -> Any:
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0])


def database_text(db_url: str) -> str:
    """Every byte the database holds, as text: the SQLite files, or every row of every PostgreSQL table."""
    if db_url.startswith("sqlite"):
        path = Path(db_url.removeprefix("sqlite:///"))
        files = [path, *path.parent.glob(path.name + "-*")]  # -wal / -journal too
        return b"".join(f.read_bytes() for f in files if f.exists()).decode("latin-1")

    async def dump() -> str:
        import asyncpg

        url = make_url(db_url)
        conn = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username or "postgres",
                                     password=url.password, database=url.database)
        try:
            tables = [r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = "
                                                                "'public'")]
            assert "api_keys" in tables, tables
            out: list[str] = []
            for table in tables:
                rows = await conn.fetch(f'SELECT x::text AS row FROM "{table}" x')
                out.extend(r["row"] for r in rows)
            return "\n".join(out)
        finally:
            await conn.close()

    return asyncio.run(dump())


def assert_stored_hashed(db_url: str, keys: list[str]) -> None:
    text = database_text(db_url)
    for key in keys:
        assert key not in text, "an API key is stored in plain text"
        assert key[12:] not in text, "the secret part of an API key is stored"


def get(url: str, user: str, key: str) -> httpx.Response:
    return httpx.get(url, auth=(user, key), timeout=30)


# ---------------------------------------------------------------------------- accounts, keys, domains
def test_accounts_keys_and_domains(empty_db: str, tmp_path: Path) -> None:
    assert cli(empty_db, "db", "upgrade").stdout == "database is up to date\n"

    created = one_json_line(cli(empty_db, "accounts", "create", "alice", "--json"))
    assert set(created) == {"username", "account_guid", "api_key"}
    assert created["username"] == "alice" and UUID_RE.match(created["account_guid"])
    first_key = created["api_key"]
    # a duplicate username is a clear error (the database's unique constraint, per backend), and prints no key
    dup = cli(empty_db, "accounts", "create", "alice", "--json", ok=False)
    assert "already exists" in dup.stderr and dup.stdout == ""

    added = one_json_line(cli(empty_db, "domains", "add", "Mail.Alice.example", "--account", "alice", "--json"))
    assert set(added) == {"domain", "domain_guid", "secret"}
    assert added["domain"] == "mail.alice.example" and UUID_RE.match(added["domain_guid"])
    assert len(added["secret"]) >= 16
    assert "already exists" in cli(empty_db, "domains", "add", "mail.alice.example", "--account", "alice",
                                   ok=False).stderr
    assert one_json_line(cli(empty_db, "domains", "list", "--json")) == [
        {"domain": "mail.alice.example", "domain_guid": added["domain_guid"], "account": "alice"}]

    second = one_json_line(cli(empty_db, "keys", "create", "alice", "--json"))
    assert second == {"username": "alice", "api_key": second["api_key"], "prefix": second["api_key"][:12],
                      "scope": "admin", "domain": None}
    second_key = second["api_key"]
    assert second_key != first_key
    listing = cli(empty_db, "keys", "list", "alice").stdout.splitlines()
    assert listing == [f"{first_key[:12]}…  admin  active", f"{second_key[:12]}…  admin  active"]

    server = ServerProcess(empty_db, log_dir=tmp_path, env=base_env(empty_db))
    server.start()
    try:
        mg = f"{server.base_url}/v3/domains/mail.alice.example/webhooks"
        ki = f"{server.base_url}/api/domains/mail.alice.example/webhooks"
        for key in (first_key, second_key):
            r = get(mg, "api", key)
            assert (r.status_code, r.content) == (200, b'{"webhooks":{}}\n')
            r = get(ki, "alice", key)
            assert r.status_code == 200 and r.json() == {"success": True, "data": [], "count": 0}

        # revoke the first key by the prefix exactly as `keys list` shows it (with the ellipsis)
        revoked = cli(empty_db, "keys", "revoke", listing[0].split()[0])
        assert revoked.stdout == "revoked 1 key(s)\n"
        r = get(mg, "api", first_key)
        assert (r.status_code, r.text, r.headers["www-authenticate"]) == (401, "Forbidden", 'Basic realm="MG API"')
        assert get(ki, "alice", first_key).status_code == 401
        r = httpx.get(f"{server.base_url}/v1/deliveries", headers={"Authorization": f"Bearer {first_key}"})
        assert r.status_code == 401
        assert get(mg, "api", second_key).status_code == 200  # the other key lives on
        assert cli(empty_db, "keys", "list", "alice").stdout.splitlines() == [
            f"{first_key[:12]}…  admin  revoked", f"{second_key[:12]}…  admin  active"]
    finally:
        server.stop()
    assert_stored_hashed(empty_db, [first_key, second_key])


def test_cli_errors_and_text_output(tmp_path: Path) -> None:
    """Mistakes are one clear ``error:`` line and a non-zero exit, never a traceback; the text forms."""
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    text = cli(db, "accounts", "create", "bob").stdout
    bob = re.fullmatch(r"account bob created\napi key \(shown once\): (\S+)\n", text)
    assert bob is not None, text
    assert cli(db, "domains", "add", "bob.example", "--account", "bob").stdout.startswith(
        "domain bob.example added (guid ")
    calls = [
        (("accounts", "create", "no spaces allowed"), "username"),
        (("domains", "add", "x.example", "--account", "nobody"), "nobody"),
        (("domains", "add", "not a domain", "--account", "bob"), "not a valid domain"),
        (("keys", "create", "nobody"), "nobody"),
        (("keys", "list", "nobody"), "nobody"),
        (("keys", "create", "bob", "--scope", "root"), "--scope must be one of admin, manage, ingest, read"),
        (("keys", "create", "bob", "--domain", "not-bobs.example"), "domain not found"),
        (("keys", "revoke", bob.group(1)[:11]), "no active key"),  # a prefix must be the whole shown prefix
        # nesting: beyond the ingest limit, and beyond what Python's parser goes (a traceback on main)
        (("events", "emit", "bob.example", "delivered", "--recipient", "r@example.org",
          "--data", '{"x":' + "[" * 40 + "]" * 40 + "}"), "nest deeper than 32"),
        (("events", "emit", "bob.example", "delivered", "--recipient", "r@example.org",
          "--data", '{"x":' + "[" * 5000 + "]" * 5000 + "}"), "--data must be a json object"),
    ]
    with ThreadPoolExecutor(len(calls)) as pool:  # independent processes: run them side by side
        results = list(pool.map(lambda call: cli(db, *call[0], ok=False), calls))
    for (args, message), done in zip(calls, results, strict=True):
        assert message in done.stderr.lower(), (args, done.stderr)
    assert cli(db, "domains", "list").stdout.startswith("bob.example  bob  ")
    assert cli(db, "keys", "list", "bob").stdout == f"{bob.group(1)[:12]}…  admin  active\n"
    ingest = cli(db, "keys", "create", "bob", "--scope", "INGEST", "--domain", "Bob.example").stdout
    assert cli(db, "keys", "list", "bob").stdout.splitlines()[1].endswith("ingest bob.example  active"), ingest


# ---------------------------------------------------------------------------- first start
def curl_lines(log: str) -> list[str]:
    return [line.strip() for line in log.splitlines() if line.strip().startswith("curl ")]


def run_curl_line(line: str) -> httpx.Response:
    """Send the request a pasted curl line makes: the shell's word splitting, then --user and the URL."""
    argv = shlex.split(line)
    assert argv[0] == "curl", argv
    user = argv[argv.index("--user") + 1]
    urls = [a for a in argv[1:] if a.startswith("http")]
    assert len(urls) == 1, argv
    name, _, key = user.partition(":")
    return httpx.get(urls[0], auth=(name, key), timeout=30)


def test_first_start_bootstraps_once_with_working_curl_lines(empty_db: str, tmp_path: Path) -> None:
    first = ServerProcess(empty_db, log_dir=tmp_path / "first", env=base_env(empty_db))
    first.log_path.parent.mkdir()
    first.start()
    try:
        log = first.logs()
        assert "account:  admin" in log and "domain:   example.test" in log, log
        found = re.search(r"API key:\s+(\S+)", log)
        assert found is not None, log
        key = found.group(1)
        assert log.count(key) == 1 + 2, log  # the key line, then one in each curl line
        lines = curl_lines(log)
        assert len(lines) == 2, log  # one per dialect
        mailgun_line = next(line for line in lines if "/v3/domains/example.test/webhooks" in line)
        kirim_line = next(line for line in lines if "/api/domains/example.test/webhooks" in line)
        assert first.base_url in mailgun_line and first.base_url in kirim_line

        r = run_curl_line(mailgun_line)
        assert (r.status_code, r.content) == (200, b'{"webhooks":{}}\n')
        r = run_curl_line(kirim_line)
        assert r.status_code == 200 and r.json() == {"success": True, "data": [], "count": 0}
        if shutil.which("curl"):  # and pasted into a shell as printed
            for line, expected in ((mailgun_line, '{"webhooks":{}}\n'), (kirim_line, '"success":true')):
                out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=30)
                assert out.returncode == 0 and expected in out.stdout, (line, out.stdout, out.stderr)
        # the key really is admin's: Kirim refuses it under another username
        assert get(f"{first.base_url}/api/domains/example.test/webhooks", "someone", key).status_code == 401
    finally:
        first.stop()

    assert [(d["domain"], d["account"]) for d in one_json_line(cli(empty_db, "domains", "list", "--json"))] == [
        ("example.test", "admin")]

    second = ServerProcess(empty_db, log_dir=tmp_path / "second", env=base_env(empty_db))
    second.log_path.parent.mkdir()
    second.start()
    try:
        r = get(f"{second.base_url}/v3/domains/example.test/webhooks", "api", key)
        assert r.status_code == 200  # the first key still works; no second account or key was made
        log = second.logs()
        assert "API key" not in log and key not in log and not curl_lines(log), log
    finally:
        second.stop()
    assert cli(empty_db, "keys", "list", "admin").stdout == f"{key[:12]}…  admin  active\n"
    assert_stored_hashed(empty_db, [key])


def test_bootstrap_names_come_from_the_environment(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'boot.db'}"
    # a domain name that cannot be one: a clear message, and nothing half-made whose key nobody saw
    bad = ServerProcess(db_url, log_dir=tmp_path / "bad", env=base_env(
        db_url, MAILHOOKS_BOOTSTRAP_USER="ops", MAILHOOKS_BOOTSTRAP_DOMAIN="not a domain"))
    bad.log_path.parent.mkdir()
    bad.start()
    bad.stop()
    assert "MAILHOOKS_BOOTSTRAP_DOMAIN" in bad.logs() and "API key" not in bad.logs(), bad.logs()
    assert "no account 'ops'" in cli(db_url, "keys", "list", "ops", ok=False).stderr

    # fixed: the next start bootstraps with the names from the environment
    server = ServerProcess(db_url, log_dir=tmp_path, env=base_env(
        db_url, MAILHOOKS_BOOTSTRAP_USER="ops", MAILHOOKS_BOOTSTRAP_DOMAIN="mail.ops.test"))
    server.start()
    try:
        log = server.logs()
        assert "account:  ops" in log and "domain:   mail.ops.test" in log, log
        kirim_line = next(line for line in curl_lines(log) if "/api/" in line)
        assert "'ops:" in kirim_line
        r = run_curl_line(kirim_line)
        assert r.status_code == 200 and r.json() == {"success": True, "data": [], "count": 0}
    finally:
        server.stop()
    assert [(d["domain"], d["account"]) for d in one_json_line(cli(db_url, "domains", "list", "--json"))] == [
        ("mail.ops.test", "ops")]
