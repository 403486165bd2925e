"""A key the store cannot read (another program's value under guardrail's prefix, a corrupted hash) is not an
outage: the store answers every other key as usual, the circuit breaker stays closed, the calls on that key
take the failure policy (the limiter) or are decided on limits alone (the engine), and one error is logged.
A replay raises instead of degrading."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis._parsers import _RESP2Parser

from guardrail.engine import (
    STORE_DOWN_REASON,
    STORE_ERROR_REASON,
    Action,
    AsyncGuard,
    Guard,
    RequestFacts,
)
from guardrail.limiter import (
    BucketRequest,
    BucketResult,
    CircuitBreaker,
    Limit,
    Limiter,
    MemoryStore,
    MultiResult,
    StorageError,
    StoreReplyError,
)
from guardrail.limiter._redis import is_data_error

pytestmark = pytest.mark.redis

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Explain how tides work."}]})
QUOTA = Limit(rate=1 / 60, burst=3)
RUN = uuid.uuid4().hex


def quota(account: str) -> list[BucketRequest]:
    return [BucketRequest(f"q:{RUN}:{account}", QUOTA)]


def facts(account: str, ts: float | None = None) -> RequestFacts:
    return RequestFacts(account=account, ip="203.0.113.7", path="/v1/chat/completions", body=BODY, ts=ts)


#: What Redis 7 appends to an error raised inside a script; how Redis 6 wraps one.
R7 = " script: ab, on @user_script:9."
R6 = "ERR Error running script (call to f_ab): @user_script:1: @user_script: 1: "


def _parsed(reply: str) -> BaseException:
    """The exception redis-py raises for an error reply (its own parser: subclasses, codes stripped)."""
    parser = _RESP2Parser.__new__(_RESP2Parser)
    return parser.parse_error(reply)


@pytest.mark.parametrize(
    ("reply", "data"),
    [
        ("WRONGTYPE Operation against a key holding the wrong kind of value" + R7, True),
        ("ERR value is not a valid float script: ab, on @user_script:3.", True),
        ("ERR user_script:9: attempt to perform arithmetic on a nil value" + R7, True),
        (R6 + "-WRONGTYPE Operation", True),
        # the server cannot serve now, whatever the keys (Redis 7 appends the script to errors inside one)
        ("OOM command not allowed when used memory > 'maxmemory'. script: ab, on @user_script:2.", False),
        ("READONLY You can't write against a read only replica. script: ab, on @user_script:2.", False),
        (R6 + "-READONLY You can't", False),
        (R6 + "-OOM command not", False),
        ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", False),
        ("TRYAGAIN Multiple keys request during rehashing of slot", False),
        ("CLUSTERDOWN The cluster is down", False),
        ("LOADING Redis is loading the dataset in memory", False),
        ("BUSY Redis is busy running a script.", False),
        ("NOAUTH Authentication required.", False),
        ("ERR max number of clients reached", False),
        ("ERR something new", False),
    ],
)  # fmt: skip
def test_only_replies_about_a_keys_contents_are_data_errors(reply: str, data: bool) -> None:
    assert is_data_error(_parsed(reply)) is data


def test_exceptions_that_are_not_replies_are_outages() -> None:
    assert not is_data_error(ConnectionError("refused"))
    assert not is_data_error(TimeoutError())


_corrupted: list[tuple[str, bytes]] = []


@pytest.fixture(autouse=True)
def _remove_corrupted_keys() -> Iterator[None]:
    """The keys a test corrupted are deleted after it: they sit under the shared default prefix."""
    yield
    while _corrupted:
        url, key = _corrupted.pop()
        client = redis.Redis.from_url(url)
        try:
            client.delete(key)
        finally:
            client.close()


def _corrupt(url: str, pattern: str, *, garbage: bool = False) -> list[bytes]:
    """Put a hash where guardrail keeps something else (or a string where it keeps a hash); ``garbage``:
    keep a hash, with fields that are not numbers."""
    client = redis.Redis.from_url(url)
    try:
        keys: list[bytes] = list(client.scan_iter(match=pattern))
        assert keys, pattern
        for key in keys:
            _corrupted.append((url, key))
            kind = client.type(key)
            if garbage and kind == b"hash":
                client.hset(key, mapping={"requests": "many", "h3": "x", "part:zz": "1"})
                continue
            client.delete(key)
            if kind == b"hash":
                client.set(key, "not a hash")
            else:
                client.hset(key, "foreign", "value")
        return keys
    finally:
        client.close()


@pytest.mark.parametrize("many", [False, True], ids=["one-bucket", "several-buckets"])
def test_a_bucket_key_of_another_kind_is_taken_as_empty_and_rewritten(redis_url: str, many: bool) -> None:
    key = f"bad-{uuid.uuid4().hex}"
    limiter = Limiter(redis_url, failure="closed")
    limit = Limit(rate=0.01, burst=5)

    def answer(result: BucketResult | MultiResult) -> tuple[bool, str]:
        return result.allowed, result.source

    def sync() -> tuple[bool, str]:
        if many:
            return answer(limiter.consume_many([BucketRequest(key, limit, 1.0)]))
        return answer(limiter.consume(key, limit))

    async def run_async() -> list[tuple[bool, str]]:
        try:
            out = []
            for _ in range(6):
                if many:
                    out.append(answer(await limiter.aconsume_many([BucketRequest(key, limit, 1.0)])))
                else:
                    out.append(answer(await limiter.aconsume(key, limit)))
            return out
        finally:
            await limiter.aclose()

    fresh = [(True, "store")] * 5 + [(False, "store")]
    try:
        sync()
        _corrupt(redis_url, f"*{key}*")
        # a fresh, full bucket from the store (not the failure policy), charged as usual afterwards
        assert [sync() for _ in range(6)] == fresh
        _corrupt(redis_url, f"*{key}*")
        assert asyncio.run(run_async()) == fresh
        assert limiter.breaker is not None and limiter.breaker.failures == 0
    finally:
        limiter.close()


class _BadKeyStore(MemoryStore):
    """A store whose every call on one key answers a data error, the way a Redis script's would."""

    def __init__(self, bad: str) -> None:
        super().__init__()
        self.bad = bad

    def decide(self, mode: str, requests: Any, now: float | None = None) -> MultiResult:
        if any(r.key == self.bad for r in requests):
            raise StoreReplyError("WRONGTYPE Operation against a key holding the wrong kind of value")
        return super().decide(mode, requests, now)

    async def adecide(self, mode: str, requests: Any, now: float | None = None) -> MultiResult:
        return self.decide(mode, requests, now)


@pytest.mark.parametrize("failure", ["closed", "local", "open"])
def test_a_data_error_takes_the_failure_policy_for_that_call_only(
    failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = _BadKeyStore("bad")
    limiter = Limiter(store, failure=failure, fallback_share=1.0)
    limiter.local = False  # a store that can fail: give it the breaker and fallback a remote store has
    limiter.breaker = CircuitBreaker()
    limiter._fallback = MemoryStore(source="fallback") if failure == "local" else None
    limit = Limit(rate=0.01, burst=5)  # no refill within the test, however slow the machine
    with caplog.at_level(logging.ERROR, logger="guardrail.limiter"):
        answers = []
        for i in range(12):  # far more than the breaker's three strikes, back to back
            answers.append(limiter.consume_many([BucketRequest("bad", limit, 1.0)]))
            good = asyncio.run(limiter.aconsume_many([BucketRequest(f"good-{i}", limit, 1.0)]))
            assert good.source == "store" and good.allowed
        assert limiter.breaker.failures == 0 and limiter.breaker.strikes == 0
    assert all(a.degraded for a in answers)
    expected = {"closed": [False] * 12, "open": [True] * 12, "local": [True] * 5 + [False] * 7}
    assert [a.allowed for a in answers] == expected[failure]  # "local": its in-process burst of 5
    errors = [r for r in caplog.records if r.name == "guardrail.limiter" and r.levelno == logging.ERROR]
    assert len(errors) <= 1  # rate limited (an earlier test may have logged within the interval)


@pytest.mark.parametrize("shared", [True, False], ids=["one-round-trip", "separate-limiter"])
def test_engine_decides_a_bad_accounts_requests_on_limits(redis_url: str, shared: bool) -> None:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    bad = f"bad-{namespace}"
    limiter = redis_url if shared else Limiter(redis_url, failure="closed")
    guard = Guard(redis_url, limiter=limiter, namespace=namespace)
    try:
        assert guard.check(facts(bad), extra=quota(bad)).action is Action.ALLOW
        _corrupt(redis_url, f"*{guard.account_id(bad)}*")
        decisions = [guard.check(facts(bad), extra=quota(bad)) for _ in range(6)]
        # the account's quota is still enforced from the store (not the failure policy's answer), and the
        # request says why nothing was learnt; other accounts are read and decided as usual
        assert [d.action for d in decisions] == [Action.ALLOW] * 2 + [Action.THROTTLE] * 4
        assert all(STORE_ERROR_REASON in d.reasons for d in decisions)
        assert all(STORE_DOWN_REASON not in d.reasons for d in decisions)
        for i in range(6):
            other = guard.check(facts(f"good-{i}"))
            assert other.action is Action.ALLOW
            assert STORE_ERROR_REASON not in other.reasons and STORE_DOWN_REASON not in other.reasons
        assert guard._store_breaker.failures == 0
        assert guard.limiter.breaker is not None and guard.limiter.breaker.failures == 0
    finally:
        guard.close()


def test_async_engine_matches(redis_url: str) -> None:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    bad = f"bad-{namespace}"

    async def run() -> list[Action]:
        guard = AsyncGuard(redis_url, namespace=namespace)
        try:
            assert (await guard.check(facts(bad), extra=quota(bad))).action is Action.ALLOW
            _corrupt(redis_url, f"*{guard.account_id(bad)}*")
            actions = []
            for i in range(6):
                decision = await guard.check(facts(bad), extra=quota(bad))
                assert STORE_ERROR_REASON in decision.reasons
                actions.append(decision.action)
                assert (await guard.check(facts(f"good-{i}"))).action is Action.ALLOW
            assert guard._store_breaker.failures == 0
            return actions
        finally:
            await guard.aclose()

    assert asyncio.run(run()) == [Action.ALLOW] * 2 + [Action.THROTTLE] * 4


def test_a_replay_raises(redis_url: str) -> None:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    bad = f"bad-{namespace}"
    guard = Guard(redis_url, namespace=namespace)
    try:
        guard.check(facts(bad, ts=1_000.0))
        _corrupt(redis_url, f"*{guard.account_id(bad)}*")
        with pytest.raises(StoreReplyError):
            guard.check(facts(bad, ts=1_001.0))
        assert issubclass(StoreReplyError, StorageError)
    finally:
        guard.close()


@pytest.mark.parametrize("garbage", [False, True], ids=["wrong-type", "unreadable-fields"])
def test_one_bad_account_record_does_not_stop_reclustering(redis_url: str, garbage: bool) -> None:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    bad = f"bad-{namespace}"
    guard = Guard(redis_url, namespace=namespace)
    try:
        for name in (bad, f"good-{namespace}"):
            guard.check(facts(name))
        _corrupt(redis_url, f"*acct:{guard.account_id(bad)}", garbage=garbage)
        accounts = {p.account for p in guard.store.profiles()}
        assert guard.account_id(f"good-{namespace}") in accounts and guard.account_id(bad) not in accounts
        guard.recluster()  # raised StorageError (and so stopped for everyone) before
    finally:
        guard.close()

    async def run() -> set[str]:
        again = AsyncGuard(redis_url, namespace=namespace)
        try:
            return {p.account for p in await again.store.aprofiles()}
        finally:
            await again.aclose()

    assert guard.account_id(bad) not in asyncio.run(run())
