"""Connections as a client sees them (issue 9, item 7): an unexpected error answers the dialect's 500 and
keeps the keep-alive connection; a request head that does not arrive whole in time is cut off (slowloris)
while normal requests go on. Raw sockets, so that "the same connection" and "closed by the server" are
observed, not inferred (an HTTP client would silently reconnect).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response

from mailhooks.config import Settings
from mailhooks.db.migrate import upgrade
from mailhooks.services import web_app
from mailhooks.serving import uvicorn_config
from tests.faults.slow_clients import SlowHeads
from tests.support import ServerProcess, free_port

HEAD_TIMEOUT = 1.0


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a content-length body; raises ConnectionError if the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed by the server after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server mid-body")
        body += chunk
    return int(status_line.split()[1]), headers, body[:length]


def request(method: str, path: str, extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


def closed_after(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock`` (reading whatever it says first), failing past ``limit``."""
    start = time.monotonic()
    sock.settimeout(limit)
    said = b""
    try:
        while chunk := sock.recv(4096):
            said += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {limit} s (said {said!r})")
    except ConnectionResetError:
        pass
    return time.monotonic() - start, said


# ---------------------------------------------------------------------- unexpected errors keep the connection
class Boom(Exception):
    pass


@pytest.fixture(scope="module")
def booming(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The production app and uvicorn configuration, in this process, with routes that fail unexpectedly
    added here (there is no such route in the product: every known 500 is fixed)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('boom') / 'mailhooks.db'}"
    upgrade(url)
    app = web_app(Settings(database_url=url))

    async def boom(_request: Request) -> Response:
        raise Boom("unexpected")

    for path in ("/v1/boom", "/v3/domains/example.test/boom", "/api/domains/example.test/boom", "/ui/boom"):
        app.add_route(path, boom, methods=["GET", "POST"])
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, head_timeout=HEAD_TIMEOUT))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)


@pytest.mark.parametrize(("path", "content_type", "shape"), [
    ("/v1/boom", "application/json", b'{"message":"Internal server error"}'),
    ("/v3/domains/example.test/boom", "application/json; charset=utf-8", b'{"message":"Internal server error"}\n'),
    ("/api/domains/example.test/boom", "application/json",
     b'{"success":false,"message":"An error occurred while processing the request."}'),
    ("/ui/boom", "text/html; charset=utf-8", b"Something went wrong on our side."),
])
def test_a_500_keeps_the_connection(booming: str, path: str, content_type: str, shape: bytes) -> None:
    host, port = booming.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        for _ in range(2):  # twice over, then a normal request: all on the one connection
            sock.sendall(request("GET", path))
            status, headers, body = read_response(sock)
            assert status == 500
            assert headers["content-type"] == content_type
            assert shape in body
            assert headers.get("connection", "keep-alive") != "close"
        sock.sendall(request("GET", "/livez"))
        status, _, body = read_response(sock)
        assert (status, body) == (200, b'{"status":"ok"}')
    # and through an ordinary pooled client, one connection for all of it
    with httpx.Client(base_url=f"http://{booming}", limits=httpx.Limits(max_connections=1)) as client:
        assert client.post(path, content=b"x").status_code == 500
        assert client.get("/livez").status_code == 200


# ---------------------------------------------------------------------- request heads have a deadline
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real ``mailhooks serve`` with a short head deadline."""
    folder = tmp_path_factory.mktemp("slowloris")
    proc = ServerProcess(f"sqlite:///{folder / 'mailhooks.db'}", log_dir=folder,
                         env={"MAILHOOKS_HEADER_TIMEOUT": str(HEAD_TIMEOUT)})
    proc.start()
    yield proc
    proc.stop()


def test_half_a_request_head_is_cut_off(served: ServerProcess) -> None:
    trickling = SlowHeads("127.0.0.1", served.port, connections=5, interval=0.3).start()
    silent = SlowHeads("127.0.0.1", served.port, connections=2, silent=True).start()
    try:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as half:
            half.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line: the head never ends
            # meanwhile, normal requests are served
            with httpx.Client(base_url=served.base_url) as client:
                for _ in range(5):
                    assert client.get("/livez").status_code == 200
            took, said = closed_after(half, HEAD_TIMEOUT + 5)
            assert said.startswith(b"HTTP/1.1 408 "), said
        # a header line every 0.3 s does not buy more time: the deadline runs from the connect
        for fault in (trickling, silent):
            assert fault.wait_all_cut_off(HEAD_TIMEOUT + 5), (fault.cut_off, fault.connections)
            assert all(HEAD_TIMEOUT * 0.8 <= seconds <= HEAD_TIMEOUT + 3 for seconds in fault.closed_after), \
                fault.closed_after
            assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in fault.answers), fault.answers
    finally:
        trickling.stop()
        silent.stop()
    assert httpx.get(f"{served.base_url}/livez").status_code == 200


def test_heads_that_arrive_in_time_are_served(served: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        # a head in two pieces within the deadline
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(HEAD_TIMEOUT / 3)
        sock.sendall(b"\r\n")
        assert read_response(sock)[0] == 200
        # the same connection, a second request after a pause longer than one deadline but within
        # the keep-alive timeout: the deadline applies per head, not per connection
        time.sleep(HEAD_TIMEOUT * 1.5)
        sock.sendall(request("GET", "/livez"))
        assert read_response(sock)[0] == 200
        # and a late second head is cut off like the first would be
        sock.sendall(b"GET /livez HTTP/1.1\r\n")
        took, said = closed_after(sock, HEAD_TIMEOUT + 5)
        assert took >= HEAD_TIMEOUT * 0.8
        assert said.startswith(b"HTTP/1.1 408 ")
