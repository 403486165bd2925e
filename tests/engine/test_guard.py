"""Guard and AsyncGuard: defaults, detection on a small synthetic campaign, policy modes, events, privacy."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.engine import (
    Action,
    AsyncGuard,
    Decision,
    Event,
    Guard,
    Policy,
    RequestFacts,
    analysis_report,
)
from guardrail.extract import Prompt, Turn
from guardrail.limiter import Limit

from ._synth import WRAPPER, body, traffic


def _facts(rec: dict[str, object]) -> RequestFacts:
    return RequestFacts(
        account=str(rec["account"]),
        ip=rec["ip"],
        path=str(rec["path"]),  # type: ignore[arg-type]
        body=rec["body"],
        ts=float(rec["ts"]),
    )  # type: ignore[arg-type]


def test_defaults_work_without_network() -> None:
    with Guard() as guard:
        d = guard.check(
            RequestFacts(account="k1", ip="192.0.2.1", body=body("", "hello there, how are you?"))
        )
        assert d.action is Action.ALLOW and d.would_action is Action.ALLOW
        assert d.retry_after == 0.0 and d.reasons == ()
        guard.settle(d, 100)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(TypeError):
        RequestFacts(account=123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Guard().check("not facts")  # type: ignore[arg-type]
    with Guard() as guard, pytest.raises(ValueError):
        d = guard.check(RequestFacts(account="a", body=body("", "x"), ts=0.0))
        guard.settle(d, -1)
    with pytest.raises(ValueError):
        Guard(recluster_interval=0)
    with pytest.raises(ValueError):
        Guard("ftp://nowhere")


def test_body_without_prompt_is_allowed() -> None:
    with Guard() as guard:
        d = guard.check(RequestFacts(account="a", body=b"{not json", ts=1.0))
        assert d.action is Action.ALLOW


def test_campaign_is_throttled_as_one_and_honest_users_are_not() -> None:
    recs, bad = traffic(seed=3)
    events: list[Event] = []
    # A tight cluster budget (the synthetic campaign is small) so that throttling shows.
    guard = Guard(on_event=events.append, policy=Policy(cluster_limit=Limit(rate=0.01, burst=400.0)))
    refused: dict[str, int] = {}
    for rec in recs:
        d = guard.check(_facts(rec))
        if d.action is not Action.ALLOW:
            refused[str(rec["account"])] = refused.get(str(rec["account"]), 0) + 1
            assert d.retry_after > 0
    guard.recluster(float(recs[-1]["ts"]) + 1)
    report = analysis_report(guard)
    flagged_hashed = set(report["flagged_accounts"])
    assert flagged_hashed == {guard.account_id(a) for a in bad}
    assert not any(a.startswith("user-") for a in refused)
    assert any(a.startswith("camp-") for a in refused)
    kinds = {e.kind for e in events}
    assert "cluster.flagged" in kinds and "decision" in kinds
    blob = json.dumps([e.data for e in events]) + "".join(str(e.account) for e in events)
    assert "camp-" not in blob and "user-" not in blob


def test_replacement_account_joins_the_cluster_bucket_at_once() -> None:
    recs, _ = traffic(seed=4)
    guard = Guard()
    for rec in recs:
        guard.check(_facts(rec))
    ts = float(recs[-1]["ts"]) + 10
    guard.recluster(ts)
    d = guard.check(
        RequestFacts(
            account="fresh",
            ip="198.51.100.9",
            ts=ts + 1,
            body=body("", WRAPPER.format(task="Problem 77: explain graphs and primes.")),
        )
    )
    assert d.evidence.get("cluster_action") == "throttle"
    assert any("template of cluster" in r for r in d.reasons)


def test_observe_only_never_refuses_but_says_what_it_would_do() -> None:
    recs, _ = traffic(seed=5)
    guard = Guard(policy=Policy(observe_only=True, cluster_limit=Limit(rate=0.01, burst=400.0)))
    would = 0
    for rec in recs:
        d = guard.check(_facts(rec))
        assert d.action is Action.ALLOW and d.retry_after == 0.0
        would += d.would_action is not Action.ALLOW
    assert would > 0


def test_block_policy() -> None:
    recs, bad = traffic(seed=6)
    guard = Guard(policy=Policy(block_score=0.8))
    blocked = set()
    for rec in recs:
        if guard.check(_facts(rec)).action is Action.BLOCK:
            blocked.add(str(rec["account"]))
    assert blocked and blocked <= bad


def test_async_twin_decides_like_the_sync_guard() -> None:
    recs, _ = traffic(seed=7, campaign=12, honest=12)
    sync = Guard()
    expected = [sync.check(_facts(r)).action for r in recs]

    async def go() -> list[Action]:
        async with AsyncGuard() as guard:
            out = [(await guard.check(_facts(r))).action for r in recs]
            await guard.settle(await guard.check(_facts(recs[0])), 10)
            return out

    assert asyncio.run(go()) == expected


def test_prompt_given_directly_and_no_raw_ids_stored() -> None:
    guard = Guard()
    prompt = Prompt(
        "custom",
        "",
        (Turn("user", "some words for a prompt"),),
        "some words for a prompt",
        None,
        None,
        False,
        False,
    )
    guard.check(RequestFacts(account="secret-key-123", prompt=prompt, ts=5.0))
    for p in guard.store.profiles():
        assert "secret-key-123" not in p.account


def test_online_background_recluster_thread_starts_and_stops() -> None:
    guard = Guard(recluster_interval=0.05)
    guard.check(RequestFacts(account="a", body=body("", "hi there friend")))
    assert guard._thread is not None
    guard.close()
    assert not guard._thread.is_alive()


@pytest.mark.redis
def test_two_guards_on_one_redis_see_the_same_clusters(redis_url: str) -> None:
    from guardrail.engine._stores import engine_store_from_uri

    tag = f"t{uuid.uuid4().hex[:10]}"
    recs, bad = traffic(seed=8, campaign=16, honest=16)
    a = Guard(engine_store_from_uri(redis_url, prefix=tag), limiter=redis_url, namespace=tag)
    b = Guard(engine_store_from_uri(redis_url, prefix=tag), limiter=redis_url, namespace=tag)
    memory = Guard()
    try:
        for i, rec in enumerate(recs):
            (a if i % 2 else b).check(_facts(rec))
            memory.check(_facts(rec))
        last = float(recs[-1]["ts"])
        a.recluster(last + 1)
        memory.recluster(last + 1)
        probe = next(r for r in recs if r["account"] in bad)
        d = b.check(
            RequestFacts(account=str(probe["account"]), ip=probe["ip"], body=probe["body"], ts=last + 2)
        )
        assert d.evidence.get("cluster_action") == "throttle"
        assert set(analysis_report(a)["flagged_accounts"]) == set(analysis_report(memory)["flagged_accounts"])
    finally:
        a.store.clear()
        a.close()
        b.close()


def test_workers_forked_from_one_guard_take_the_recluster_lock_in_turn(redis_url: str) -> None:
    """``gunicorn --preload`` builds the guard once and forks the workers: each must be its own lock
    holder, so that one of them re-clusters at a time."""
    import multiprocessing

    from guardrail.engine._stores import engine_store_from_uri

    tag = f"t{uuid.uuid4().hex[:10]}"
    guard = Guard(engine_store_from_uri(redis_url, prefix=tag), limiter="memory://", namespace=tag)
    try:
        assert guard.store.try_lock(guard._owner(), 30.0)
        context = multiprocessing.get_context("fork")
        results = context.SimpleQueue()
        child = context.Process(target=_owner_and_lock, args=(guard, results))
        child.start()
        child.join(timeout=30)
        child_owner, child_took = results.get()
        assert child.exitcode == 0 and child_owner != guard._owner() and not child_took
        assert guard.store.try_lock(guard._owner(), 30.0)  # still the parent's
    finally:
        guard.store.clear()
        guard.close()


def _owner_and_lock(guard: Guard, results: Any) -> None:
    results.put((guard._owner(), guard.store.try_lock(guard._owner(), 30.0)))


def test_campaign_behind_a_generic_system_prompt_is_kept_apart_from_its_honest_users() -> None:
    recs, bad = traffic(seed=21, campaign=20, honest=120, days=3.0)
    for rec in recs:
        if rec["account"] in bad:  # the campaign hides behind the most common honest system prompt
            rec["body"]["messages"].insert(0, {"role": "system", "content": "You are a helpful assistant."})
    guard = Guard()
    for rec in recs:
        guard.check(_facts(rec))
    guard.recluster(float(recs[-1]["ts"]) + 1)
    flagged = set(analysis_report(guard)["flagged_accounts"])
    assert flagged == {guard.account_id(a) for a in bad}


def test_request_facts_repr_leaves_out_the_account_address_and_body() -> None:
    """The repr reaches logs when an engine error quotes its facts: no key, address or prompt in it."""
    facts = RequestFacts(account="sk-live-SECRET", ip="10.0.0.1", body=body("", "private words"))
    text = repr(facts)
    assert "SECRET" not in text and "private" not in text and "10.0.0.1" not in text
    assert "/v1/chat/completions" in text


def test_async_recluster_task_follows_the_running_loop() -> None:
    guard = AsyncGuard(recluster_interval=0.01)
    runs: list[asyncio.AbstractEventLoop] = []
    recluster = guard.recluster

    async def counted(now: float | None = None) -> object:
        runs.append(asyncio.get_running_loop())
        return await recluster(now)

    guard.recluster = counted  # type: ignore[method-assign]

    async def use() -> asyncio.AbstractEventLoop:
        await guard.check(RequestFacts(account="a", body=body("", "hi there friend")))
        for _ in range(200):
            if any(loop is asyncio.get_running_loop() for loop in runs):
                break
            await asyncio.sleep(0.01)
        return asyncio.get_running_loop()

    first = asyncio.run(use())  # this loop closes at the end of asyncio.run
    second = asyncio.run(use())
    assert first in runs and second in runs
    asyncio.run(guard.aclose())


def test_extra_buckets_are_charged_in_the_engine_limiter_call() -> None:
    from guardrail.engine._core import EXTRA_REASON
    from guardrail.limiter import BucketRequest

    guard = Guard(recluster_interval=60)
    calls: list[int] = []
    consume = guard.limiter.consume_many

    def counted(requests: list[BucketRequest], *, now: float | None = None) -> object:
        calls.append(len(requests))
        return consume(requests, now=now)

    guard.limiter.consume_many = counted  # type: ignore[method-assign,assignment]
    quota = (BucketRequest("gr:rpm:test-a", Limit(rate=1 / 60, burst=2), 1.0),)
    facts = RequestFacts(account="a", body=body("", "hi there friend"))
    decisions = [guard.check(facts, extra=quota) for _ in range(3)]
    assert [d.action for d in decisions] == [Action.ALLOW, Action.ALLOW, Action.THROTTLE]
    assert calls == [1, 1, 1]  # one limiter call per request, quota included
    assert EXTRA_REASON in decisions[2].reasons and decisions[2].retry_after > 0
    assert "account over its own limit" not in decisions[2].reasons
    assert decisions[0].ticket.buckets == ()  # type: ignore[attr-defined]  # not settled later
    first, last = decisions[0].extra, decisions[2].extra
    assert first is not None and first.allowed and first.remaining == 1.0
    assert last is not None and not last.allowed and len(last.results) == 1
    # Without extra, nothing changes: the plain allow, no limiter call.
    plain = guard.check(facts)
    assert plain.action is Action.ALLOW and plain.extra is None and calls == [1, 1, 1]
    guard.close()


def test_extra_buckets_follow_observe_only_and_async() -> None:
    from guardrail.limiter import BucketRequest

    quota = (BucketRequest("gr:rpm:test-b", Limit(rate=1 / 60, burst=1), 1.0),)
    facts = RequestFacts(account="b", body=body("", "hi there friend"))

    async def go() -> list[Decision]:
        async with AsyncGuard(policy=Policy(observe_only=True)) as guard:
            return [await guard.check(facts, extra=quota) for _ in range(2)]

    first, second = asyncio.run(go())
    assert first.action is Action.ALLOW and second.action is Action.ALLOW
    assert second.would_action is Action.THROTTLE


@given(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=10))
@settings(max_examples=20, deadline=None)
def test_extra_bucket_admits_exactly_its_burst(burst: int, n: int) -> None:
    from guardrail.limiter import BucketRequest

    quota = (BucketRequest(f"gr:rpm:{uuid.uuid4().hex}", Limit(rate=1e-6, burst=float(burst)), 1.0),)
    facts = RequestFacts(account="p", body=body("", "hi there friend"), ts=1_800_000_000.0)
    guard = Guard()
    actions = [guard.check(facts, extra=quota).action for _ in range(n)]
    assert actions == [Action.ALLOW] * min(n, burst) + [Action.THROTTLE] * max(0, n - burst)
    guard.close()


def test_a_guard_closes_the_limiter_it_built_but_not_one_it_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from guardrail.engine import AsyncGuard
    from guardrail.limiter import Limiter

    closed: list[str] = []
    monkeypatch.setattr(Limiter, "close", lambda self: closed.append("sync"))

    async def aclose(self: Limiter) -> None:
        closed.append("async")

    monkeypatch.setattr(Limiter, "aclose", aclose)
    Guard("memory://", limiter="memory://").close()
    assert closed == ["sync"]
    theirs = Limiter("memory://")
    Guard("memory://", limiter=theirs).close()
    assert closed == ["sync"]

    async def run() -> None:
        await AsyncGuard("memory://").aclose()
        await AsyncGuard("memory://", limiter=theirs).aclose()

    asyncio.run(run())
    assert closed == ["sync", "async"]


def test_a_guard_sharing_state_warns_once_of_the_default_secret(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Said by the guard itself, so a guard built by the library API or wrapped (instrumented) before it
    reaches a middleware warns too; state kept in process, or a deployment secret, says nothing."""
    import guardrail._hashing as hashing
    from guardrail.engine import AsyncGuard, Guard

    monkeypatch.delenv("GUARDRAIL_SECRET", raising=False)
    monkeypatch.setattr(hashing, "_warned", False)
    with caplog.at_level("WARNING", logger="guardrail"):
        Guard("memory://")
        Guard("memory://", limiter="redis://127.0.0.1:9/0", secret=b"a deployment secret")
        assert not [r for r in caplog.records if "GUARDRAIL_SECRET" in r.getMessage()]
        AsyncGuard("memory://", limiter="redis://127.0.0.1:9/0")  # not connected until used
        Guard("memory://", limiter="redis://127.0.0.1:9/0")
    warned = [r for r in caplog.records if "GUARDRAIL_SECRET is not set" in r.getMessage()]
    assert len(warned) == 1
