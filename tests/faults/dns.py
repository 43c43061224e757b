"""A DNS server we control, and a private mount namespace that makes a process use it and nothing else.

``StubDNS`` answers UDP queries on ``<a unique 127.x.y.z>:53`` (``/etc/resolv.conf`` cannot name a
port; loopback holds all of 127/8, and binding port 53 needs root, which tests and ``make chaos`` have).
The test decides, at any moment, what it answers:

- ``answer(name, ip)``: an A record (with ``ttl``) for a name; other names get NXDOMAIN, and AAAA
  queries for known names an empty NOERROR (so the answer is IPv4 only);
- ``fail("SERVFAIL")`` / ``fail("NXDOMAIN")``: every query gets that;
- ``drop()``: every query goes unanswered (the client times out);
- ``slow(seconds)``: every answer leaves that much later (queries are not serialised: each is
  answered on its own timer, as a distant resolver would);
- ``recover()``: back to normal answers, no delay.

``queries`` counts what arrived (name, type), so a test can see what a cache saved.

``namespace_argv()`` is the prefix that runs a command in a private mount namespace whose
``/etc/resolv.conf`` names only this stub and whose ``/etc/hosts`` knows only localhost: no query of
that process can leave the machine, and nothing is answered from the real hosts file. Example::

    stub = StubDNS().start()
    stub.answer("hook.test", "127.0.0.1")
    subprocess.Popen([*stub.namespace_argv(), "mailhooks", "serve", ...])
    stub.fail("SERVFAIL"); ...; stub.recover()
    stub.stop()

Plain class, importable without pytest (``make chaos`` reuses it).
"""

from __future__ import annotations

import asyncio
import enum
import random
import shutil
import socket
import tempfile
import threading
from collections import Counter
from pathlib import Path

from dnslib import QTYPE, RCODE, RR, A, DNSRecord


class Mode(enum.StrEnum):
    ANSWER = "answer"
    SERVFAIL = "SERVFAIL"
    NXDOMAIN = "NXDOMAIN"
    DROP = "drop"


class StubDNS:
    def __init__(self, ttl: int = 60, address: str | None = None) -> None:
        self.ttl = ttl
        self.address = address
        self.records: dict[str, str] = {}
        self.mode = Mode.ANSWER
        self.delay = 0.0
        self.queries: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="mailhooks-stubdns-"))
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # ------------------------------------------------------------------ what it answers
    def answer(self, name: str, ip: str) -> None:
        with self._lock:
            self.records[name.lower().rstrip(".")] = ip

    def fail(self, rcode: str = "SERVFAIL") -> None:
        self.mode = Mode(rcode)

    def drop(self) -> None:
        self.mode = Mode.DROP

    def slow(self, seconds: float) -> None:
        self.delay = seconds

    def recover(self) -> None:
        self.mode = Mode.ANSWER
        self.delay = 0.0

    def query_count(self, name: str | None = None) -> int:
        """Queries seen (every type), for one name or all."""
        with self._lock:
            return sum(n for (qname, _), n in self.queries.items() if name is None or qname == name.lower())

    # ------------------------------------------------------------------ the namespace
    @property
    def resolv_conf(self) -> Path:
        return self._dir / "resolv.conf"

    @property
    def hosts_file(self) -> Path:
        return self._dir / "hosts"

    def namespace_argv(self) -> list[str]:
        """``[...]`` to put before a command so it runs with this stub as its only resolver."""
        script = (f'mount --bind "{self.resolv_conf}" /etc/resolv.conf && '
                  f'mount --bind "{self.hosts_file}" /etc/hosts && exec "$@"')
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "mailhooks-stubdns"]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> StubDNS:
        if shutil.which("unshare") is None:
            raise RuntimeError("unshare (util-linux) is needed to run a process against the stub resolver")
        self._sock = self._bind()
        # One try, a short timeout: the client's own deadline is what tests watch.
        self.resolv_conf.write_text(f"nameserver {self.address}\noptions timeout:1 attempts:1\n")
        self.hosts_file.write_text("127.0.0.1 localhost\n::1 localhost\n")
        self._thread = threading.Thread(target=self._run, name="stub-dns", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("stub DNS did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _bind(self) -> socket.socket:
        last: OSError | None = None
        for _ in range(50):
            address = self.address or f"127.53.{random.randint(0, 255)}.{random.randint(1, 254)}"
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((address, 53))
            except OSError as exc:
                sock.close()
                last = exc
                if self.address:
                    break
                continue
            self.address = address
            return sock
        raise RuntimeError(f"cannot bind the stub DNS server to port 53: {last}")

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        stub = self

        class Protocol(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

            def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
                reply = stub._reply(data)
                if reply is None:
                    return
                if stub.delay > 0:
                    loop.call_later(stub.delay, self.transport.sendto, reply, addr)
                else:
                    self.transport.sendto(reply, addr)

        assert self._sock is not None
        transport, _ = loop.run_until_complete(loop.create_datagram_endpoint(Protocol, sock=self._sock))
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            transport.close()
            loop.close()

    def _reply(self, data: bytes) -> bytes | None:
        try:
            request = DNSRecord.parse(data)
        except Exception:  # not DNS: ignore, as a resolver would
            return None
        name = str(request.q.qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.queries[(name, str(qtype))] += 1
            ip = self.records.get(name)
        mode = self.mode
        if mode is Mode.DROP:
            return None
        reply = request.reply()
        if mode is Mode.SERVFAIL:
            reply.header.rcode = RCODE.SERVFAIL
        elif mode is Mode.NXDOMAIN or ip is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif qtype == "A":
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=self.ttl))
        return bytes(reply.pack())
