"""Store failure policies: a Redis that vanishes, restarts, or accepts connections and never answers.
Each policy answers as documented and nothing raises into the caller."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from guardrail.limiter import CircuitBreaker, Limit, Limiter, StorageError, TokenBucket, storage_from_uri

from .conftest import RedisProcess

pytestmark = pytest.mark.redis


def fast_breaker() -> CircuitBreaker:
    return CircuitBreaker(base=0.05, cap=0.2, threshold=1)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers (a hung Redis)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    port = int(listener.getsockname()[1])
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    listener.close()


def wait_for(predicate: Callable[[], bool], deadline: float = 5.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("policy", ["open", "closed", "local"])
def test_kill_and_restart(
    policy: str, redis_process: Callable[[], RedisProcess], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="guardrail.limiter")
    server = redis_process()
    bucket = TokenBucket(rate=1.0, burst=4.0, storage=server.url, failure=policy, breaker=fast_breaker())
    try:
        assert bucket.consume("k").source == "store"
        server.stop()
        answers = [bucket.consume("k") for _ in range(6)]  # never raises
        assert all(a.degraded for a in answers)
        if policy == "open":
            assert all(a.allowed and a.source == "fail-open" for a in answers)
        elif policy == "closed":
            assert not any(a.allowed for a in answers)
            assert all(a.source == "fail-closed" and a.retry_after > 0 for a in answers)
        else:  # a local bucket with half of the budget: 2 of 4 tokens
            assert [a.allowed for a in answers] == [True, True, False, False, False, False]
            assert all(a.source == "fallback" for a in answers)
        server.start()  # same port, empty: the script cache is gone too (NOSCRIPT is handled)
        assert wait_for(lambda: bucket.consume("k", 0.0).source == "store")
        assert bucket.limiter.breaker is not None and bucket.limiter.breaker.state == "closed"
        # A line as the outage began and one as it ended, not one per request (this breaker opens on a
        # single failure, so a stale pooled connection met just after the restart may open it once more).
        said = [r.getMessage() for r in caplog.records if r.name == "guardrail.limiter"]
        down = [m for m in said if "unreachable" in m and repr(policy) in m]
        assert 1 <= len(down) <= 2 and len(said) == 2 * len(down) and "answers again" in said[-1]
    finally:
        bucket.close()


def test_async_kill_and_restart(redis_process: Callable[[], RedisProcess]) -> None:
    server = redis_process()
    bucket = TokenBucket(rate=100.0, burst=100.0, storage=server.url, failure="local", breaker=fast_breaker())

    async def main() -> None:
        try:
            assert (await bucket.aconsume("a")).source == "store"
            server.stop()
            down = await asyncio.gather(*(bucket.aconsume("a") for _ in range(20)))
            assert all(r.source == "fallback" for r in down)
            server.start()
            for _ in range(200):
                if (await bucket.aconsume("a", 0.0)).source == "store":
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the async client did not reconnect")
        finally:
            await bucket.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("policy", ["open", "closed", "local"])
def test_hung_server(policy: str, silent_server: int) -> None:
    bucket = TokenBucket(
        rate=1.0,
        burst=2.0,
        storage=f"redis://127.0.0.1:{silent_server}",
        failure=policy,
        socket_timeout=0.05,
        socket_connect_timeout=0.05,
    )
    try:
        started = time.monotonic()
        first = bucket.consume("h")
        answers = [bucket.consume("h") for _ in range(20)]  # 3 timeouts open the breaker; then no waiting
        elapsed = time.monotonic() - started
        assert first.degraded and all(a.degraded for a in answers)
        assert elapsed < 3.0  # bounded by three socket timeouts, not a hang
        assert bucket.limiter.breaker is not None and bucket.limiter.breaker.state == "open"
        assert first.allowed == (policy != "closed")
    finally:
        bucket.close()


def test_hung_server_async(silent_server: int) -> None:
    bucket = TokenBucket(
        rate=1.0,
        burst=2.0,
        storage=f"redis://127.0.0.1:{silent_server}",
        failure="open",
        socket_timeout=0.05,
        socket_connect_timeout=0.05,
    )

    async def main() -> None:
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        try:
            answers = await asyncio.gather(*(bucket.aconsume("h") for _ in range(10)))
            assert all(a.allowed and a.source == "fail-open" for a in answers)
            await asyncio.sleep(0.02)
            assert ticks > 0  # the loop kept running while Redis hung
        finally:
            beat.cancel()
            await bucket.aclose()

    asyncio.run(main())


def test_store_raises_storage_error_and_limiter_does_not(silent_server: int) -> None:
    store = storage_from_uri(
        f"redis://127.0.0.1:{silent_server}", socket_timeout=0.05, socket_connect_timeout=0.05
    )
    with pytest.raises(StorageError):
        store.consume_one("x", Limit(1, 1), 1.0)
    store.close()
    limiter = Limiter(f"redis://127.0.0.1:{silent_server}", failure="closed", socket_timeout=0.05)
    assert not limiter.consume("x", Limit(1, 1)).allowed
    limiter.close()


def test_refused_connection_with_unbuilt_cluster() -> None:
    """A cluster URI whose nodes are all down: building is lazy, answers come from the policy."""
    limiter = Limiter("redis+cluster://127.0.0.1:1,127.0.0.1:2", failure="open")
    r = limiter.consume("x", Limit(1, 1))
    assert r.allowed and r.source == "fail-open"
    limiter.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_backoff_and_single_probe() -> None:
    clock = FakeClock()
    b = CircuitBreaker(base=1.0, cap=4.0, clock=clock, rng=lambda: 1.0, threshold=2)
    assert b.allow() and b.state == "closed"
    b.failure()
    assert b.state == "closed" and b.allow()  # one strike is not an outage
    b.success()
    b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and not b.allow() and b.retry_in() == 1.0
    clock.now = 1.0
    assert b.allow()  # the probe
    assert not b.allow()  # only one probe at a time
    b.failure()
    assert b.retry_in() == 2.0
    clock.now = 3.0
    assert b.allow()
    b.failure()
    clock.now = 100.0
    assert b.allow()
    b.failure()
    assert b.retry_in() == 4.0  # capped
    clock.now = 200.0
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.retry_in() == 0.0 and b.allow()


def test_breaker_probe_that_never_reports_is_retried() -> None:
    clock = FakeClock()
    b = CircuitBreaker(base=1.0, cap=4.0, probe_timeout=5.0, clock=clock, rng=lambda: 1.0, threshold=1)
    b.failure()
    clock.now = 1.0
    assert b.allow() and not b.allow()
    clock.now = 6.5
    assert b.allow()


def test_bad_configuration_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="failure"):
        Limiter("memory://", failure="maybe")
    with pytest.raises(ValueError, match="fallback_share"):
        Limiter("memory://", fallback_share=0.0)
    with pytest.raises(ValueError, match="base"):
        CircuitBreaker(base=0.0)
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker(threshold=0)


def test_calls_in_flight_during_one_stall_open_the_breaker_once() -> None:
    """32 calls that began together and all failed: three strikes open the breaker, and the rest, which
    began before it opened, do not double its delay up to the cap."""
    now = [100.0]
    breaker = CircuitBreaker(clock=lambda: now[0], rng=lambda: 1.0)
    began = [breaker.generation for _ in range(32)]
    assert all(breaker.allow() for _ in began)
    for generation in began:
        breaker.failure(generation)
    assert breaker.failures == 1 and breaker.retry_in() == pytest.approx(breaker.base)
    now[0] += breaker.base + 0.01
    probe = breaker.generation
    assert breaker.allow()
    breaker.failure(probe)  # the probe's failure counts: a longer wait
    assert breaker.failures == 2 and breaker.retry_in() == pytest.approx(2 * breaker.base)
    now[0] += 2 * breaker.base + 0.01
    probe = breaker.generation
    assert breaker.allow()
    breaker.success(began[0])  # a success that began before the opening: not the probe's, ignored
    assert breaker.state != "closed"
    breaker.success(probe)
    assert breaker.state == "closed"
