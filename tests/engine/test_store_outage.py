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
from guardrail.limiter import BucketRequest, Limit, Limiter, StorageError

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


def test_outage_skips_the_store_then_recovers(dead_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """After one failure the store is left alone for a backoff (no connection attempt per request); once
    the backoff is over it is asked again, and a store that answers ends the outage."""
    guard = Guard(dead_url, limiter="memory://", policy=Policy())
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
        assert calls == 1
        guard._store_down_until = 0.0  # the backoff is over
        memory = MemoryEngineStore()  # the store answers again
        monkeypatch.setattr(guard.store, "observe", memory.observe)
        decision = guard.check(facts("a"))
        assert STORE_DOWN_REASON not in decision.reasons
        assert guard._store_backoff == 0.0
    finally:
        guard.close()


def test_a_replay_does_not_degrade(dead_url: str) -> None:
    guard = Guard(dead_url, limiter="memory://")
    try:
        with pytest.raises(StorageError):
            guard.check(facts("a", ts=1_700_000_000.0))
    finally:
        guard.close()
