"""A Redis of our own, to freeze and thaw, and a blackhole that accepts connections and never answers.

Never the shared Redis on 6379: a frozen shared server would hang every other test using it.

    with RedisServer() as redis:        # redis-server on a free 127.0.0.1 port, no persistence
        env["MAILHOOKS_REDIS_URL"] = redis.url
        redis.freeze()                   # SIGSTOP: connections stay open, nothing is answered
        redis.thaw()                     # SIGCONT: it answers again, with its data intact

    with Blackhole() as hole:           # a TCP listener that accepts and never reads nor answers
        env["MAILHOOKS_REDIS_URL"] = hole.url

Plain classes (no pytest) so that ``make chaos`` can use them too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from tests.faults.loopback import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"



def _pong(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``redis-server`` on a free port of 127.0.0.1, without persistence, owned by this object."""

    def __init__(self, port: int | None = None, executable: str = REDIS_SERVER) -> None:
        self.port = port or free_port()
        self.executable = executable
        self.workdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path | None:
        return self.workdir / "redis.log" if self.workdir else None

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.workdir = Path(tempfile.mkdtemp(prefix="mailhooks-redis-"))
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir), "--logfile", str(self.log_path),
                "--daemonize", "no", "--protected-mode", "yes"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _pong(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                logs = self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{logs}")
            time.sleep(0.05)
        return self

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections and buffers commands; nothing is answered."""
        assert self.proc is not None, "start() first"
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT: everything buffered meanwhile is answered, then it serves as before."""
        assert self.proc is not None, "start() first"
        os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def ping(self) -> bool:
        return _pong(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.frozen:
                self.thaw()  # a stopped process would not act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        self.stop()


class Blackhole:
    """A TCP listener on 127.0.0.1 that accepts every connection and never reads or answers: what a
    dependency behind a dead firewall rule or a wedged proxy looks like to its clients."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._held: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Blackhole:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(512)
        listener.settimeout(0.2)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="blackhole", daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)  # held open, never read: the peer's writes just fill the buffers
            self.accepted += 1

    def stop(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._held.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> Blackhole:
        return self.start()

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        self.stop()
