"""The engine store contract, run against every backend available (memory always; Redis when its store
module exists and a server answers)."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator

import pytest
import xxhash

from guardrail.engine import (
    ClusterTable,
    ClusterVerdict,
    EngineStore,
    MemoryEngineStore,
    Observation,
    StoreSettings,
)

SMALL = StoreSettings(max_accounts=50, max_templates=100, part_min_count=2, max_parts=4, sketch_width=1 << 12)

BACKENDS = ["memory"]
if importlib.util.find_spec("guardrail.engine.redis_store") is not None:
    BACKENDS.append("redis")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[EngineStore]:
    if request.param == "memory":
        s: EngineStore = MemoryEngineStore(SMALL)
    else:
        redis_url = request.getfixturevalue("redis_url")
        from guardrail.engine import redis_store  # type: ignore[attr-defined]

        s = redis_store.RedisEngineStore(redis_url, settings=SMALL, prefix=f"t-{uuid.uuid4().hex[:8]}")
    yield s
    s.clear()
    s.close()


def H(i: int) -> int:
    """Segment hashes are uniform 64-bit values (small integers would share sketch cells)."""
    return xxhash.xxh3_64_intdigest(f"segment {i}".encode())


def _obs(account: str, ts: float, segs: tuple[int, ...], **kw: object) -> Observation:
    return Observation(account=account, ts=ts, segments=tuple(H(s) for s in segs), **kw)  # type: ignore[arg-type]


def test_parts_appear_once_a_segment_recurs(store: EngineStore) -> None:
    first = store.observe(_obs("a", 0.0, (10, 20, 30)))
    assert first.parts == ()
    second = store.observe(_obs("b", 1.0, (10, 20, 40)))
    assert second.parts == tuple(sorted((H(10), H(20))))
    assert second.profile.requests == 1 and second.profile.parts == {H(10): 1, H(20): 1}


def test_profile_accumulates(store: EngineStore) -> None:
    for i in range(5):
        store.observe(
            _obs("a", 3600.0 * i, (1, 2), prefix="r1", tokens=10, elicitation=0.5, conversation=i == 4)
        )
    last = store.observe(_obs("a", 3600.0 * 5, (1, 2), prefix="r2", tokens=10, elicitation=None))
    p = last.profile
    assert p.requests == 6 and p.tokens == 60
    assert p.conversations == 1
    assert p.elicitation_n == 5 and abs(p.elicitation_sum - 2.5) < 1e-9
    assert p.first_seen == 0.0 and p.last_seen == 18000.0
    assert p.prefixes == {"r1": 5, "r2": 1}
    assert sum(p.hours) == 6 and p.gap_n == 5
    assert p.parts[H(1)] == 5  # the first request could not carry a part yet
    assert p.share(H(1)) == pytest.approx(5 / 6)


def test_profiles_are_bounded_and_evict_least_recent(store: EngineStore) -> None:
    for i in range(60):
        store.observe(_obs(f"acct{i}", float(i), ()))
    accounts = {p.account for p in store.profiles()}
    assert len(accounts) == 50
    assert "acct0" not in accounts and "acct59" in accounts


def test_template_stats(store: EngineStore) -> None:
    for i in range(6):
        store.observe(_obs(f"a{i % 3}", float(i), (7,)))
    stats = store.templates([H(7), H(8)])
    assert set(stats) == {H(7)}
    st = stats[H(7)]
    assert st.requests == 5 and st.accounts == 3
    assert st.first_seen == 1.0 and st.last_seen == 5.0


def test_publish_is_versioned_and_read_on_the_hot_path(store: EngineStore) -> None:
    assert store.table().version == 0
    verdict = ClusterVerdict("c1", 0.9, "throttle", 3, {"accounts": 3})
    store.publish(ClusterTable(2, {"c1": verdict}, {"a": "c1"}, {H(7): "c1"}))
    store.publish(ClusterTable(1, {}, {}, {}))  # older: ignored
    assert store.table().version == 2
    store.observe(_obs("x", 0.0, (7,)))
    got = store.observe(_obs("a", 1.0, (7,)))
    assert got.cluster == verdict
    other = store.observe(_obs("b", 2.0, (7,)))
    assert other.cluster is None
    assert other.part_cluster == verdict and other.flagged_part == H(7)


def test_lock(store: EngineStore) -> None:
    assert store.try_lock("w1", 30.0)
    assert store.try_lock("w1", 30.0)
    assert not store.try_lock("w2", 30.0)


def test_settings_validation() -> None:
    with pytest.raises(ValueError):
        StoreSettings(sketch_width=1000)
    with pytest.raises(ValueError):
        StoreSettings(max_parts=0)
