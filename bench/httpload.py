"""A small closed-loop HTTP load generator (aiohttp), for the management-API and ingest scenarios.

    python bench/httpload.py --url http://127.0.0.1:8000/healthz --count 20000 --concurrency 32 [--auth api:KEY]

Prints ``{"count", "seconds", "rate", "statuses"}`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
from collections import Counter

import aiohttp
import orjson
import uvloop


async def load(url: str, count: int, concurrency: int, headers: dict[str, str], method: str = "GET",
               body: bytes | None = None) -> dict[str, object]:
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async with session.request(method, url, data=body) as warm:  # open one connection before timing
            await warm.read()
        remaining = iter(range(count))

        async def lane() -> None:
            for _ in remaining:
                async with session.request(method, url, data=body) as response:
                    await response.read()
                    statuses[response.status] += 1

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"count": count, "seconds": seconds, "rate": count / seconds,
            "statuses": {str(k): v for k, v in statuses.items()}}


def auth_header(user_key: str | None) -> dict[str, str]:
    if not user_key:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(user_key.encode()).decode()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--auth")
    args = parser.parse_args()
    result = uvloop.run(load(args.url, args.count, args.concurrency, auth_header(args.auth)))
    print(orjson.dumps(result).decode())
