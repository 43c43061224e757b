"""``make chaos``: fault scenarios end to end against real processes, one table of what survived.

Each scenario builds a fresh world (a database, an account, a domain, a webhook pointing at a counting
receiver, and real ``mailhooks`` processes), posts events one per request at a steady rate the way a
mail server does, stages one fault for real in the middle of that flow (a receiver that goes away, a
receiver answering bytes PostgreSQL refuses, a worker killed with SIGKILL, a database stopped, a Redis
frozen with SIGSTOP, a resolver that fails), heals it, waits for the queue to drain, and counts:

- **acknowledged**: events answered ``202`` (mailhooks promised to deliver them);
- **delivered**: acknowledged events that reached the receiver at least once;
- **duplicated**: extra arrivals of an event beyond its first (delivery is at-least-once);
- **lost**: acknowledged events that never arrived (must be 0);
- **unrecorded**: the account's deliveries whose outcome was still not recorded at the end (must be 0:
  an outcome that is sent but never written is re-sent every lease period);
- **worst answer**: the worst answer any client got during the run (a dropped connection is worse than
  any code; a 5xx other than 503 is worse than a 503; see ``severity``), and the slowest answer.

    python -m chaos.run [--only NAME,...] [--seconds S] [--rate R]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from chaos.world import Flow, Tally, World

Scenario = Callable[[World, Flow], Awaitable[str]]


async def receiver_outage(world: World, flow: Flow) -> str:
    """The receiver refuses connections for a while; every delivery is retried until it is back."""
    await world.serve()
    await flow.run_for(world.fault_at)
    await world.receiver.down()
    await flow.run_for(world.fault_for)
    await world.receiver.up()
    await flow.run_for(world.after)
    return f"receiver down {world.fault_for:g} s"


async def worker_crash(world: World, flow: Flow) -> str:
    """One of two workers is killed with SIGKILL mid-flow; its leased rows come back when the lease ends."""
    await world.api_and_workers(2)
    await flow.run_for(world.fault_at)
    world.kill_worker(0)
    await flow.run_for(world.fault_for)
    world.start_worker()
    await flow.run_for(world.after)
    return f"SIGKILL one of 2 workers, lease {world.lease_seconds:g} s"


async def hostile_neighbour(world: World, flow: Flow) -> str:
    """Another account's receiver answers bytes PostgreSQL refuses in text (NUL in the body, bytes that
    are not UTF-8 in the body and in headers): the counted account must not notice."""
    from tests.faults.hostile import HostileReceiver, Hostility

    hostile = HostileReceiver().start()
    world.on_exit(hostile.stop)
    await world.serve()
    await world.add_neighbour(*(hostile.url(mode) for mode in (
        Hostility.NUL_BODY, Hostility.INVALID_UTF8, Hostility.BINARY_HEADER)))
    await flow.run_for(world.fault_at + world.fault_for + world.after)
    return f"another account's receiver answers NUL and non-UTF-8 bytes ({len(hostile.arrivals())} answered)"


async def resolver_outage(world: World, flow: Flow) -> str:
    """The resolver answers nothing (every lookup times out) when the webhook's host is first needed;
    deliveries wait and retry, then go out once it answers again."""
    from tests.faults.dns import StubDNS

    stub = StubDNS().start()
    world.on_exit(stub.stop)
    stub.answer("hooks.chaos.test", "127.0.0.1")
    world.argv_prefix = stub.namespace_argv()
    world.hook_host = "hooks.chaos.test"
    world.env_extra.update({"MAILHOOKS_ALLOW_PRIVATE_TARGETS": "0", "MAILHOOKS_ALLOWED_CIDRS": "127.0.0.0/8"})
    stub.drop()
    await world.serve()
    await flow.run_for(world.fault_at + world.fault_for)
    stub.recover()
    await flow.run_for(world.after)
    return f"resolver silent for the first {world.fault_at + world.fault_for:g} s"


async def postgres_restart(world: World, flow: Flow) -> str:
    """PostgreSQL stops as if it crashed (``pg_ctl stop -m immediate``) under ingest and delivery, with
    the API and two workers each on their own, and starts again."""
    await world.api_and_workers(2)
    await flow.run_for(world.fault_at)
    await asyncio.to_thread(world.cluster.stop, "immediate")
    await flow.run_for(world.fault_for)
    await asyncio.to_thread(world.cluster.start)
    await flow.run_for(world.after)
    return f"PostgreSQL killed (immediate stop) for {world.fault_for:g} s"


async def postgres_hang(world: World, flow: Flow) -> str:
    """PostgreSQL stops answering (every server process frozen with SIGSTOP): connections stay open and
    nothing comes back; requests get their deadline (``MAILHOOKS_DATABASE_TIMEOUT``), not forever."""
    world.env_extra["MAILHOOKS_DATABASE_TIMEOUT"] = "2"
    await world.serve()
    await flow.run_for(world.fault_at)
    world.cluster.freeze()
    await flow.run_for(world.fault_for)
    world.cluster.thaw()
    await flow.run_for(world.after)
    return f"PostgreSQL frozen (SIGSTOP) for {world.fault_for:g} s, database timeout 2 s"


async def redis_freeze(world: World, flow: Flow) -> str:
    """The Redis that holds the shared rate budget is frozen with SIGSTOP: the limiter fails open."""
    from tests.faults.redis import RedisServer

    redis = await asyncio.to_thread(RedisServer().start)
    world.on_exit(redis.stop)
    world.env_extra["MAILHOOKS_REDIS_URL"] = redis.url
    await world.serve()
    await flow.run_for(world.fault_at)
    redis.freeze()
    await flow.run_for(world.fault_for)
    redis.thaw()
    await flow.run_for(world.after)
    return f"Redis frozen (SIGSTOP) for {world.fault_for:g} s"


SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "receiver-outage": ("sqlite", receiver_outage),
    "worker-crash": ("postgresql", worker_crash),
    "hostile-neighbour": ("postgresql", hostile_neighbour),
    "resolver-outage": ("sqlite", resolver_outage),
    "redis-freeze": ("sqlite", redis_freeze),
    "postgres-restart": ("own postgresql", postgres_restart),
    "postgres-hang": ("own postgresql", postgres_hang),
}


def table(tallies: list[Tally]) -> str:
    head = ("scenario", "backend", "fault", "acknowledged", "delivered", "duplicated", "lost", "unrecorded",
            "worst answer",
            "slowest answer", "drained in")
    rows = [head] + [t.row() for t in tallies]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    wanted = [name.strip() for name in args.only.split(",")] if args.only else list(SCENARIOS)
    unknown = [name for name in wanted if name not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    tallies: list[Tally] = []
    for name in wanted:
        backend, scenario = SCENARIOS[name]
        started = time.monotonic()
        async with World(name, backend, rate=args.rate, phase=args.seconds) as world:
            flow = Flow(world)
            fault = await scenario(world, flow)
            tally = await world.settle(flow, fault)
        tallies.append(tally)
        print(f"{name}: {tally.summary()} ({time.monotonic() - started:.0f} s; logs in {world.tmp})", flush=True)
    print()
    print(table(tallies))
    return 1 if any(t.lost or t.unrecorded for t in tallies) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase: before, during, after")
    parser.add_argument("--rate", type=float, default=100.0, help="events posted per second, one per request")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
