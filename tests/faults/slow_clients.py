"""Slow clients (slowloris): connections that send a request head a little at a time and never finish it.

Plain threads and sockets, importable without pytest, for the tests and for ``make chaos``::

    fault = SlowHeads("127.0.0.1", 8000, connections=50, interval=0.3).start()
    ...                      # the server keeps serving others; each of these is cut off at its deadline
    fault.stop()
    fault.cut_off            # how many the server closed, fault.answers their first bytes (b"HTTP/1.1 408 …")
"""

from __future__ import annotations

import socket
import threading
import time


class SlowHeads:
    """``connections`` sockets, each sending ``GET /livez HTTP/1.1`` and then one header line every
    ``interval`` seconds, never the blank line that ends the head."""

    def __init__(self, host: str, port: int, connections: int = 1, interval: float = 0.3,
                 silent: bool = False) -> None:
        self.host = host
        self.port = port
        self.connections = connections
        self.interval = interval
        self.silent = silent  # connect and send nothing at all
        self.cut_off = 0
        self.answers: list[bytes] = []
        self.closed_after: list[float] = []  # seconds from connect to the server's close, per connection
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> SlowHeads:
        for _ in range(self.connections):
            thread = threading.Thread(target=self._one, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def wait_all_cut_off(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.cut_off == self.connections:
                    return True
            time.sleep(0.05)
        return False

    def _one(self) -> None:
        start = time.monotonic()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=5)
        except OSError:
            return
        with sock:
            sock.settimeout(self.interval)
            try:
                if not self.silent:
                    sock.sendall(b"GET /livez HTTP/1.1\r\nHost: " + self.host.encode() + b"\r\n")
                while not self._stop.is_set():
                    try:
                        said = sock.recv(4096)
                    except TimeoutError:
                        if not self.silent:
                            sock.sendall(b"X-Slow: 1\r\n")
                        continue
                    self._closed(start, said, sock)
                    return
            except OSError:  # reset while sending: cut off as well
                self._closed(start, b"", None)

    def _closed(self, start: float, said: bytes, sock: socket.socket | None) -> None:
        while sock is not None and said and not said.endswith(b"Request Timeout"):
            try:
                more = sock.recv(4096)
            except OSError:
                break
            if not more:
                break
            said += more
        with self._lock:
            self.cut_off += 1
            self.closed_after.append(time.monotonic() - start)
            if said:
                self.answers.append(said)
