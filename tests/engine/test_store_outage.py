"""The engine store goes away mid-run: live requests are decided on the limiter alone, under its failure
policy (``local``: a share of each limit in process; ``closed``: refused; ``open``: allowed), without a
timeout per request, and detection resumes when the store answers again. A replay never degrades."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from guardrail.engine import (
    STORE_DOWN_REASON,
    Action,
    AsyncGuard,
    Guard,
    MemoryEngineStore,
    Policy,
    RequestFacts,
)
from guardrail.limiter import BucketRequest, CircuitBreaker, Limit, Limiter, StorageError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))
from adapters_support import free_port, start_redis_server

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Explain how tides work."}]})
QUOTA = Limit(rate=1 / 60, burst=3)


def facts(account: str, ts: float | None = None) -> RequestFacts:
    return RequestFacts(account=account, ip="203.0.113.7", path="/v1/chat/completions", body=BODY, ts=ts)


def quota(account: str) -> list[BucketRequest]:
    return [BucketRequest(f"q:{account}", QUOTA)]


@pytest.fixture
def dead_url() -> str:
    """A Redis that answered once and is gone now."""
    port = free_port()
    proc = start_redis_server(port)
    proc.kill()
    proc.wait(timeout=5)
    return f"redis://127.0.0.1:{port}/0"


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ("local", [Action.ALLOW] * 3 + [Action.THROTTLE] * 3),
        ("closed", [Action.THROTTLE] * 6),
        ("open", [Action.ALLOW] * 6),
    ],
)
def test_sync_guard_applies_the_failure_policy(dead_url: str, failure: str, expected: list[Action]) -> None:
    guard = Guard(dead_url, limiter=Limiter(dead_url, failure=failure, fallback_share=1.0))
    try:
        decisions = [guard.check(facts("flood"), extra=quota("flood")) for _ in range(6)]
    finally:
        guard.close()
    assert [d.action for d in decisions] == expected
    assert all(STORE_DOWN_REASON in d.reasons for d in decisions)
    refused = [d for d in decisions if d.action is Action.THROTTLE]
    assert all(d.retry_after > 0 for d in refused)


@pytest.mark.parametrize("failure", ["local", "closed", "open"])
def test_async_guard_matches_the_sync_one(dead_url: str, failure: str) -> None:
    async def run() -> list[Action]:
        guard = AsyncGuard(dead_url, limiter=Limiter(dead_url, failure=failure, fallback_share=1.0))
        try:
            return [(await guard.check(facts("flood"), extra=quota("flood"))).action for _ in range(6)]
        finally:
            await guard.aclose()

    sync = Guard(dead_url, limiter=Limiter(dead_url, failure=failure, fallback_share=1.0))
    try:
        want = [sync.check(facts("flood"), extra=quota("flood")).action for _ in range(6)]
    finally:
        sync.close()
    assert asyncio.run(run()) == want


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_outage_skips_the_store_then_recovers(dead_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """After three failures in a row the store is left alone for a backoff (no connection attempt per
    request); once the backoff is over one probe asks it again, and a store that answers ends the outage."""
    guard = Guard(dead_url, limiter="memory://", policy=Policy())
    clock = _Clock()
    guard._store_breaker = CircuitBreaker(clock=clock, rng=lambda: 1.0)
    calls = 0
    real = guard.store.observe

    def counting(obs: object) -> object:
        nonlocal calls
        calls += 1
        return real(obs)  # type: ignore[arg-type]

    monkeypatch.setattr(guard.store, "observe", counting)
    try:
        for _ in range(20):
            assert guard.check(facts("a")).action is Action.ALLOW
        assert calls == 3 and guard._store_breaker.state == "open"
        clock.now += 0.6  # the first backoff (0.5 s) is over: one probe, which fails, and a longer wait
        guard.check(facts("a"))
        guard.check(facts("a"))
        assert calls == 4
        clock.now += 1.1
        memory = MemoryEngineStore()  # the store answers again
        monkeypatch.setattr(guard.store, "observe", memory.observe)
        decision = guard.check(facts("a"))
        assert STORE_DOWN_REASON not in decision.reasons
        assert guard._store_breaker.state == "closed"
        assert STORE_DOWN_REASON not in guard.check(facts("a")).reasons
    finally:
        guard.close()


def test_requests_in_flight_during_one_stall_back_off_once() -> None:
    """Failures of calls that began before the breaker opened are not counted again: a burst of them
    does not stretch one stall into the longest backoff."""
    guard = Guard("memory://")
    clock = _Clock()
    guard._store_breaker = CircuitBreaker(clock=clock, rng=lambda: 1.0)
    prepared = guard.core.prepare(facts("a"))
    try:
        epochs = [guard._store_up(prepared) for _ in range(32)]  # 32 calls in flight
        for epoch in epochs:
            guard._store_failed(prepared, StorageError("stall"), epoch)
        assert guard._store_breaker.failures == 1 and guard._store_breaker.retry_in() == pytest.approx(0.5)
        clock.now += 0.6
        assert guard._store_up(prepared) >= 0  # the probe goes through
    finally:
        guard.close()


def test_closed_refuses_without_charging_the_callers_buckets(dead_url: str) -> None:
    """A refusal of the ``closed`` policy during an outage spends none of the caller's quota."""
    limiter = Limiter("memory://")
    guard = Guard(dead_url, limiter=limiter)
    guard.limiter.failure = "closed"  # the limiter itself is healthy (in memory)
    try:
        for _ in range(5):
            assert guard.check(facts("q"), extra=quota("q")).action is Action.THROTTLE
        assert limiter.peek(quota("q")).remaining == pytest.approx(QUOTA.burst - 1)  # after this one
    finally:
        guard.close()


def test_a_replay_does_not_degrade(dead_url: str) -> None:
    guard = Guard(dead_url, limiter="memory://")
    try:
        with pytest.raises(StorageError):
            guard.check(facts("a", ts=1_700_000_000.0))
    finally:
        guard.close()
