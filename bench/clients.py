"""HTTP clients for the sender: CPU per request of one sending process, client against client.

    python bench/clients.py --count 20000 --rounds 3
    python bench/clients.py --clients aiohttp-sender,pyreqwest --count 20000 --rounds 5

Starts ``bench/receiver.py`` on a free port, then, round after round, runs every client in a fresh
subprocess (in alternating order, so the shared machine's drift falls on all of them alike). A child
builds its payloads (``baseline.sample``, signed before timing, as the worker signs before sending),
warms its pool, then sends ``--count`` POSTs with ``--concurrency`` in flight on uvloop, reading at
most ``EXCERPT_BYTES`` of each answer. It reports the CPU seconds its own process spent
(``getrusage(RUSAGE_SELF)``: every thread, so a Rust client's runtime threads count) and the wall time.
Prints one JSON line per run and a table of medians: CPU ms per 1,000 requests, requests/s, and the
CPU relative to ``aiohttp-sender`` (mailhooks' own ``Sender``). Clients not installed are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXCERPT_BYTES = 1024
WARMUP = 500
POOL = 1000
SLOW = {"httpx": 2000, "niquests": 2000}  # these take minutes for 20,000 here: capped, CPU per request still comparable

Post = Callable[[bytes, dict[str, str]], Awaitable[int]]
Close = Callable[[], Awaitable[None]]


# --- the candidates: each returns (post, close); post sends one request and returns its status ---

async def pinned_sender(url: str, concurrency: int) -> tuple[Post, Close]:
    """mailhooks' ``PinnedSender`` (pyreqwest) as the worker uses it, addressed by name (``localhost``):
    the policy's lookup per request, a client pinned to the checked address."""
    from mailhooks.core.targets import TargetPolicy
    from mailhooks.sending.pinned import PinnedSender
    sender = PinnedSender(TargetPolicy(allowed_cidrs=[ipaddress.ip_network("127.0.0.0/8"),
                                                      ipaddress.ip_network("::1/128")]), timeout=10.0)
    named = url.replace("127.0.0.1", "localhost")

    async def post(body: bytes, headers: dict[str, str]) -> int:
        result = await sender.post(named, body, headers)
        if result.status_code is None:
            raise RuntimeError(result.error)
        return result.status_code
    return post, sender.close


async def aiohttp_baseline(url: str, concurrency: int) -> tuple[Post, Close]:
    """As ``bench/baseline.py`` sends: a default session, the whole answer read."""
    import aiohttp
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    async def post(body: bytes, headers: dict[str, str]) -> int:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status
    return post, session.close


async def aiohttp_sender(url: str, concurrency: int) -> tuple[Post, Close]:
    """mailhooks' own ``Sender``: the policy's resolver, literal check, deadline, bounded excerpt."""
    from mailhooks.core.targets import TargetPolicy
    from mailhooks.sending.sender import Sender
    sender = Sender(TargetPolicy(allowed_cidrs=[ipaddress.ip_network("127.0.0.0/8")]), timeout=10.0)

    async def post(body: bytes, headers: dict[str, str]) -> int:
        result = await sender.post(url, body, headers)
        if result.status_code is None:
            raise RuntimeError(result.error)
        return result.status_code
    return post, sender.close


async def aiohttp_tuned(url: str, concurrency: int) -> tuple[Post, Close]:
    """The sender's session plus every cheap option: no cookie jar, no decompression, no auto headers,
    the session's timeout object reused, the URL parsed once."""
    import aiohttp
    from yarl import URL
    connector = aiohttp.TCPConnector(limit=512, limit_per_host=0, ttl_dns_cache=None, use_dns_cache=False,
                                     enable_cleanup_closed=True)
    session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10.0),
                                    auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                                    skip_auto_headers=("Accept-Encoding", "Accept", "User-Agent"),
                                    read_bufsize=2**16)
    target = URL(url)

    async def post(body: bytes, headers: dict[str, str]) -> int:
        async with session.post(target, data=body, headers=headers, allow_redirects=False) as response:
            await response.content.read(EXCERPT_BYTES)
            return response.status
    return post, session.close


async def httpx_client(url: str, concurrency: int) -> tuple[Post, Close]:
    import httpx
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency), timeout=10.0,
                               follow_redirects=False)

    async def post(body: bytes, headers: dict[str, str]) -> int:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            async for _chunk in response.aiter_raw(EXCERPT_BYTES):
                break
            return response.status_code
    return post, client.aclose


async def niquests_client(url: str, concurrency: int) -> tuple[Post, Close]:
    import niquests
    session = niquests.AsyncSession(pool_maxsize=concurrency, disable_http2=True, disable_http3=True)

    async def post(body: bytes, headers: dict[str, str]) -> int:
        response = await session.post(url, data=body, headers=headers, allow_redirects=False, timeout=10.0,
                                      stream=True)
        await response.raw.read(EXCERPT_BYTES)
        await response.close()
        return int(response.status_code or 0)

    async def close() -> None:
        await session.close()
    return post, close


async def aiosonic_client(url: str, concurrency: int) -> tuple[Post, Close]:
    import aiosonic
    from aiosonic.pools import PoolConfig
    from aiosonic.timeout import Timeouts
    pools = {":default": PoolConfig(size=concurrency, max_conn_requests=None)}
    client = aiosonic.HTTPClient(aiosonic.TCPConnector(pool_configs=pools))
    timeouts = Timeouts(request_timeout=10.0)

    async def post(body: bytes, headers: dict[str, str]) -> int:
        response = await client.post(url, data=body, headers=headers, follow=False, timeouts=timeouts)
        await response.content()
        return response.status_code

    async def close() -> None:
        await client.aclose()
    return post, close


async def pyreqwest_client(url: str, concurrency: int) -> tuple[Post, Close]:
    from pyreqwest.client import ClientBuilder
    client = (ClientBuilder().follow_redirects(False).timeout(datetime.timedelta(seconds=10))
              .max_connections(concurrency).gzip(False).brotli(False).deflate(False).zstd(False)
              .error_for_status(False).build())

    async def post(body: bytes, headers: dict[str, str]) -> int:
        async with client.post(url).body_bytes(body).headers(headers).build_streamed() as response:
            await response.body_reader.read(EXCERPT_BYTES)
            return response.status
    return post, client.close


async def pyreqwest_pinned(url: str, concurrency: int) -> tuple[Post, Close]:
    """What a pyreqwest sender would have to do to keep the SSRF guarantee: reqwest takes no resolver
    from Python, only build-time ``resolve(host, ip, port)`` pins, so one client per (host, checked
    address), the policy's cached lookup on every request, and the URL addressed by name (``localhost``)."""
    from pyreqwest.client import ClientBuilder
    from pyreqwest.http import Url

    from mailhooks.core.targets import TargetPolicy
    policy = TargetPolicy(allowed_cidrs=[ipaddress.ip_network("127.0.0.0/8")])
    named = Url(url.replace("127.0.0.1", "localhost"))
    host, port = str(named.host_str), int(named.port or 80)
    clients: dict[tuple[str, str], Any] = {}
    deadline = datetime.timedelta(seconds=10)

    def client_for(address: str) -> Any:
        client = clients.get((host, address))
        if client is None:
            client = clients[(host, address)] = (
                ClientBuilder().follow_redirects(False).timeout(deadline).max_connections(concurrency)
                .gzip(False).brotli(False).deflate(False).zstd(False).error_for_status(False)
                .resolve(host, address, port).build())
        return client

    async def post(body: bytes, headers: dict[str, str]) -> int:
        addresses = await policy.resolve(host, port)
        request = client_for(str(addresses[0])).post(named).body_bytes(body).headers(headers).timeout(deadline)
        async with request.build_streamed() as response:
            await response.body_reader.read(EXCERPT_BYTES)
            return response.status

    async def close() -> None:
        for client in clients.values():
            await client.close()
    return post, close


async def rnet_client(url: str, concurrency: int) -> tuple[Post, Close]:
    import rnet
    client = rnet.Client(allow_redirects=False, timeout=10, pool_max_size=concurrency)

    async def post(body: bytes, headers: dict[str, str]) -> int:
        response = await client.post(url, body=body, headers=headers)
        await response.bytes()
        status = int(response.status)
        await response.close()
        return status

    async def close() -> None:
        return None
    return post, close


async def primp_client(url: str, concurrency: int) -> tuple[Post, Close]:
    import primp
    client = primp.AsyncClient(follow_redirects=False, timeout=10)

    async def post(body: bytes, headers: dict[str, str]) -> int:
        response = await client.post(url, content=body, headers=headers)
        return int(response.status_code)

    async def close() -> None:
        return None
    return post, close


async def httpr_client(url: str, concurrency: int) -> tuple[Post, Close]:
    import httpr
    client = httpr.AsyncClient(follow_redirects=False, timeout=10)

    async def post(body: bytes, headers: dict[str, str]) -> int:
        response = await client.post(url, content=body, headers=headers)
        return int(response.status_code)

    async def close() -> None:
        await client.aclose()
    return post, close


CLIENTS: dict[str, Callable[[str, int], Awaitable[tuple[Post, Close]]]] = {
    "aiohttp-sender": aiohttp_sender,
    "pinned-sender": pinned_sender,
    "aiohttp-baseline": aiohttp_baseline,
    "aiohttp-tuned": aiohttp_tuned,
    "httpx": httpx_client,
    "niquests": niquests_client,
    "aiosonic": aiosonic_client,
    "pyreqwest": pyreqwest_client,
    "pyreqwest-pinned": pyreqwest_pinned,
    "rnet": rnet_client,
    "primp": primp_client,
    "httpr": httpr_client,
}


# --- one child process: one client, timed ---

def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _child(name: str, url: str, count: int, concurrency: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from baseline import SIGNING_KEY, sample
    events = [sample(i) for i in range(POOL)]
    requests = [events[i].render(SIGNING_KEY, f"msg_{i}") for i in range(POOL)]
    post, close = await CLIENTS[name](url, concurrency)

    async def drive(total: int) -> None:
        indices = iter(range(total))

        async def lane() -> None:
            for i in indices:
                body, headers = requests[i % POOL]
                status = await post(body, headers)
                if status != 200:
                    raise RuntimeError(f"receiver answered {status}")
        await asyncio.gather(*(lane() for _ in range(concurrency)))

    await drive(WARMUP)
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    await drive(count)
    cpu, wall = _cpu_seconds() - cpu0, time.perf_counter() - wall0
    await close()
    return {"client": name, "count": count, "cpu_s": round(cpu, 4), "wall_s": round(wall, 4),
            "cpu_ms_per_1000": round(cpu / count * 1e6, 1), "rate": round(count / wall, 1)}


def _run_child(name: str, url: str, count: int, concurrency: int) -> dict[str, Any] | None:
    proc = subprocess.run([sys.executable, __file__, "--child", name, "--url", url, "--count", str(count),
                           "--concurrency", str(concurrency)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        print(f"{name}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_receiver() -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "receiver.py"), "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "receiver listening on PORT", or EOF if it died
    if "listening" not in line:
        proc.kill()
        raise RuntimeError("receiver did not start")
    return proc, f"http://127.0.0.1:{port}/hook"


def _installed(name: str) -> bool:
    module = "pyreqwest" if name == "pinned-sender" else name.split("-")[0]
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, timeout=60)
    return probe.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        import uvloop
        print(json.dumps(uvloop.run(_child(args.child, args.url, args.count, args.concurrency))))
        return
    names = [n for n in args.clients.split(",") if n in CLIENTS and _installed(n)]
    receiver, url = _start_receiver()
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    try:
        for round_no in range(args.rounds):
            order = names if round_no % 2 == 0 else names[::-1]
            for name in order:
                result = _run_child(name, url, min(args.count, SLOW.get(name, args.count)), args.concurrency)
                if result is not None:
                    runs[name].append(result)
                    print(json.dumps({"round": round_no, **result}), flush=True)
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    reference = statistics.median(r["cpu_ms_per_1000"] for r in runs.get("aiohttp-sender", [])) \
        if runs.get("aiohttp-sender") else None
    print(f"\n{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {args.count} POSTs x {args.rounds} rounds, "
          f"{args.concurrency} in flight, one process per client, uvloop; medians")
    print(f"{'client':<18} {'CPU ms/1000 req':>16} {'req/s':>9} {'CPU vs sender':>14}  runs")
    for name in names:
        if not runs[name]:
            print(f"{name:<18} {'failed':>16}")
            continue
        cpu = statistics.median(r["cpu_ms_per_1000"] for r in runs[name])
        rate = statistics.median(r["rate"] for r in runs[name])
        relative = f"{cpu / reference:.2f}x" if reference else "-"
        print(f"{name:<18} {cpu:>16.1f} {rate:>9.0f} {relative:>14}  {len(runs[name])}")


if __name__ == "__main__":
    main()
