"""Many clients on one key: never more admitted than burst + rate x elapsed, and not much less under
continuous demand. Processes and asyncio tasks on Redis; threads and asyncio tasks in memory."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import threading
import time
import uuid
from typing import Any

import pytest

from guardrail.limiter import Limit, Limiter, MemoryStore, TokenBucket

RATE = 200.0
BURST = 100.0  # a refill window (burst / rate = 0.5 s) longer than most scheduling stalls of a busy machine
DURATION = 0.8


#: A gap between completed calls this long is the process descheduled, not the store's latency (calls
#: complete a fraction of a millisecond apart under this load).
STALL = 0.05


def check(admitted: int, elapsed: float, calls: int | None = None, stalled: float = 0.0) -> None:
    """Upper bound always; lower bound "not much less" only as far as demand reached the store: on a
    loaded machine 50 tasks may not even send ``ceiling`` requests in the window, and while no call at all
    completes (the process descheduled for ``stalled`` seconds in all) the refill can be lost: wholly when
    the stall comes before the first call reaches the bucket (it starts full) or after the last one (no
    one is left to spend it), beyond the burst when it comes in between. The bound takes the worst case."""
    ceiling = BURST + RATE * elapsed
    assert admitted <= ceiling + 1, (admitted, ceiling)
    lost = RATE * stalled
    demand = ceiling - lost if calls is None else min(ceiling - lost, calls)
    assert admitted >= 0.8 * demand, (admitted, ceiling, calls, stalled)


def _worker(url: str, key: str, barrier: Any, out: Any) -> None:
    bucket = TokenBucket(
        rate=RATE, burst=BURST, storage=url, failure="closed", socket_timeout=5.0, socket_connect_timeout=5.0
    )
    barrier.wait(timeout=30)
    admitted = calls = 0
    start = time.time()
    end = start + DURATION
    while time.time() < end and calls < 100_000:
        calls += 1
        if bucket.consume(key).allowed:
            admitted += 1
    out.put((admitted, start, time.time()))
    bucket.close()


@pytest.mark.redis
@pytest.mark.slow
def test_processes_on_one_redis_key(redis_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    n = 3
    barrier = ctx.Barrier(n)
    out = ctx.Queue()
    key = f"conc:{uuid.uuid4().hex}"
    procs = [ctx.Process(target=_worker, args=(redis_url, key, barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    out.close()
    out.join_thread()
    admitted = sum(r[0] for r in results)
    elapsed = max(r[2] for r in results) - min(r[1] for r in results)
    check(admitted, elapsed)


async def _tasks(bucket: TokenBucket, key: str, tasks: int) -> tuple[int, float, int, float]:
    """Admitted, elapsed, calls made, and the time spent in stalls (no call completing for ``STALL``)."""
    # open the pool's connections first (to the hot key's node too): connection set-up is not demand
    await asyncio.gather(*(bucket.aconsume(f"{key}:warm:{i}") for i in range(tasks)))
    await asyncio.gather(*(bucket.apeek(key) for _ in range(tasks)))
    admitted = 0
    total_calls = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + DURATION
    done: list[float] = [start]

    async def client() -> None:
        nonlocal admitted, total_calls
        calls = 0
        while loop.time() < end and calls < 100_000:
            calls += 1
            total_calls += 1
            allowed = (await bucket.aconsume(key)).allowed
            done.append(loop.time())
            if allowed:
                admitted += 1
            else:
                await asyncio.sleep(0)

    await asyncio.gather(*(client() for _ in range(tasks)))
    finish = loop.time()
    done.append(finish)
    done.sort()
    stalled = sum(gap for gap in (b - a for a, b in itertools.pairwise(done)) if gap >= STALL)
    return admitted, finish - start, total_calls, stalled


@pytest.mark.parametrize(
    "server",
    [
        pytest.param("redis_url", marks=pytest.mark.redis),
        pytest.param("cluster_url", marks=pytest.mark.cluster),
    ],
)
def test_asyncio_tasks_on_one_redis_key(server: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(server)
    # generous timeouts: this test is about admission under contention, not about a slow store
    bucket = TokenBucket(
        rate=RATE, burst=BURST, storage=url, failure="closed", socket_timeout=5.0, socket_connect_timeout=5.0
    )

    async def main() -> tuple[int, float, int, float]:
        try:
            return await _tasks(bucket, f"conc:{uuid.uuid4().hex}", 50)
        finally:
            await bucket.aclose()

    check(*asyncio.run(main()))


def test_asyncio_tasks_in_memory() -> None:
    bucket = TokenBucket(rate=RATE, burst=BURST)
    check(*asyncio.run(_tasks(bucket, "k", 50)))


def test_threads_in_memory_multi_key() -> None:
    """Threads deciding overlapping multi-key requests: no deadlock, shared bucket never over-admitted."""
    limiter = Limiter(MemoryStore(stripes=4))
    shared = Limit(rate=RATE, burst=BURST)
    own = Limit(rate=1e6, burst=1e6)
    admitted = [0] * 4
    start = time.monotonic()

    def run(i: int) -> None:
        from guardrail.limiter import BucketRequest

        end = time.monotonic() + DURATION
        while time.monotonic() < end:
            reqs = [
                BucketRequest(f"own:{i}", own),
                BucketRequest("shared", shared),
                BucketRequest(f"own:{3 - i}", own),
            ]
            if limiter.consume_many(reqs).allowed:
                admitted[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    check(sum(admitted), time.monotonic() - start)


@pytest.mark.cluster
def test_cross_slot_decisions_never_over_admit(cluster_url: str) -> None:
    """Decisions spanning slots (per-slot steps with refunds) under 50 concurrent tasks: the shared bucket
    never admits more than its limit, and the refunds leave each task's own bucket charged exactly for its
    admitted requests."""
    from guardrail.limiter import BucketRequest

    limiter = Limiter(cluster_url, failure="closed", socket_timeout=5.0, socket_connect_timeout=5.0)
    run = uuid.uuid4().hex
    shared = Limit(rate=RATE, burst=BURST)
    own = Limit(rate=1e-6, burst=1e6)  # no refill to speak of: remaining = burst - charged

    async def main() -> tuple[int, float, list[int], list[float]]:
        admitted = [0] * 50
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(limiter.apeek([BucketRequest(f"{run}:own:{i}", own, 0.0)]) for i in range(50)))
        start = loop.time()
        end = start + DURATION

        async def client(i: int) -> None:
            reqs = [BucketRequest(f"{run}:own:{i}", own), BucketRequest(f"{run}:shared", shared)]
            while loop.time() < end:
                if (await limiter.aconsume_many(reqs)).allowed:
                    admitted[i] += 1
                else:
                    await asyncio.sleep(0)

        await asyncio.gather(*(client(i) for i in range(50)))
        elapsed = loop.time() - start
        peek = await limiter.apeek([BucketRequest(f"{run}:own:{i}", own, 0.0) for i in range(50)])
        await limiter.aclose()
        return sum(admitted), elapsed, admitted, [r.remaining for r in peek.results]

    total, elapsed, admitted, remaining = asyncio.run(main())
    assert total <= BURST + RATE * elapsed + 1
    assert total > 0
    for count, left in zip(admitted, remaining, strict=True):
        assert left == pytest.approx(1e6 - count, abs=1e-3)
