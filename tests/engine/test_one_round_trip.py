"""Engine state and limiter on one Redis: ``observe`` and the buckets known before it (the account's own,
the caller's ``extra`` such as the adapters' ``account_rpm`` quota) go in one round trip, with the same
decisions as the two-call path: a blocked request and a throttled cluster's refusal leave those buckets as
they were (all or none)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from guardrail.engine import STORE_DOWN_REASON, Action, AsyncGuard, Guard, Policy, RequestFacts
from guardrail.engine.redis_store import RedisEngineStore
from guardrail.engine.store import ClusterTable, ClusterVerdict
from guardrail.limiter import BucketRequest, Limit, Limiter

BODY = b'{"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hello there"}]}'
QUOTA = Limit(rate=0.001, burst=3.0)


def _facts(account: str, ts: float | None = None) -> RequestFacts:
    return RequestFacts(account=account, path="/v1/chat/completions", body=BODY, ip="192.0.2.7", ts=ts)


def _quota(account: str, prefix: str) -> list[BucketRequest]:
    return [BucketRequest(f"{prefix}:quota:{account}", QUOTA, 1.0)]


class _Counted:
    """Counts what the sync and asyncio redis-py connections put on the wire (one send = one round trip)."""

    def __init__(self) -> None:
        import redis.asyncio.connection as aconn
        import redis.connection as conn

        self.count = 0
        self._patched: list[tuple[Any, Any]] = []
        counter = self
        for cls in (conn.AbstractConnection, aconn.AbstractConnection):
            original = cls.send_packed_command
            self._patched.append((cls, original))
            if cls is conn.AbstractConnection:

                def sync(c: Any, command: Any, check_health: bool = True, _o: Any = original) -> None:
                    counter.count += 1
                    _o(c, command, check_health)

                cls.send_packed_command = sync  # type: ignore[method-assign]
            else:

                async def asynchronous(
                    c: Any, command: Any, check_health: bool = True, _o: Any = original
                ) -> None:
                    counter.count += 1
                    await _o(c, command, check_health)

                cls.send_packed_command = asynchronous  # type: ignore[method-assign]

    def restore(self) -> None:
        for cls, original in self._patched:
            cls.send_packed_command = original


@pytest.fixture
def counted() -> Iterator[_Counted]:
    c = _Counted()
    try:
        yield c
    finally:
        c.restore()


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisEngineStore]:
    s = RedisEngineStore(redis_url, prefix=f"t1rt-{uuid.uuid4().hex[:10]}")
    yield s
    s.close()


def _publish(store: RedisEngineStore, account_hash: str, action: str) -> None:
    cid = "c-" + uuid.uuid4().hex[:8]
    table = ClusterTable(
        version=store.table().version + 1,
        clusters={cid: ClusterVerdict(cid, 0.99, action, 5, {})},
        assignment={account_hash: cid},
        parts={},
    )
    store.publish(table)


def test_a_guard_built_from_one_redis_uri_shares_its_limiter_store(redis_url: str) -> None:
    with Guard(redis_url) as guard:
        assert isinstance(guard.store, RedisEngineStore)
        assert guard.limiter.store is guard.store.limiter_store and guard._together
    with Guard(redis_url, limiter="memory://") as apart:
        assert not apart._together


def test_sync_quota_rides_with_observe(store: RedisEngineStore, counted: _Counted) -> None:
    prefix = uuid.uuid4().hex
    guard = Guard(store, limiter=Limiter(store.limiter_store), secret=b"s" * 32, recluster_interval=3600)
    guard.check(_facts("warm"), extra=_quota("warm", prefix))  # scripts loaded, connections made
    counted.count = 0
    answers = [guard.check(_facts("alice"), extra=_quota("alice", prefix)).action for _ in range(5)]
    assert counted.count == 5  # one round trip per request, quota included
    assert answers == [Action.ALLOW] * 3 + [Action.THROTTLE] * 2
    guard.close()


def test_async_quota_and_account_limit_ride_with_observe(store: RedisEngineStore, counted: _Counted) -> None:
    prefix = uuid.uuid4().hex

    async def run() -> tuple[int, list[Action]]:
        policy = Policy(account_limit=Limit(rate=1000.0, burst=1e6))
        guard = AsyncGuard(store, limiter=Limiter(store.limiter_store), policy=policy, secret=b"s" * 32)
        await guard.check(_facts("warm"), extra=_quota("warm", prefix))
        counted.count = 0
        answers = [(await guard.check(_facts("bob"), extra=_quota("bob", prefix))).action for _ in range(5)]
        n = counted.count
        await guard.aclose()
        return n, answers

    n, answers = asyncio.run(run())
    assert n == 5
    assert answers == [Action.ALLOW] * 3 + [Action.THROTTLE] * 2


def test_same_decisions_as_the_two_call_path(store: RedisEngineStore, redis_url: str) -> None:
    prefix = uuid.uuid4().hex
    one = Guard(store, limiter=Limiter(store.limiter_store), secret=b"s" * 32, recluster_interval=3600)
    two = Guard(store, limiter=Limiter(redis_url), secret=b"s" * 32, recluster_interval=3600)
    assert one._together and not two._together
    for guard, who in ((one, "carol"), (two, "dave")):
        got = []
        for i in range(6):
            d = guard.check(_facts(who, ts=1_000.0 + i), extra=_quota(who, prefix + who))
            got.append((d.action, d.extra is not None and d.extra.allowed, round(d.retry_after)))
        assert [a for a, _, _ in got] == [Action.ALLOW] * 3 + [Action.THROTTLE] * 3
        assert got[:3] == [(Action.ALLOW, True, 0)] * 3
    one.close()
    two.limiter.close()


@pytest.mark.parametrize("action", ["block", "throttle"])
def test_a_refused_request_leaves_the_early_buckets_as_they_were(
    store: RedisEngineStore, action: str
) -> None:
    # Blocked: nothing is charged. Throttled by an empty cluster bucket: all or none, so the quota
    # charged with observe is given back.
    prefix = uuid.uuid4().hex
    policy = Policy(cluster_limit=Limit(rate=0.001, burst=1.0))
    limiter = Limiter(store.limiter_store)
    guard = Guard(store, limiter=limiter, policy=policy, secret=b"s" * 32, recluster_interval=3600)
    _publish(store, guard.account_id("eve"), action)
    quota = _quota("eve", prefix)
    decisions = [guard.check(_facts("eve"), extra=quota) for _ in range(3)]
    assert all(d.action is not Action.ALLOW for d in decisions)
    level = limiter.peek([BucketRequest(quota[0].key, QUOTA, 0.0)]).remaining
    assert level == pytest.approx(QUOTA.burst, abs=1e-3)
    guard.close()


def test_a_lost_script_cache_is_reloaded(store: RedisEngineStore, redis_url: str) -> None:
    import redis

    prefix = uuid.uuid4().hex
    guard = Guard(store, limiter=Limiter(store.limiter_store), secret=b"s" * 32, recluster_interval=3600)
    assert guard.check(_facts("frank"), extra=_quota("frank", prefix)).allowed
    client = redis.Redis.from_url(redis_url)
    try:
        client.script_flush()
    finally:
        client.close()
    d = guard.check(_facts("frank"), extra=_quota("frank", prefix))
    assert d.allowed and d.extra is not None and d.extra.results[0].remaining == pytest.approx(1.0, abs=1e-3)
    guard.close()


def test_a_dead_server_degrades_like_observe_and_counts_against_the_breaker() -> None:
    # As when observe fails alone: the request is decided on the limiter's failure policy (here "local",
    # the default: the quota from an in-process share); the limiter's breaker counts each failure.
    dead = RedisEngineStore("redis://127.0.0.1:1/0", prefix="dead", socket_connect_timeout=0.2)
    limiter = Limiter(dead.limiter_store)
    guard = Guard(dead, limiter=limiter, secret=b"s" * 32, recluster_interval=3600)
    assert guard._together and limiter.breaker is not None
    for _ in range(limiter.breaker.threshold):
        decision = guard.check(_facts("gina"), extra=_quota("gina", "p"))
        assert STORE_DOWN_REASON in decision.reasons
    assert limiter.breaker.state == "open"
    decision = guard.check(_facts("gina"), extra=_quota("gina", "p"))
    assert STORE_DOWN_REASON in decision.reasons  # the fallback share of the quota decides
    guard.close()


def test_a_client_with_retries_keeps_the_two_call_path(redis_url: str) -> None:
    # redis-py's retry policy must apply, so no hand-packed pipeline: the two calls, the same answers.
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    store = RedisEngineStore(redis_url, prefix=f"t1rt-{uuid.uuid4().hex[:10]}", retry=Retry(NoBackoff(), 2))
    prefix = uuid.uuid4().hex
    guard = Guard(store, limiter=Limiter(store.limiter_store), secret=b"s" * 32, recluster_interval=3600)
    assert not store.limiter_store.shares_round_trips and not guard._together
    with pytest.raises(ValueError):
        store.limiter_store.decide_after((b"return 1", "0" * 40, [], []), "consume", _quota("hank", prefix))
    answers = [guard.check(_facts("hank"), extra=_quota("hank", prefix)).action for _ in range(4)]
    assert answers == [Action.ALLOW] * 3 + [Action.THROTTLE]
    guard.close()
