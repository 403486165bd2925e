"""Redis-specific behaviour of the store: expiries of stored buckets, the hand-packed fast path against
redis-py's generic ``execute_command`` path, NOSCRIPT recovery, extreme debts, and the public names other
modules build on (``RedisStore.aclient``, ``BACKEND_ERRORS``, ``DEFAULT_TIMEOUT``, ``SCHEMES``)."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import guardrail.limiter as lim_pkg
from guardrail.limiter import BucketRequest, Limit, RedisStore, storage_from_uri

from .conftest import RedisProcess

pytestmark = pytest.mark.redis

T0 = 1_700_000_000.0


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def redis_store(url: str, prefix: str, **options: object) -> RedisStore:
    store = storage_from_uri(url, prefix=prefix, **options)
    assert isinstance(store, RedisStore)
    return store


def assert_expiries_cover_tats(raw: redis.Redis, prefix: str) -> int:
    """Every stored bucket has an expiry, and it is at least ~1 s past the bucket's TAT (or ~30 years
    away for a debt beyond that): a bucket is never forgotten while it still holds a charge."""
    keys = list(raw.scan_iter(match=prefix + "*"))
    seconds, micros = raw.time()
    now_ms = seconds * 1000 + micros // 1000
    for key in keys:
        tat_us = float(raw.get(key) or 0)
        pttl = int(raw.pttl(key))
        assert pttl > 0, f"{key!r} has no expiry"
        if tat_us / 1000 + 1000 < 1e12 + now_ms:
            assert now_ms + pttl >= tat_us / 1000 + 990, (key, tat_us, now_ms, pttl)
        else:
            assert pttl > 1e11, (key, pttl)
    return len(keys)


def test_stored_buckets_always_expire_after_their_tat(redis_url: str, raw: redis.Redis, prefix: str) -> None:
    """On the server's clock: busy buckets (whose writes keep their expiry), repeated keys, a bucket
    emptied and recharged within one decision, and a debt of 10^21 microseconds."""
    store = redis_store(redis_url, prefix)
    try:
        lim = Limit(rate=1_000.0, burst=1e7)
        for _ in range(25):  # 25 x 4 s of refill: the TAT crosses several 10-second expiry slots
            assert store.consume_one("busy", lim, 4_000.0).allowed
            multi = [BucketRequest(k, lim, 4_000.0) for k in ("m1", "m2", "m3")]
            assert store.decide("consume", multi).allowed
            assert_expiries_cover_tats(raw, prefix)
        twice = [BucketRequest("d", lim, 3_000.0), BucketRequest("d", lim, 3_000.0)]
        answer = store.decide("consume", twice)
        assert answer.allowed and answer.results[1].reset_after == pytest.approx(6.0, abs=0.01)
        # one settlement: debit, refund to full (the key is deleted), debit again (the key is set again)
        redo = [BucketRequest("g", lim, 500.0), BucketRequest("g", lim, -1e9), BucketRequest("g", lim, 300.0)]
        assert store.decide("settle", redo).results[2].reset_after == pytest.approx(0.3, abs=0.01)
        tiny = Limit(rate=1e-3, burst=1.0)
        debt = store.decide("settle", [BucketRequest("debt", tiny, 1e12)])
        assert not debt.allowed and debt.retry_after == pytest.approx(1e15, rel=1e-6)
        again = store.consume_one("debt", tiny, 1.0)
        assert not again.allowed and again.retry_after == pytest.approx(1e15, rel=1e-6)
        assert assert_expiries_cover_tats(raw, prefix) == 7
    finally:
        store.close()


def test_busy_bucket_write_keeps_the_value_and_expiry(redis_url: str, raw: redis.Redis, prefix: str) -> None:
    """A write that keeps the TAT in its expiry slot adds to the stored integer: the value read back is
    exactly the TAT the answer reports."""
    store = redis_store(redis_url, prefix)
    try:
        lim = Limit(rate=1e6, burst=1e9)  # 1 token per microsecond
        for i in range(5):
            store.consume_one("k", lim, 10.0, now=T0 + i * 1e-3)
        last = store.decide("consume", [BucketRequest("k", lim, 10.0)], now=T0 + 4e-3)
        assert int(raw.get(prefix + "k") or 0) == round((T0 + 4e-3) * 1e6) + 20
        assert last.results[0].reset_after == pytest.approx(20e-6)
        assert raw.pttl(prefix + "k") > 0
    finally:
        store.close()


def scenario(store: RedisStore) -> list[object]:
    """Every mode and shape of decision, on the test clock: the answers of a store, to compare."""
    a, b = Limit(rate=2.0, burst=10.0), Limit(rate=50.0, burst=100.0)
    out: list[object] = []
    for i in range(4):
        now = T0 + i * 0.25
        out.append(store.consume_one("one", a, 3.0, now=now))
        out.append(store.consume_one("one", a, 11.0, now=now))  # above the burst: never fits
        reqs = [BucketRequest("x", a, 4.0), BucketRequest("y", b, 30.0), BucketRequest("x", a, 1.0)]
        out.append(store.decide("consume", reqs, now=now))
        out.append(store.decide("peek", [BucketRequest("y", b, 120.0), BucketRequest("z", a, 2.0)], now=now))
        out.append(store.decide("settle", [BucketRequest("x", a, 7.0), BucketRequest("y", b, -5.0)], now=now))
    return out


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"retry": Retry(NoBackoff(), 1)}, id="client-with-retries"),
        pytest.param({"single_connection_client": True}, id="single-connection-client"),
    ],
)
def test_generic_path_answers_like_the_fast_path(redis_url: str, options: dict[str, object]) -> None:
    """Clients that must go through redis-py's execute_command (a retry policy to honour, a single
    connection) answer exactly like the hand-packed fast path."""
    fast = redis_store(redis_url, f"test:{uuid.uuid4().hex}:")
    generic = redis_store(redis_url, f"test:{uuid.uuid4().hex}:", **options)
    try:
        assert fast._sync().pool is not None and generic._sync().pool is None
        assert scenario(generic) == scenario(fast)

        async def twins(store: RedisStore) -> list[object]:
            lim = Limit(rate=2.0, burst=10.0)
            got: list[object] = [await store.aconsume_one("a", lim, 4.0, now=T0)]
            got.append(await store.adecide("consume", [BucketRequest("a", lim, 7.0)], now=T0))
            await store.aclose()
            return got

        assert asyncio.run(twins(generic)) == asyncio.run(twins(fast))
    finally:
        fast.close()
        generic.close()


def test_script_cache_flush_is_survived(redis_process: Callable[[], RedisProcess]) -> None:
    """After SCRIPT FLUSH (or a restart, a failover) the first call loads its script again, on the same
    connection, and answers normally: sync and async, single and multi-bucket."""
    server = redis_process()
    store = redis_store(server.url, "t:")
    raw = redis.Redis.from_url(server.url)
    lim = Limit(rate=1.0, burst=5.0)
    try:
        for round_ in range(2):
            raw.script_flush()
            assert store.consume_one("a", lim, 1.0, now=T0).remaining == 4.0 - round_
            raw.script_flush()
            assert store.decide("consume", [BucketRequest("b", lim, 2.0)], now=T0).allowed

        async def main() -> None:
            raw.script_flush()
            assert (await store.aconsume_one("c", lim, 5.0, now=T0)).remaining == 0.0
            raw.script_flush()
            assert not (await store.adecide("consume", [BucketRequest("c", lim, 1.0)], now=T0)).allowed
            await store.aclose()

        asyncio.run(main())
    finally:
        raw.close()
        store.close()


def test_public_async_client_and_former_name(redis_url: str, prefix: str) -> None:
    """``aclient()`` is this loop's redis-py asyncio client (the pool the store uses); ``_async()`` is
    the same client under its former name."""
    store = redis_store(redis_url, prefix)

    async def main() -> None:
        client = await store.aclient()
        assert client is await store._async() and client is await store.aclient()
        assert await client.ping()
        await store.aclose()

    asyncio.run(main())


def test_public_names() -> None:
    from guardrail.limiter import _redis, _uri

    assert lim_pkg.BACKEND_ERRORS is _redis.BACKEND_ERRORS
    assert redis.RedisError in lim_pkg.BACKEND_ERRORS and OSError in lim_pkg.BACKEND_ERRORS
    assert lim_pkg.DEFAULT_TIMEOUT == _uri.DEFAULT_TIMEOUT and math.isfinite(lim_pkg.DEFAULT_TIMEOUT)
    assert lim_pkg.SCHEMES is _uri.SCHEMES and "redis+cluster" in lim_pkg.SCHEMES
    assert {"BACKEND_ERRORS", "DEFAULT_TIMEOUT", "SCHEMES"} <= set(lim_pkg.__all__)


def test_kept_connections_survive_the_server_closing_them(
    redis_url: str, raw: redis.Redis, prefix: str
) -> None:
    """The sync store keeps the connections it borrows from the pool: one the server closed (CLIENT KILL,
    a restart, an idle timeout) is reconnected before use, like the pool itself does, and the answer
    still comes from Redis; a connection that failed mid-call goes back to the pool, closed."""
    store = redis_store(redis_url, prefix)
    try:
        lim = Limit(rate=0.001, burst=10.0)  # no refill to speak of, however slow the machine
        assert store.consume_one("k", lim, 1.0).source == "store"
        entry = store._sync()
        assert entry.idle is not None and len(entry.idle) == 1
        conn = entry.idle[0]
        assert raw.client_kill_filter(addr=f"127.0.0.1:{conn._sock.getsockname()[1]}") == 1
        for _ in range(3):
            answer = store.decide("consume", [BucketRequest("k", lim, 1.0), BucketRequest("j", lim, 1.0)])
            assert answer.allowed and answer.source == "store"
        assert store.consume_one("k", lim, 1.0).remaining == pytest.approx(5.0, abs=0.01)
        assert len(entry.idle) == 1

        class Broken(Exception):
            pass

        def fail(*_: object) -> None:
            raise Broken

        kept = entry.idle[0]
        kept.send_packed_command = fail
        with pytest.raises(lim_pkg.StorageError):
            store.consume_one("k", lim, 1.0)
        assert len(entry.idle) == 0 and kept._sock is None  # closed, and back in the pool
        del kept.send_packed_command
        assert store.consume_one("k", lim, 1.0).source == "store"
    finally:
        store.close()
