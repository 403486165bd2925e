"""Linkage core: union-find invariants, scoring range and monotonicity, clustering determinism."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.engine import AccountProfile, LinkageSettings
from guardrail.engine._linkage import (
    GroupFeatures,
    UnionFind,
    cluster_accounts,
    dominant_parts,
    score_features,
    signature_keys,
)

pairs = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=60)


@given(pairs)
@settings(max_examples=80, deadline=None)
def test_union_find_matches_graph_connectivity(edges: list[tuple[int, int]]) -> None:
    uf = UnionFind()
    adj: dict[int, set[int]] = {i: set() for i in range(31)}
    for i in range(31):
        uf.add(i)
    for a, b in edges:
        uf.union(a, b)
        adj[a].add(b)
        adj[b].add(a)

    def component(x: int) -> set[int]:
        seen, todo = {x}, [x]
        while todo:
            for y in adj[todo.pop()]:
                if y not in seen:
                    seen.add(y)
                    todo.append(y)
        return seen

    for x in range(31):
        comp = component(x)
        for y in range(31):
            assert (uf.find(x) == uf.find(y)) == (y in comp)
    groups = uf.groups()
    assert sorted(x for g in groups.values() for x in g) == list(range(31))


features = st.builds(
    GroupFeatures,
    size=st.integers(1, 100_000),
    requests=st.integers(0, 10**7),
    tokens=st.integers(0, 10**9),
    concentration=st.floats(0, 1),
    flatness=st.floats(-1, 1),
    rayleigh=st.floats(0, 100),
    elicitation=st.floats(0, 1),
    colocation=st.floats(0, 1),
    shared_ranges=st.integers(0, 1000),
    conversation=st.floats(0, 1),
    first_seen_span=st.floats(0, 1e7),
    rate_spread=st.floats(0, 3),
    uniformity=st.floats(-1, 1),
    active_hours=st.integers(0, 24),
    shared_parts=st.integers(0, 100),
)


@given(
    features,
    st.sampled_from(["concentration", "flatness", "elicitation", "colocation", "conversation"]),
    st.floats(0, 1),
)
@settings(max_examples=150, deadline=None)
def test_score_in_range_and_monotone(f: GroupFeatures, name: str, bump: float) -> None:
    cfg = LinkageSettings()
    s = score_features(f, cfg)
    assert 0.0 <= s <= 1.0
    low = -1.0 if name in ("flatness", "uniformity") else 0.0
    raised = replace(f, **{name: min(1.0, max(low, getattr(f, name) + bump))})
    s2 = score_features(raised, cfg)
    if cfg.weights[name] >= 0:
        assert s2 >= s - 1e-12
    else:
        assert s2 <= s + 1e-12


def _profile(account: str, parts: dict[int, int], requests: int, hour_spread: bool = True) -> AccountProfile:
    hours = [0] * 24
    for i in range(requests):
        hours[(i * 7) % 24 if hour_spread else 12] += 1
    return AccountProfile(
        account=account,
        first_seen=0.0,
        last_seen=3 * 86400.0,
        requests=requests,
        templated=requests,
        elicitation_sum=0.9 * requests,
        elicitation_n=requests,
        hours=hours,
        parts=dict(parts),
        prefixes={f"r{hash(account) % 3}": requests},
    )


def test_dominant_parts_and_keys() -> None:
    p = _profile("a", {5: 10, 3: 10, 9: 1, 1: 4}, 10)
    assert dominant_parts(p, 0.2) == [1, 3, 5]
    assert signature_keys([1, 3, 5, 7], 3) == [(1, 3), (1, 5), (3, 5)]
    assert signature_keys([4], 3) == [(4, 4)]


def _campaign(n: int, offset: int = 0) -> list[AccountProfile]:
    template = {100 + offset: 20, 200 + offset: 20, 300 + offset: 19, 400 + offset: 18}
    return [_profile(f"camp{offset}-{i}", template, 20) for i in range(n)]


def test_campaign_links_and_honest_singletons_do_not() -> None:
    rng = random.Random(1)
    honest = [
        _profile(f"h{i}", {rng.getrandbits(60): 1 for _ in range(3)}, 6, hour_spread=False) for i in range(50)
    ]
    clusters = cluster_accounts(_campaign(30) + honest, LinkageSettings())
    assert len(clusters) == 1
    assert set(clusters[0].accounts) == {f"camp0-{i}" for i in range(30)}
    assert clusters[0].score > 0.8
    assert clusters[0].evidence


@given(st.randoms(use_true_random=False))
@settings(max_examples=20, deadline=None)
def test_clustering_is_order_independent(rnd: random.Random) -> None:
    profiles = _campaign(10) + _campaign(7, offset=1)
    shuffled = list(profiles)
    rnd.shuffle(shuffled)
    a = cluster_accounts(profiles, LinkageSettings())
    b = cluster_accounts(shuffled, LinkageSettings())
    assert [(c.id, c.accounts, c.score) for c in a] == [(c.id, c.accounts, c.score) for c in b]


def test_settings_validation() -> None:
    with pytest.raises(ValueError):
        LinkageSettings(dominant_share=0)
    with pytest.raises(ValueError):
        LinkageSettings(weights={"nonsense": 1.0})
    with pytest.raises(ValueError):
        LinkageSettings(min_cluster=1)
