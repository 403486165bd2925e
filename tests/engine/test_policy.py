"""Policy: monotone in score, validated on construction, rules can only tighten."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.engine import Action, ClusterVerdict, Policy

ORDER = {Action.ALLOW: 0, Action.THROTTLE: 1, Action.BLOCK: 2}
scores = st.floats(min_value=0.0, max_value=1.0)


@given(scores, scores, st.integers(1, 10_000), st.one_of(st.none(), st.floats(0.8, 1.0)))
@settings(max_examples=200, deadline=None)
def test_a_higher_score_never_gets_a_milder_action(
    a: float, b: float, size: int, block: float | None
) -> None:
    policy = Policy(block_score=block)
    lo, hi = sorted((a, b))
    act_lo = policy.cluster_action(ClusterVerdict("c", lo, "allow", size))
    act_hi = policy.cluster_action(ClusterVerdict("c", hi, "allow", size))
    assert ORDER[act_hi] >= ORDER[act_lo]
    if size < policy.min_accounts:
        assert act_hi is Action.ALLOW


@given(scores, st.integers(5, 100))
@settings(max_examples=100, deadline=None)
def test_rules_only_tighten(score: float, size: int) -> None:
    base = Policy().cluster_action(ClusterVerdict("c", score, "allow", size))
    loose = Policy(rules=[lambda v: Action.ALLOW]).cluster_action(ClusterVerdict("c", score, "allow", size))
    strict = Policy(rules=[lambda v: Action.BLOCK if v.size > 50 else None]).cluster_action(
        ClusterVerdict("c", score, "allow", size)
    )
    assert loose is base
    assert ORDER[strict] >= ORDER[base]


def test_cost_and_validation() -> None:
    p = Policy()
    assert p.cost(100, None) == 100 + p.expected_output
    assert p.cost(0, 0) == 1.0
    assert p.cost(10, 10**9) == 10 + 4 * p.expected_output
    for bad in (
        {"throttle_score": 1.5},
        {"block_score": 0.1},
        {"min_accounts": 1},
        {"join_share": 0.0},
        {"expected_output": -1},
    ):
        with pytest.raises(ValueError):
            Policy(**bad)  # type: ignore[arg-type]
