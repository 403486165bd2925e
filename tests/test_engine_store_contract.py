"""The engine-store contract, one suite over every backend (memory; Redis when a server answers; a Redis
Cluster of our own for the hot-path script), plus a differential test: random observation sequences give
the same answers on memory and on Redis."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.connection
import redis.connection
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from guardrail.engine._memory import MemoryEngineStore
from guardrail.engine._stores import engine_store_from_uri
from guardrail.engine.redis_store import RedisEngineStore
from guardrail.engine.store import (
    TOP_PARTS,
    TOP_PREFIXES,
    AccountProfile,
    ClusterTable,
    ClusterVerdict,
    EngineStore,
    Observation,
    Observed,
    StoreSettings,
)
from guardrail.limiter import StorageError

try:  # the limiter suite's private servers: a Redis Cluster of our own, redis-server processes we may kill
    from limiter import conftest as limiter_conftest
except ImportError:  # pragma: no cover - the limiter suite moved: skip what needs its servers
    limiter_conftest = None  # type: ignore[assignment]

if limiter_conftest is not None:
    cluster_url = limiter_conftest.cluster_url
    redis_process = limiter_conftest.redis_process
else:  # pragma: no cover

    @pytest.fixture
    def cluster_url() -> str:
        pytest.skip("tests/limiter/conftest.py (cluster_url fixture) not found")

    @pytest.fixture
    def redis_process() -> Any:
        pytest.skip("tests/limiter/conftest.py (redis_process fixture) not found")


SMALL = StoreSettings(
    max_accounts=6, max_templates=5, part_min_count=2, max_parts=3, max_segments=8, sketch_width=1 << 10
)
#: A tiny sketch: cells shared between segments and frequent halvings, where exactness is hardest.
TINY = StoreSettings(
    max_accounts=4, max_templates=6, part_min_count=2, max_parts=3, max_segments=6, sketch_width=64
)

BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


def H(i: int) -> int:
    """Segment hashes are uniform 64-bit values, as the engine's are."""
    return xxhash.xxh3_64_intdigest(b"segment %d" % i)


def obs(account: str, ts: float, segs: tuple[int, ...] = (), **kw: Any) -> Observation:
    return Observation(account=account, ts=ts, segments=tuple(H(s) for s in segs), **kw)


def redis_store(url: str, s: StoreSettings, **kw: Any) -> RedisEngineStore:
    return RedisEngineStore(url, settings=s, prefix=f"test-engine-{uuid.uuid4().hex}", **kw)


@pytest.fixture
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[StoreSettings], EngineStore]]:
    """Factory of fresh stores of the parametrised backend, each Redis one under a unique prefix."""
    made: list[EngineStore] = []
    kind = request.param

    def make(s: StoreSettings = SMALL) -> EngineStore:
        store: EngineStore
        if kind == "memory":
            store = MemoryEngineStore(s)
        else:
            store = redis_store(request.getfixturevalue("redis_url"), s)
        made.append(store)
        return store

    yield make
    for store in made:
        store.clear()
        store.close()


backends = pytest.mark.parametrize("make_store", BACKENDS, indirect=True)


@pytest.fixture
def pair(redis_url: str) -> Iterator[Callable[[StoreSettings], tuple[MemoryEngineStore, RedisEngineStore]]]:
    """Factory of (memory, Redis) stores with the same settings, for differential tests."""
    made: list[RedisEngineStore] = []

    def make(s: StoreSettings) -> tuple[MemoryEngineStore, RedisEngineStore]:
        r = redis_store(redis_url, s)
        made.append(r)
        return MemoryEngineStore(s), r

    yield make
    for r in made:
        r.clear()
        r.close()


# -- the contract, on every backend ---------------------------------------------------------------------


@backends
def test_parts_are_recurring_segments_smallest_first(make_store: Callable[..., EngineStore]) -> None:
    store = make_store()
    assert store.observe(obs("a", 0.0, (1, 2, 3, 4, 5))).parts == ()
    got = store.observe(obs("b", 1.0, (1, 2, 3, 4, 5, 6)))
    assert got.parts == tuple(sorted(H(i) for i in (1, 2, 3, 4, 5)))[:3]
    assert got.profile.templated == 1 and set(got.profile.parts) == set(got.parts)
    assert store.observe(obs("c", 2.0, (6,))).parts == (H(6),)


@backends
def test_template_count_tracks_the_parts_with_statistics(make_store: Callable[..., EngineStore]) -> None:
    store = make_store()
    count = getattr(store, "template_count")  # noqa: B009 - optional capability, read by Metrics
    assert count() == 0
    for i, account in enumerate("abc"):
        store.observe(obs(account, float(i), (1, 2, 3, 4, 5)))
    parts = store.observe(obs("d", 3.0, (1, 2, 3, 4, 5))).parts
    assert parts and count() == len(store.templates(tuple(sorted(H(i) for i in (1, 2, 3, 4, 5)))))
    store.clear()
    assert count() == 0


@backends
def test_only_the_smallest_max_segments_are_counted(make_store: Callable[..., EngineStore]) -> None:
    store = make_store()
    segs = tuple(range(20))
    ordered = sorted(H(i) for i in segs)
    store.observe(obs("a", 0.0, segs))
    store.observe(obs("a", 1.0, segs))
    kept = {h: i for i, h in enumerate(ordered)}
    # the 12 largest were never counted: alone they are new again
    late = [i for i in segs if kept[H(i)] >= SMALL.max_segments]
    assert store.observe(obs("b", 2.0, (late[0],))).parts == ()
    early = [i for i in segs if kept[H(i)] < SMALL.max_segments]
    assert store.observe(obs("b", 3.0, (early[0],))).parts == (H(early[0]),)


@backends
def test_profile_fields(make_store: Callable[..., EngineStore]) -> None:
    store = make_store()
    store.observe(obs("a", 7200.0, (1,), prefix="r1", tokens=10, elicitation=0.5))
    store.observe(obs("a", 7203.0, (1,), prefix="r1", tokens=-5, elicitation=2.0, conversation=True))
    store.observe(obs("a", 7100.0, (1,), tokens=7))  # earlier than the last: no gap
    p = store.observe(obs("a", 7203.0 + 3600.0, (1,), prefix="r2", elicitation=None)).profile
    assert (p.requests, p.tokens, p.templated, p.conversations) == (4, 17, 3, 1)
    assert p.elicitation_n == 2 and p.elicitation_sum == 1.5
    assert p.first_seen == 7100.0 and p.last_seen == 10803.0
    assert (p.hours[1], p.hours[2], p.hours[3], sum(p.hours)) == (1, 2, 1, 4)
    assert p.gap_n == 2
    g1, g2 = math.log2(4.0), math.log2(1.0 + 3600.0)
    assert p.gap_sum == pytest.approx(g1 + g2, rel=1e-12)
    assert p.gap_sq == pytest.approx(g1 * g1 + g2 * g2, rel=1e-12)
    assert p.parts == {H(1): 3} and p.prefixes == {"r1": 2, "r2": 1}


@backends
def test_space_saving_evicts_the_smallest_then_the_oldest(make_store: Callable[..., EngineStore]) -> None:
    store = make_store()
    for i in range(TOP_PREFIXES):
        for _ in range(i + 1):
            store.observe(obs("a", 0.0, prefix=f"r{i}"))
    p = store.observe(obs("a", 1.0, prefix="new")).profile
    assert p.prefixes == {"r1": 2, "r2": 3, "r3": 4, "new": 1}
    p = store.observe(obs("a", 2.0, prefix="newer")).profile  # tie at 1: the older entry goes
    assert p.prefixes == {"r1": 2, "r2": 3, "r3": 4, "newer": 1}
    fresh = make_store(StoreSettings(part_min_count=1, max_parts=1))
    for i in range(TOP_PARTS + 1):
        p = fresh.observe(obs("a", float(i), (i,))).profile
    assert len(p.parts) == TOP_PARTS and H(0) not in p.parts and p.parts[H(TOP_PARTS)] == 1


@backends
def test_profiles_evicted_least_recently_observed(make_store: Callable[..., EngineStore]) -> None:
    store = make_store()
    for i in range(SMALL.max_accounts):
        store.observe(obs(f"acct{i}", 100.0 - i))  # timestamps run backwards: call order counts
    store.observe(obs("acct0", 0.0))
    got = store.observe(obs("late", 50.0))
    assert got.accounts == SMALL.max_accounts
    names = {p.account for p in store.profiles()}
    assert names == {"acct0", "late", *(f"acct{i}" for i in range(2, SMALL.max_accounts))}
    again = store.observe(obs("acct1", 60.0))
    assert again.profile.requests == 1  # a new profile: the old one was evicted


@backends
def test_profiles_are_snapshots(make_store: Callable[..., EngineStore]) -> None:
    store = make_store()
    store.observe(obs("a", 0.0, prefix="r"))
    (p,) = list(store.profiles())
    p.prefixes["x"] = 9
    p.hours[0] = 99
    (q,) = list(store.profiles())
    assert q.prefixes == {"r": 1} and q.hours[0] == 1


@backends
def test_template_stats_and_eviction(make_store: Callable[..., EngineStore]) -> None:
    store = make_store()
    for i in range(6):
        store.observe(obs(f"a{i % 3}", 10.0 - i, (7,)))
    stats = store.templates([H(7), H(8)])
    assert set(stats) == {H(7)}
    t = stats[H(7)]
    assert (t.part, t.requests, t.accounts, t.first_seen, t.last_seen) == (H(7), 5, 3, 5.0, 9.0)
    for i in range(20, 20 + SMALL.max_templates):  # each new line becomes a part on its second sight
        store.observe(obs("b", 20.0, (i,)))
        store.observe(obs("b", 21.0, (i,)))
    assert store.templates([H(7)]) == {}
    assert len(store.templates([H(i) for i in range(20, 20 + SMALL.max_templates)])) == SMALL.max_templates


@backends
def test_sketch_counters_halve(make_store: Callable[..., EngineStore]) -> None:
    s = StoreSettings(part_min_count=3, max_segments=64, sketch_width=64)
    store = make_store(s)
    store.observe(obs("a", 0.0, (1,)))
    store.observe(obs("a", 1.0, (1,)))  # counted twice; one more would make it a part
    store.observe(obs("a", 2.0, tuple(range(1000, 1064))))  # 64 insertions: every counter halves
    assert store.observe(obs("a", 3.0, (1,))).parts == ()  # 2 // 2 + 1 = 2 < 3
    assert store.observe(obs("a", 4.0, (1,))).parts == (H(1),)


@backends
def test_publish_is_versioned_and_read_on_the_hot_path(make_store: Callable[..., EngineStore]) -> None:
    store = make_store()
    empty = store.table()
    assert (empty.version, dict(empty.clusters), dict(empty.assignment), dict(empty.parts)) == (0, {}, {}, {})
    v1 = ClusterVerdict("c1", 0.875, "throttle", 3, {"accounts": 3, "why": ["templated"]})
    v2 = ClusterVerdict("c2", 1.0, "block", 2, {})
    table = ClusterTable(2, {"c1": v1, "c2": v2}, {"a": "c1", "b": "c2"}, {H(8): "c2", H(7): "c1"})
    store.publish(table)
    store.publish(ClusterTable(2, {}, {}, {}))  # same version: ignored
    store.publish(ClusterTable(1, {}, {}, {}))  # older: ignored
    assert store.table() == table
    store.observe(obs("x", 0.0, (7, 8)))
    got = store.observe(obs("a", 1.0, (7, 8)))
    assert got.cluster == v1 and got.table_version == 2
    first = min(H(7), H(8))
    assert got.flagged_part == first and got.part_cluster == (v1 if first == H(7) else v2)
    other = store.observe(obs("new", 2.0, (9,)))
    assert other.cluster is None and other.part_cluster is None and other.flagged_part is None
    store.publish(ClusterTable(3, {}, {}, {}))
    assert store.observe(obs("a", 3.0, (7,))).cluster is None
    assert store.table().version == 3


@backends
def test_lock(make_store: Callable[..., EngineStore]) -> None:
    store = make_store()
    assert store.try_lock("w1", 30.0)
    assert store.try_lock("w1", 30.0)
    assert not store.try_lock("w2", 30.0)
    other = make_store()
    assert other.try_lock("w2", 0.0)  # a zero ttl: held and expired at once
    assert other.try_lock("w3", 30.0)


@backends
def test_clear(make_store: Callable[..., EngineStore]) -> None:
    store = make_store()
    store.observe(obs("a", 0.0, (1,)))
    store.observe(obs("a", 1.0, (1,)))
    store.publish(ClusterTable(5, {}, {"a": "c"}, {}))
    assert store.try_lock("w1", 30.0)
    store.clear()
    assert list(store.profiles()) == [] and store.templates([H(1)]) == {}
    assert store.table().version == 0 and store.try_lock("w2", 30.0)
    assert store.observe(obs("a", 2.0, (1,))).parts == ()  # the sketch forgot too


@backends
def test_async_twins_agree_with_sync(make_store: Callable[..., EngineStore]) -> None:
    sync, asyn = make_store(), make_store()
    seq = [obs(f"a{i % 3}", float(i), (i % 4, 9), prefix=f"r{i % 2}", tokens=i) for i in range(12)]
    verdict = ClusterVerdict("c", 0.5, "allow", 1, {"n": 1})
    table = ClusterTable(1, {"c": verdict}, {"a1": "c"}, {H(9): "c"})

    async def run() -> tuple[list[Observed], list[Any]]:
        out = [await asyn.aobserve(o) for o in seq[:6]]
        await asyn.apublish(table)
        out += [await asyn.aobserve(o) for o in seq[6:]]
        rest = [
            await asyn.atable(),
            sorted((p.account, p.requests) for p in await asyn.aprofiles()),
            await asyn.atemplates([H(9)]),
            await asyn.atry_lock("w", 10.0),
            await asyn.atry_lock("x", 10.0),
        ]
        await asyn.aclear()
        rest.append(await asyn.aprofiles())
        await asyn.aclose()
        return out, rest

    got, rest = asyncio.run(run())
    want = [sync.observe(o) for o in seq[:6]]
    sync.publish(table)
    want += [sync.observe(o) for o in seq[6:]]
    assert got == want
    assert rest[0] == table
    assert rest[1] == sorted((p.account, p.requests) for p in sync.profiles())
    assert rest[2] == sync.templates([H(9)])
    assert rest[3:] == [True, False, []]


@backends
def test_bad_input(make_store: Callable[..., EngineStore]) -> None:
    store = make_store()
    with pytest.raises(ValueError):
        store.observe(obs("a", math.inf))


# -- factory --------------------------------------------------------------------------------------------


def test_factory_builds_each_backend() -> None:
    assert isinstance(engine_store_from_uri("memory://", settings=SMALL), MemoryEngineStore)
    for uri in ("redis://127.0.0.1:1/0", "valkey://h:1", "redis+cluster://h:1,h:2", "redis+sentinel://h:1/m"):
        store = engine_store_from_uri(uri, settings=SMALL, prefix="p")
        assert isinstance(store, RedisEngineStore) and store.settings == SMALL
    for bad in ("mongodb://h:1", "127.0.0.1:6379", "", "redis+sentinel://h:1"):
        with pytest.raises(ValueError):
            engine_store_from_uri(bad)
    with pytest.raises(TypeError):
        engine_store_from_uri(b"memory://")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prefix"):
        RedisEngineStore("redis://h:1", prefix="a}b")
    with pytest.raises(ValueError):
        RedisEngineStore("memory://")
    with pytest.raises(ValueError, match="64 bits"):
        RedisEngineStore("redis://h:1", settings=StoreSettings(sketch_width=1 << 22))


def test_backend_errors_are_storage_errors() -> None:
    store = RedisEngineStore("redis://127.0.0.1:1/0", settings=SMALL)
    calls: list[Callable[[], object]] = [
        lambda: store.observe(obs("a", 0.0, (1,))),
        lambda: list(store.profiles()),
        lambda: store.templates([1]),
        lambda: store.publish(ClusterTable(1, {}, {}, {})),
        store.table,
        lambda: store.try_lock("w", 1.0),
        store.clear,
    ]
    for call in calls:
        with pytest.raises(StorageError):
            call()

    async def run() -> None:
        with pytest.raises(StorageError):
            await store.aobserve(obs("a", 0.0, (1,)))
        with pytest.raises(StorageError):
            await store.atable()
        await store.aclose()

    asyncio.run(run())
    store.close()


# -- Redis specifics --------------------------------------------------------------------------------------


class _Counter:
    """Counts commands (or pipelines) sent to Redis: one per round trip."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent = 0
        sync_send: Callable[..., Any] = redis.connection.AbstractConnection.send_packed_command
        async_send: Callable[..., Any] = redis.asyncio.connection.AbstractConnection.send_packed_command

        def counted(conn: Any, *a: Any, **kw: Any) -> Any:
            self.sent += 1
            return sync_send(conn, *a, **kw)

        async def acounted(conn: Any, *a: Any, **kw: Any) -> Any:
            self.sent += 1
            return await async_send(conn, *a, **kw)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
        monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "send_packed_command", acounted)


@pytest.mark.redis
def test_observe_is_one_round_trip(
    pair: Callable[[StoreSettings], tuple[MemoryEngineStore, RedisEngineStore]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, store = pair(SMALL)
    store.observe(obs("warm", 0.0, (1,)))  # connects and loads the script
    store.publish(ClusterTable(1, {}, {"a": "c"}, {}))
    counter = _Counter(monkeypatch)
    for i in range(10):
        store.observe(obs(f"a{i % 2}", float(i), tuple(range(i, i + 8)), prefix="r", elicitation=0.5))
    assert counter.sent == 10
    store.table()
    store.table()
    assert counter.sent == 12  # an unchanged table costs one GET

    async def run() -> int:
        await store.aobserve(obs("warm", 0.0, (1,)))
        before = counter.sent
        for i in range(5):
            await store.aobserve(obs("a", float(i), (1, 2, 3)))
        after = counter.sent - before
        await store.aclose()
        return after

    assert asyncio.run(run()) == 5


@pytest.mark.redis
def test_script_reloads_after_script_flush(redis_process: Callable[[], Any]) -> None:
    server = redis_process()
    store = redis_store(server.url, SMALL)
    store.observe(obs("a", 0.0, (1,)))
    redis.Redis.from_url(server.url).script_flush()
    assert store.observe(obs("a", 1.0, (1,))).parts == (H(1),)
    assert store.try_lock("w", 1.0)
    server.stop()
    with pytest.raises(StorageError):
        store.observe(obs("a", 2.0, (1,)))
    store.close()


@pytest.mark.redis
def test_two_stores_on_one_redis_share_everything(redis_url: str) -> None:
    prefix = f"test-engine-{uuid.uuid4().hex}"
    a = RedisEngineStore(redis_url, settings=SMALL, prefix=prefix)
    b = engine_store_from_uri(redis_url, settings=SMALL, prefix=prefix)
    try:
        a.observe(obs("acct", 0.0, (1,)))
        assert b.observe(obs("acct", 1.0, (1,))).parts == (H(1),)  # b sees a's sketch
        assert [p.requests for p in a.profiles()] == [2]
        verdict = ClusterVerdict("c", 0.9, "block", 1, {"k": "v"})
        table = ClusterTable(4, {"c": verdict}, {"acct": "c"}, {H(1): "c"})
        a.publish(table)
        assert b.table() == table and a.table() == table
        assert b.observe(obs("acct", 2.0, (1,))).cluster == verdict
        assert b.try_lock("node-b", 30.0) and not a.try_lock("node-a", 30.0)
        b.publish(ClusterTable(3, {}, {}, {}))  # older than what a published
        assert a.table() == table
    finally:
        a.clear()
        a.close()
        b.close()


# -- differential: memory and Redis answer alike ----------------------------------------------------------

ACCOUNTS = [f"{i:02x}" * 8 for i in range(7)]

observations = st.builds(
    Observation,
    account=st.sampled_from(ACCOUNTS),
    ts=st.floats(0.0, 200_000.0, allow_nan=False),
    segments=st.lists(st.integers(0, 14).map(H), max_size=9).map(tuple),
    prefix=st.none() | st.sampled_from(["p1", "p2", "p3", "p4", "p5", "p6"]),
    tokens=st.integers(-10, 5000),
    elicitation=st.none() | st.floats(-0.5, 1.5, allow_nan=False),
    conversation=st.booleans(),
)


def same_profile(m: AccountProfile, r: AccountProfile) -> None:
    """Everything exact, except gap sums (Lua divides natural logarithms: within 1e-12 relative)."""
    assert r.gap_sum == pytest.approx(m.gap_sum, rel=1e-12, abs=1e-12)
    assert r.gap_sq == pytest.approx(m.gap_sq, rel=1e-12, abs=1e-12)
    r.gap_sum, r.gap_sq = m.gap_sum, m.gap_sq
    assert r == m
    assert list(r.parts) == list(m.parts) and list(r.prefixes) == list(m.prefixes)


def same_observed(m: Observed, r: Observed) -> None:
    same_profile(m.profile, r.profile)
    assert (m.parts, m.cluster, m.part_cluster, m.flagged_part, m.table_version, m.accounts) == (
        r.parts,
        r.cluster,
        r.part_cluster,
        r.flagged_part,
        r.table_version,
        r.accounts,
    )


@pytest.mark.redis
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seq=st.lists(observations, min_size=1, max_size=60),
    depth=st.sampled_from([1, 2, 3]),
    publish_at=st.integers(0, 60),
)
def test_memory_and_redis_agree(
    pair: Callable[[StoreSettings], tuple[MemoryEngineStore, RedisEngineStore]],
    seq: list[Observation],
    depth: int,
    publish_at: int,
) -> None:
    s = StoreSettings(
        max_accounts=TINY.max_accounts,
        max_templates=TINY.max_templates,
        part_min_count=TINY.part_min_count,
        max_parts=TINY.max_parts,
        max_segments=TINY.max_segments,
        sketch_width=TINY.sketch_width,
        sketch_depth=depth,
    )
    mem, red = pair(s)
    flagged = ClusterVerdict("c1", 0.75, "throttle", 2, {"share": 0.5})
    table = ClusterTable(
        1,
        {"c1": flagged, "c2": ClusterVerdict("c2", 0.1, "allow", 1)},
        {ACCOUNTS[0]: "c1", ACCOUNTS[1]: "c2"},
        {H(3): "c1", H(5): "c1", H(6): "missing"},
    )
    for i, o in enumerate(seq):
        if i == publish_at:
            mem.publish(table)
            red.publish(table)
        same_observed(mem.observe(o), red.observe(o))
    mp = sorted(mem.profiles(), key=lambda p: p.account)
    rp = sorted(red.profiles(), key=lambda p: p.account)
    assert [p.account for p in mp] == [p.account for p in rp]
    for m, r in zip(mp, rp, strict=True):
        same_profile(m, r)
    parts = [H(i) for i in range(15)]
    mt, rt = mem.templates(parts), red.templates(parts)
    assert set(mt) == set(rt)
    for part, t in mt.items():
        u = rt[part]
        assert (t.requests, t.first_seen, t.last_seen) == (u.requests, u.first_seen, u.last_seen)
        assert abs(t.accounts - u.accounts) <= 1  # two HyperLogLogs, exact-ish on a handful of accounts
    assert mem.table() == red.table()


class Differential(RuleBasedStateMachine):
    """Memory and Redis side by side under any interleaving of the contract's operations."""

    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.mem = MemoryEngineStore(TINY)
        self.red = redis_store(self.url, TINY)
        self.version = 0

    @rule(o=observations)
    def observe(self, o: Observation) -> None:
        same_observed(self.mem.observe(o), self.red.observe(o))

    @rule(
        step=st.integers(-1, 2),
        assignment=st.dictionaries(st.sampled_from(ACCOUNTS), st.sampled_from(["c1", "c2", "gone"])),
        parts=st.dictionaries(st.integers(0, 14).map(H), st.sampled_from(["c1", "c2", "gone"])),
    )
    def publish(self, step: int, assignment: dict[str, str], parts: dict[int, str]) -> None:
        clusters = {
            "c1": ClusterVerdict("c1", 0.9, "block", 3, {"why": ["template"]}),
            "c2": ClusterVerdict("c2", 0.25, "allow", 2),
        }
        table = ClusterTable(self.version + step, clusters, assignment, parts)
        self.version = max(self.version, table.version)
        self.mem.publish(table)
        self.red.publish(table)
        assert self.mem.table() == self.red.table()

    @rule(owner=st.sampled_from(["w1", "w2"]))
    def lock(self, owner: str) -> None:
        assert self.mem.try_lock(owner, 60.0) == self.red.try_lock(owner, 60.0)

    @rule(parts=st.lists(st.integers(0, 14).map(H), max_size=5))
    def templates(self, parts: list[int]) -> None:
        mt, rt = self.mem.templates(parts), self.red.templates(parts)
        assert set(mt) == set(rt)
        for part, t in mt.items():
            u = rt[part]
            assert (t.requests, t.first_seen, t.last_seen) == (u.requests, u.first_seen, u.last_seen)
            assert abs(t.accounts - u.accounts) <= 1

    @rule()
    def clear(self) -> None:
        self.mem.clear()
        self.red.clear()
        self.version = 0

    @invariant()
    def same_profiles(self) -> None:
        mp = sorted(self.mem.profiles(), key=lambda p: p.account)
        rp = sorted(self.red.profiles(), key=lambda p: p.account)
        assert len(mp) == len(rp)
        for m, r in zip(mp, rp, strict=True):
            same_profile(m, r)

    def teardown(self) -> None:
        self.red.clear()
        self.red.close()


@pytest.mark.redis
def test_stateful_differential(redis_url: str) -> None:
    Differential.url = redis_url
    run_state_machine_as_test(
        Differential, settings=settings(max_examples=20, stateful_step_count=30, deadline=None)
    )


@pytest.mark.redis
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.lists(st.integers(0, 40), max_size=12), min_size=1, max_size=80),
    depth=st.sampled_from([1, 2, 3]),
    threshold=st.integers(1, 6),
)
def test_sketch_estimates_agree(
    pair: Callable[[StoreSettings], tuple[MemoryEngineStore, RedisEngineStore]],
    batches: list[list[int]],
    depth: int,
    threshold: int,
) -> None:
    """A 64-cell sketch (shared cells, a halving every 64 insertions): every estimate crossing the
    threshold agrees, request for request."""
    s = StoreSettings(
        part_min_count=threshold, max_parts=64, max_segments=64, sketch_width=64, sketch_depth=depth
    )
    mem, red = pair(s)
    for i, batch in enumerate(batches):
        o = obs("a", float(i), tuple(batch))
        assert mem.observe(o).parts == red.observe(o).parts


@pytest.mark.redis
def test_unserialisable_summary_is_a_value_error(redis_url: str) -> None:
    store = redis_store(redis_url, SMALL)
    bad = ClusterVerdict("c", 0.5, "allow", 1, {"x": object()})
    with pytest.raises(ValueError, match="JSON"):
        store.publish(ClusterTable(1, {"c": bad}, {}, {}))
    assert store.table().version == 0
    store.close()


# -- Redis Cluster -----------------------------------------------------------------------------------------


@pytest.mark.cluster
def test_cluster_runs_the_hot_path_and_agrees_with_memory(cluster_url: str) -> None:
    mem = MemoryEngineStore(TINY)
    store = engine_store_from_uri(cluster_url, settings=TINY, prefix=f"test-engine-{uuid.uuid4().hex}")
    try:
        table = ClusterTable(1, {"c": ClusterVerdict("c", 0.9, "block", 2)}, {ACCOUNTS[0]: "c"}, {H(2): "c"})
        mem.publish(table)
        store.publish(table)
        for i in range(40):
            o = obs(ACCOUNTS[i % 5], float(i), (i % 4, i % 7, 2), prefix=f"p{i % 3}", tokens=i)
            same_observed(mem.observe(o), store.observe(o))
        assert store.table() == table
        assert sorted(p.account for p in store.profiles()) == sorted(p.account for p in mem.profiles())
        assert store.templates([H(2)])[H(2)].requests == mem.templates([H(2)])[H(2)].requests
        assert store.try_lock("w", 5.0) and not store.try_lock("x", 5.0)

        async def run() -> Observed:
            got = await store.aobserve(obs(ACCOUNTS[0], 50.0, (2,)))
            assert len(await store.aprofiles()) == len(list(mem.profiles()))
            assert set(await store.atemplates([H(2), H(99)])) == {H(2)}
            await store.apublish(ClusterTable(2, {}, {}, {}))
            assert (await store.atable()).version == 2
            await store.aclear()
            assert await store.aprofiles() == []
            await store.aclose()
            return got

        same_observed(mem.observe(obs(ACCOUNTS[0], 50.0, (2,))), asyncio.run(run()))
        store.observe(obs("x", 0.0))
        store.clear()
        assert list(store.profiles()) == []
    finally:
        store.close()
