"""A fast webhook receiver for the benchmark: counts deliveries, remembers arrival times.

    python bench/receiver.py --port 9100

``GET /stats`` → ``{"received": n, "unique": n}``; ``GET /arrivals`` → ``{event_id: first_arrival_epoch}``
(only while tracking: ``--track`` or ``POST /track?on=1``, which parses each body); any POST to a path
starting with ``/hook`` counts; ``POST /mode?status=503`` makes every following POST answer that status
(``200`` to recover); ``POST /reset`` forgets everything.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson
import uvloop
from aiohttp import web


class Receiver:
    def __init__(self, track: bool) -> None:
        self.track = track
        self.status = 200
        self.received = 0
        self.ids: set[str] = set()
        self.arrivals: dict[str, float] = {}

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if request.method == "POST" and path.startswith("/hook"):
            body = await request.read()
            if self.status != 200:
                return web.Response(status=self.status)
            self.received += 1
            self.ids.add(request.headers.get("webhook-id", ""))
            if self.track:
                now = time.time()
                data = orjson.loads(body)
                event = data.get("event-data") or data
                event_id = event.get("id") or event.get("message_guid")
                if event_id and event_id not in self.arrivals:
                    self.arrivals[event_id] = now
            return web.Response(text="ok")
        if path == "/stats":
            return web.Response(body=orjson.dumps({"received": self.received, "unique": len(self.ids)}),
                                content_type="application/json")
        if path == "/arrivals":
            return web.Response(body=orjson.dumps(self.arrivals), content_type="application/json")
        if path == "/track":
            self.track = request.query.get("on", "1") == "1"
            return web.Response(text=str(self.track))
        if path == "/mode":
            self.status = int(request.query.get("status", "200"))
            return web.Response(text=str(self.status))
        if path == "/reset":
            self.received = 0
            self.ids.clear()
            self.arrivals.clear()
            return web.Response(text="reset")
        return web.Response(status=404)


async def main(port: int, track: bool) -> None:
    receiver = Receiver(track)
    server = web.Server(receiver.handle, access_log=None)
    runner = web.ServerRunner(server, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print(f"receiver listening on {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--track", action="store_true")
    args = parser.parse_args()
    uvloop.run(main(args.port, args.track))
