"""A PostgreSQL cluster of our own, to stop and start under load (never the shared one on 5432).

    cluster = PgCluster().start()           # initdb + pg_ctl start on a free 127.0.0.1 port, trust auth
    url = cluster.create_database("mailhooks")   # postgresql://postgres@127.0.0.1:PORT/mailhooks
    cluster.stop("immediate")               # like a crash: backends killed, clients see their sockets close
    cluster.start()                         # crash recovery, then it accepts connections again
    cluster.freeze()                        # SIGSTOP every server process: a hung database (sockets stay open)
    cluster.thaw()                          # SIGCONT: it carries on where it stopped
    cluster.destroy()                       # stop and remove the data directory

Debian's server binaries (``/usr/lib/postgresql/<version>/bin``). ``initdb`` refuses to run as root, so
under root every server command runs as the ``postgres`` user (``runuser``) in a data directory it owns.
Plain class (no pytest) so that ``make chaos`` can use it too.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

from tests.faults.loopback import free_port

PG_ROOT = Path("/usr/lib/postgresql")
StopMode = Literal["smart", "fast", "immediate"]


def pg_bin_dir() -> Path:
    """The newest Debian PostgreSQL server installed (``MAILHOOKS_PG_BIN`` overrides)."""
    if override := os.environ.get("MAILHOOKS_PG_BIN"):
        return Path(override)
    versions = sorted((p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not versions:
        raise FileNotFoundError(f"no PostgreSQL server binaries under {PG_ROOT}")
    return versions[-1]


def available() -> bool:
    try:
        pg_bin_dir()
    except FileNotFoundError:
        return False
    return os.geteuid() != 0 or shutil.which("runuser") is not None



class PgCluster:
    """One throwaway cluster: 127.0.0.1 only, trust authentication, superuser ``postgres``."""

    def __init__(self, port: int | None = None, bin_dir: Path | None = None, os_user: str = "postgres") -> None:
        self.port = port or free_port()
        self.bin_dir = bin_dir or pg_bin_dir()
        self.as_root = os.geteuid() == 0
        self.os_user = os_user if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        self.base = Path(tempfile.mkdtemp(prefix="mailhooks-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "run"
        self.log_path = self.base / "postgresql.log"
        self._initialised = False
        self.frozen = False

    # ------------------------------------------------------------------ process control
    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", self.os_user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.base)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}\n"
                               f"{self.logs()}")
        return done

    def _init(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            account = pwd.getpwnam(self.os_user)
            for path in (self.base, self.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.socket_dir}'\nmax_connections = 200\n"
                       "shared_buffers = 32MB\nlog_min_messages = warning\n")
        self._initialised = True

    def start(self, timeout: float = 60.0) -> PgCluster:
        """initdb on first use, then start and wait until it accepts connections (crash recovery included)."""
        if not self._initialised:
            self._init()
        if self.running():
            return self
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log_path), "-w",
                  "-t", str(int(timeout)), timeout=timeout + 10)
        return self

    def stop(self, mode: StopMode = "fast", timeout: float = 60.0) -> None:
        """``fast``: sessions are told and disconnected; ``immediate``: processes are killed, like a crash."""
        if self.frozen:
            self.thaw()
        if self.running():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout)),
                      timeout=timeout + 10)

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, walwriter ...)."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return []
        postmaster = int(pid_file.read_text().split("\n", 1)[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP the whole cluster: connections stay open and new ones are accepted by the kernel, but
        nothing answers (what a wedged host, a storage stall or a frozen VM looks like to clients)."""
        for pid in self.processes():  # the postmaster first: it forks no new backend meanwhile
            os.kill(pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        for pid in reversed(self.processes()):
            os.kill(pid, signal.SIGCONT)
        self.frozen = False

    def running(self) -> bool:
        if not (self.data / "postmaster.pid").exists():
            return False
        command = [str(self.bin_dir / "pg_ctl"), "status", "-D", str(self.data)]
        if self.as_root:
            command = ["runuser", "-u", self.os_user, "--", *command]
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0

    def destroy(self) -> None:
        try:
            if self._initialised:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ------------------------------------------------------------------ databases
    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        return self._run("psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                         "-d", dbname, "-v", "ON_ERROR_STOP=1", "-c", sql).stdout

    def create_database(self, dbname: str) -> str:
        self.psql(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)

    def wait_accepting(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"PostgreSQL on port {self.port} did not come back")

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        self.destroy()
