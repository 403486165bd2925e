"""Public API: limit parsing (the ``limits`` grammar), URIs, validation, results, window strategies,
cross-slot decisions on a Redis Cluster."""

from __future__ import annotations

import asyncio
import math
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from guardrail.limiter import (
    BucketRequest,
    BucketResult,
    Limit,
    Limiter,
    MemoryStore,
    MultiResult,
    RedisStore,
    TokenBucket,
    WindowLimiter,
    storage_from_uri,
)

from .conftest import REDIS_SERVER, RedisProcess, free_port, wait_port

T0 = 1_700_000_000.0


@pytest.mark.parametrize(
    ("text", "rate", "burst"),
    [
        ("100/minute", 100 / 60, 100.0),
        ("10 per second", 10.0, 10.0),
        ("5/2 seconds", 2.5, 5.0),
        ("3600/hour", 1.0, 3600.0),
    ],
)
def test_limit_parse(text: str, rate: float, burst: float) -> None:
    lim = Limit.parse(text)
    assert lim.rate == pytest.approx(rate) and lim.burst == burst
    assert Limit.parse(text, burst=7).burst == 7.0


@pytest.mark.parametrize("bad", ["", "fast", "10/fortnight", "1/second;2/minute"])
def test_limit_parse_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        Limit.parse(bad)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 1), (math.inf, 1), (math.nan, 1)])
def test_limit_validation(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        Limit(rate=rate, burst=burst)
    with pytest.raises(TypeError):
        Limit(rate="1", burst=1)  # type: ignore[arg-type]


@given(st.floats(0.001, 1e6), st.floats(0.001, 1e6), st.floats(0.01, 1.0))
def test_limit_scaled_and_equal(rate: float, burst: float, share: float) -> None:
    lim = Limit(rate, burst)
    assert lim == Limit(rate, burst) and hash(lim) == hash(Limit(rate, burst))
    s = lim.scaled(share)
    assert s.rate == pytest.approx(rate * share) and s.burst == pytest.approx(burst * share)


def test_requests_and_costs_validated() -> None:
    lim = Limit(1, 1)
    with pytest.raises(ValueError):
        BucketRequest("", lim)
    with pytest.raises(ValueError):
        BucketRequest("k", lim, math.nan)
    assert BucketRequest("k", "10/second").limit == Limit(10, 10)  # type: ignore[arg-type]
    bucket = TokenBucket(rate=1, burst=1)
    with pytest.raises(ValueError):
        bucket.consume("k", -1)
    with pytest.raises(TypeError):
        bucket.consume("k", "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TokenBucket(rate=1)
    with pytest.raises(TypeError):
        Limiter("memory://").consume_many(["k"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="outside settle"):
        Limiter("memory://").consume_many([BucketRequest("k", lim, -1.0)])
    assert Limiter("memory://").settle([BucketRequest("k", lim, -1.0)]).allowed


def test_token_bucket_forms() -> None:
    assert TokenBucket("600/minute", burst=5).limit == Limit(10, 5)
    assert TokenBucket(Limit(2, 3)).burst == 3.0
    shared = Limiter(MemoryStore())
    a = TokenBucket(rate=1, burst=1, storage=shared, name="a")
    b = TokenBucket(rate=1, burst=1, storage=shared, name="b")
    assert a.consume("k", now=T0).allowed and b.consume("k", now=T0).allowed  # names keep keys apart
    r = a.consume("k", now=T0)
    assert r.key == "a:k" and not r.allowed and r.retry_after == pytest.approx(1.0)
    assert a.peek("k", 0.0, now=T0 + 1).allowed
    assert a.settle("k", 3.0, now=T0 + 1).retry_after == pytest.approx(2.0)  # 2 tokens of debt

    async def main() -> None:
        assert not (await a.aconsume("k", now=T0 + 2)).allowed
        assert not (await a.apeek("k", now=T0 + 2)).allowed
        assert (await a.asettle("k", -10, now=T0 + 2)).remaining == 1.0
        await a.aclose()

    asyncio.run(main())


def test_storage_uris() -> None:
    assert isinstance(storage_from_uri("memory://"), MemoryStore)
    for uri in (
        "redis://localhost:6379/0",
        "rediss://:pw@localhost:6380",
        "redis+unix:///tmp/redis.sock",
        "valkey://localhost:6379",
        "redis+cluster://a:7000,b:7001",
        "valkey+cluster://a:7000",
        "redis+sentinel://a:26379,b:26379/mymaster",
    ):
        store = storage_from_uri(uri)
        assert isinstance(store, RedisStore)
        assert store.cluster == ("cluster" in uri)
    with pytest.raises(ValueError, match="unknown storage scheme"):
        storage_from_uri("memcached://localhost:11211")
    with pytest.raises(ValueError, match="service name"):
        storage_from_uri("redis+sentinel://a:26379")
    with pytest.raises(ValueError, match="host:port"):
        storage_from_uri("redis+cluster://a")
    with pytest.raises(TypeError):
        storage_from_uri(6379)  # type: ignore[arg-type]


def test_multi_result_views() -> None:
    ok = BucketResult("a", True, 5.0, 0.0, 1.0, 10.0)
    tight = BucketResult("b", True, 1.0, 0.0, 2.0, 4.0)
    assert MultiResult(True, (ok, tight)).tightest is tight
    slow = BucketResult("c", False, 0.0, 9.0, 9.0, 4.0)
    fast = BucketResult("d", False, 0.0, 1.0, 1.0, 4.0)
    m = MultiResult(False, (ok, fast, slow))
    assert m.tightest is slow and m.retry_after == 9.0 and m.limit == 4.0 and m[1] is fast
    assert not m.degraded and m.source == "store"
    empty = MultiResult(True, ())
    assert empty.retry_after == 0.0 and empty.remaining == 0.0
    with pytest.raises(ValueError):
        _ = empty.tightest


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
def test_window_limiter(strategy: str) -> None:
    w = WindowLimiter("3/minute", strategy=strategy)
    answers = [w.consume("k") for _ in range(4)]
    assert [a.allowed for a in answers] == [True, True, True, False]
    assert answers[-1].retry_after > 0 and answers[0].limit == 3.0
    with pytest.raises(ValueError):
        w.consume("k", 1.5)  # type: ignore[arg-type]

    async def main() -> None:
        assert (await w.aconsume("other")).allowed
        await w.aclose()

    asyncio.run(main())
    with pytest.raises(ValueError):
        WindowLimiter("3/minute", strategy="leaky")


@pytest.mark.redis
def test_window_limiter_on_redis(redis_url: str) -> None:
    w = WindowLimiter("2/minute", strategy="fixed-window", storage=redis_url)
    key = f"w:{uuid.uuid4().hex}"
    assert [w.consume(key).allowed for _ in range(3)] == [True, True, False]

    async def main() -> None:
        try:
            r = await w.aconsume(key)
            assert not r.allowed and r.source == "store" and r.retry_after > 0
        finally:
            await w.aclose()

    asyncio.run(main())


def test_window_limiter_fails_open_on_dead_redis() -> None:
    w = WindowLimiter("3/minute", storage="redis://127.0.0.1:1", socket_connect_timeout=0.05)
    r = w.consume("k")
    assert r.allowed and r.source == "fail-open"


@pytest.mark.cluster
def test_cross_slot_refusal_refunds_earlier_slots(cluster_url: str) -> None:
    store = storage_from_uri(cluster_url, prefix="xs:")
    assert isinstance(store, RedisStore)
    lim = Limit(1.0, 10.0)
    a, b = "slot-a", "slot-b-2"
    assert key_slot(b"xs:" + a.encode()) != key_slot(b"xs:" + b.encode())
    try:
        store.decide("settle", [BucketRequest(a, lim, -100), BucketRequest(b, lim, -100)], now=T0)
        store.consume_one(b, lim, 8.0, now=T0)  # b has 2 left
        r = store.decide("consume", [BucketRequest(a, lim, 5.0), BucketRequest(b, lim, 5.0)], now=T0)
        assert not r.allowed and [x.allowed for x in r.results] == [True, False]
        after = store.decide("peek", [BucketRequest(a, lim, 0.0), BucketRequest(b, lim, 0.0)], now=T0)
        assert [x.remaining for x in after.results] == [10.0, 2.0]  # a was refunded

        async def main() -> None:
            r = await store.adecide(
                "consume", [BucketRequest(a, lim, 5.0), BucketRequest(b, lim, 5.0)], now=T0
            )
            assert not r.allowed
            after = await store.adecide("peek", [BucketRequest(a, lim, 0.0)], now=T0)
            assert after.remaining == 10.0
            await store.aclose()

        asyncio.run(main())
    finally:
        store.close()


@pytest.mark.redis
def test_sentinel_uri(redis_process: Callable[[], RedisProcess], tmp_path: Path) -> None:
    """``redis+sentinel://`` finds the master through a real sentinel and decides there."""
    master = redis_process()
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\nsentinel monitor svc 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds svc 60000\n"
    )
    assert REDIS_SERVER is not None
    sentinel = subprocess.Popen(
        [REDIS_SERVER, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        limiter = Limiter(f"redis+sentinel://127.0.0.1:{port}/svc", failure="closed")
        lim = Limit(1.0, 2.0)
        answers = [limiter.consume("s", lim) for _ in range(3)]
        assert [a.allowed for a in answers] == [True, True, False]
        assert all(a.source == "store" for a in answers)
        limiter.close()
    finally:
        sentinel.kill()
        sentinel.wait(timeout=5)


@pytest.mark.cluster
def test_cluster_single_slot_prefix_is_one_atomic_script(cluster_url: str) -> None:
    """With a hash-tagged prefix every bucket shares one slot: any decision is one script, no refunds."""
    store = storage_from_uri(cluster_url, prefix="{gr:lim}:")
    assert isinstance(store, RedisStore)
    lim = Limit(1.0, 10.0)
    keys = [f"one-slot:{uuid.uuid4().hex}:{part}" for part in ("acct", "ip", "tpl", "cluster")]
    try:
        assert len(store._groups([BucketRequest(k, lim) for k in keys])) == 1
        assert store.decide("consume", [BucketRequest(k, lim, 6.0) for k in keys], now=T0).allowed
        r = store.decide("consume", [BucketRequest(k, lim, 3.0 + i) for i, k in enumerate(keys)], now=T0)
        assert not r.allowed and [x.allowed for x in r.results] == [True, True, False, False]
        after = store.decide("peek", [BucketRequest(k, lim, 0.0) for k in keys], now=T0)
        assert [x.remaining for x in after.results] == [4.0] * 4
    finally:
        store.close()


def test_breaker_reports_each_outage_once_and_a_failing_hook_is_swallowed() -> None:
    from guardrail.limiter import CircuitBreaker

    now = [0.0]
    seen: list[str] = []
    breaker = CircuitBreaker(base=1.0, cap=4.0, threshold=3, clock=lambda: now[0], rng=lambda: 1.0)
    breaker.on_change = seen.append
    for _ in range(2):
        breaker.failure()
    assert seen == []  # two strikes: a slow answer or two is no outage
    breaker.failure()
    assert seen == ["open"]
    now[0] += 5.0
    assert breaker.allow()  # the probe
    breaker.failure()  # ... fails: still the same outage
    assert seen == ["open"]
    now[0] += 10.0
    assert breaker.allow()
    breaker.success()
    breaker.success()
    assert seen == ["open", "closed"]

    def broken(state: str) -> None:
        raise RuntimeError("a logging hook that fails")

    breaker.on_change = broken
    for _ in range(3):
        breaker.failure()  # never raises
    assert breaker.state == "open"
