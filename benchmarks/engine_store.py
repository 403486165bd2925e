"""Engine-store hot path on Redis against the physical floor, every ratio measured in the same run.

    python benchmarks/engine_store.py [--seconds 0.6] [--rounds 3] [--redis redis://127.0.0.1:6379/0]
                                      [--json out.json]

``RedisEngineStore.observe`` (one EVALSHA of lua/observe.lua: sketch, profile, templates, published table)
vs a raw redis-py ``PING`` and ``INCRBY`` round trip on a client built the same way (the limiter's URI
handling, same options); the in-process ``MemoryEngineStore.observe`` for scale; the async twin with 50
concurrent tasks vs 50 tasks of raw ``INCRBY``. Round trips per ``observe`` are counted by wrapping
redis-py's ``send_packed_command`` (one call per request sent, a pipeline counting once). Traffic: 500
accounts, 12 segments a request drawn from 300 recurring template lines and fresh one-off lines, default
``StoreSettings`` (a 1M x 3 sketch). Contenders run in interleaved slices so a noisy neighbour on a shared
machine hurts each alike.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.connection
import xxhash

from guardrail.engine._memory import MemoryEngineStore
from guardrail.engine.redis_store import RedisEngineStore
from guardrail.engine.store import Observation, StoreSettings
from guardrail.limiter import RedisStore, storage_from_uri


def traffic(n: int = 4000, seed: int = 7) -> list[Observation]:
    rng = random.Random(seed)
    accounts = [xxhash.xxh3_128_hexdigest(b"acct %d" % i) for i in range(500)]
    out = []
    for i in range(n):
        recurring = [xxhash.xxh3_64_intdigest(b"line %d" % rng.randrange(300)) for _ in range(8)]
        fresh = [rng.getrandbits(64) for _ in range(4)]
        out.append(
            Observation(
                account=rng.choice(accounts),
                ts=1_700_000_000.0 + i * 0.05,
                segments=tuple(recurring + fresh),
                prefix=f"net{rng.randrange(40)}",
                tokens=rng.randrange(50, 2000),
                elicitation=rng.random() if i % 4 == 0 else None,
                conversation=rng.random() < 0.2,
            )
        )
    return out


def rate(fn: Callable[[int], object], seconds: float, n: int) -> tuple[int, float]:
    count = 0
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        for i in range(200):
            fn((count + i) % n)
        count += 200
    return count, time.perf_counter() - start


AsyncCall = Callable[[int], Awaitable[object]]


def rate_async(
    make: Callable[[], Awaitable[tuple[AsyncCall, Callable[[], Awaitable[None]]]]],
    seconds: float,
    n: int,
    tasks: int = 50,
) -> tuple[int, float]:
    """Ops/s of ``tasks`` concurrent tasks; ``make`` builds (call, close) inside the loop it runs in."""

    async def main() -> tuple[int, float]:
        fn, close = await make()
        for k in range(0, tasks, 10):  # connections open before the clock starts
            await asyncio.gather(*(fn(i) for i in range(k, k + 10)))
        count = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + seconds

        async def worker(k: int) -> None:
            nonlocal count
            i = k
            while loop.time() < end:
                await fn(i % n)
                i += tasks
                count += 1

        await asyncio.gather(*(worker(k) for k in range(tasks)))
        elapsed = loop.time() - start
        await close()
        return count, elapsed

    return asyncio.run(main())


def round_trips(store: RedisEngineStore, obs: list[Observation]) -> float:
    """Requests sent to Redis per ``observe`` (after warm-up), by counting ``send_packed_command``."""
    sent = 0
    original: Callable[..., Any] = redis.connection.AbstractConnection.send_packed_command

    def counted(conn: Any, *a: Any, **kw: Any) -> Any:
        nonlocal sent
        sent += 1
        return original(conn, *a, **kw)

    setattr(redis.connection.AbstractConnection, "send_packed_command", counted)  # noqa: B010
    try:
        for o in obs:
            store.observe(o)
    finally:
        setattr(redis.connection.AbstractConnection, "send_packed_command", original)  # noqa: B010
    return sent / len(obs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=0.6, help="seconds per slice")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    opts: dict[str, Any] = {
        "socket_timeout": 2.0,
        "socket_connect_timeout": 2.0,
    }  # 50 connects on a busy 2-core box
    obs = traffic()
    n = len(obs)
    prefix = f"bench-engine-{uuid.uuid4().hex[:8]}"
    store = RedisEngineStore(args.redis, settings=StoreSettings(), prefix=prefix, **opts)
    memory = MemoryEngineStore(StoreSettings())
    limiter_store = storage_from_uri(args.redis, **opts)
    assert isinstance(limiter_store, RedisStore)
    raw = limiter_store.client()  # a client built exactly as the engine store's
    key = f"bench-engine-raw-{uuid.uuid4().hex[:8]}"
    store.observe(obs[0])
    raw.ping()
    results: dict[str, Any] = {"round_trips_per_observe": round_trips(store, obs[:500])}

    async def make_async_observe() -> tuple[AsyncCall, Callable[[], Awaitable[None]]]:
        s = RedisEngineStore(args.redis, settings=StoreSettings(), prefix=prefix, **opts)
        return (lambda i: s.aobserve(obs[i])), s.aclose

    async def make_async_incr() -> tuple[AsyncCall, Callable[[], Awaitable[None]]]:
        other = storage_from_uri(args.redis, **opts)
        assert isinstance(other, RedisStore)
        client = other._async()  # the limiter's per-loop client (a coroutine in newer versions)
        if inspect.isawaitable(client):
            client = await client
        return (lambda i: client.incrby(key, 1)), other.aclose

    contenders: dict[str, Callable[[], tuple[int, float]]] = {
        "redis_observe": lambda: rate(lambda i: store.observe(obs[i]), args.seconds, n),
        "redis_ping": lambda: rate(lambda i: raw.ping(), args.seconds, n),
        "redis_incrby": lambda: rate(lambda i: raw.incrby(key, 1), args.seconds, n),
        "memory_observe": lambda: rate(lambda i: memory.observe(obs[i]), args.seconds, n),
        "redis_aobserve_50": lambda: rate_async(make_async_observe, args.seconds, n),
        "redis_aincrby_50": lambda: rate_async(make_async_incr, args.seconds, n),
    }
    totals: dict[str, tuple[int, float]] = {name: (0, 0.0) for name in contenders}
    try:
        for _ in range(args.rounds):
            for name, run in contenders.items():
                count, secs = run()
                totals[name] = (totals[name][0] + count, totals[name][1] + secs)
    finally:
        store.clear()
        store.close()
        raw.delete(key)
    rates = {name: count / secs for name, (count, secs) in totals.items()}
    results["ops_per_s"] = {name: round(v) for name, v in rates.items()}
    results["ratios"] = {
        "observe_vs_ping": round(rates["redis_observe"] / rates["redis_ping"], 3),
        "observe_vs_incrby": round(rates["redis_observe"] / rates["redis_incrby"], 3),
        "aobserve_vs_aincrby_50_tasks": round(rates["redis_aobserve_50"] / rates["redis_aincrby_50"], 3),
    }
    print(f"round trips per observe: {results['round_trips_per_observe']:.3f}")
    for name, v in results["ops_per_s"].items():
        print(f"{name:>20}: {v:>9,} ops/s")
    for name, v in results["ratios"].items():
        print(f"{name:>30}: {v:.3f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
