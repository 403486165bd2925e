"""Properties of the pure GCRA maths (guardrail.limiter._gcra), against a level-based reference model."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from guardrail.limiter import _gcra

from .model import ModelBuckets

rates = st.floats(min_value=0.01, max_value=1e4)
bursts = st.floats(min_value=0.5, max_value=1e5)
costs = st.floats(min_value=0.0, max_value=1e5)
gaps = st.floats(min_value=0.0, max_value=1e3)
NOW0 = 1_000.0


@given(rates, bursts)
def test_fresh_bucket_holds_exactly_burst(rate: float, burst: float) -> None:
    step = _gcra.consume(None, NOW0, rate, burst, burst)
    assert step.allowed
    # the TAT is an absolute time: (tat - now) carries up to an ulp of it, i.e. rate x ulp tokens
    assert step.remaining == pytest.approx(0.0, abs=2 * rate * math.ulp(NOW0 + burst / rate) + 1e-9 * burst)
    assert step.reset_after == pytest.approx(burst / rate)


@given(rates, bursts, costs)
def test_cost_above_burst_is_refused_forever(rate: float, burst: float, cost: float) -> None:
    step = _gcra.consume(None, NOW0, rate, burst, cost)
    if cost > burst:
        assert not step.allowed and step.retry_after == math.inf
        assert step.tat == NOW0  # nothing charged
    else:
        assert step.allowed and step.retry_after == 0.0


@given(rates, bursts, st.lists(st.tuples(costs, gaps), min_size=1, max_size=30))
def test_matches_reference_model(rate: float, burst: float, ops: list[tuple[float, float]]) -> None:
    model = ModelBuckets()
    tat: float | None = None
    now = NOW0
    for cost, gap in ops:
        now += gap
        req = [("k", rate, burst, cost)]
        near = model.margin(req, now) < 1e-6 * max(1.0, burst, cost, rate * now * 1e-9)
        step = _gcra.consume(tat, now, rate, burst, cost)
        expected = model.consume(req, now, apply=not near)
        if near:
            if step.allowed:  # follow the implementation across the boundary to stay in step
                model.levels["k"] = (model.level("k", rate, burst, now) - cost, now)
        else:
            assert step.allowed == expected
        if step.allowed:
            tat = step.tat
        assert step.remaining == pytest.approx(
            max(0.0, model.level("k", rate, burst, now)), abs=1e-6 * burst + 1e-6
        )


@given(rates, bursts, costs, gaps)
def test_retry_after_is_exactly_the_wait(rate: float, burst: float, cost: float, gap: float) -> None:
    """Refused with retry_after r: still refused a hair before r, admitted at r."""
    first = _gcra.consume(None, NOW0, rate, burst, burst)  # empty the bucket
    now = NOW0 + gap
    step = _gcra.consume(first.tat, now, rate, burst, cost)
    if step.allowed or math.isinf(step.retry_after):
        return
    assert step.retry_after > 0
    later = _gcra.consume(first.tat, now + step.retry_after, rate, burst, cost)
    assert later.allowed


@given(rates, bursts, st.floats(min_value=0.0, max_value=1e5), gaps)
@example(rate=10000.0, burst=1.0, debt=1e-05, gap=0.0)  # a debt within the slack: allowed
def test_debt_is_paid_back_by_time(rate: float, burst: float, debt: float, gap: float) -> None:
    """A debit beyond the bucket leaves it in debt; it refuses until time has refilled it."""
    step = _gcra.settle(None, NOW0, rate, burst, burst + debt)
    assert step.remaining == pytest.approx(0.0, abs=1e-9 * max(1.0, burst))
    # Refused once the debt outlasts the comparison slack (EPSILON seconds, a tiny debt at a high rate).
    if debt > 1e-6 * burst and debt / rate > 2 * _gcra.EPSILON:
        assert not step.allowed
        assert step.retry_after == pytest.approx(debt / rate)
    later = _gcra.consume(step.tat, NOW0 + step.retry_after + 1e-6, rate, burst, 0.0)
    assert later.allowed


@given(rates, bursts, costs, gaps)
def test_refund_never_overfills(rate: float, burst: float, refund: float, gap: float) -> None:
    step = _gcra.settle(None, NOW0, rate, burst, -refund)
    assert step.tat == NOW0 and step.remaining == burst
    spent = _gcra.consume(None, NOW0, rate, burst, burst / 2)
    back = _gcra.settle(spent.tat, NOW0 + gap, rate, burst, -refund)
    assert back.remaining <= burst
    assert back.tat >= NOW0 + gap


@given(rates, bursts, costs, costs)
def test_consume_then_refund_restores(rate: float, burst: float, c1: float, c2: float) -> None:
    a = _gcra.consume(None, NOW0, rate, burst, min(c1, burst))
    b = _gcra.settle(a.tat, NOW0, rate, burst, -min(c1, burst))
    assert b.remaining == pytest.approx(burst, rel=1e-9, abs=1e-9)


@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), costs),
        min_size=1,
        max_size=6,
    ),
    st.floats(min_value=0.5, max_value=50.0),
)
def test_decide_is_all_or_nothing(items: list[tuple[str, float]], burst: float) -> None:
    requests = [(key, 1.0, burst, cost) for key, cost in items]
    stored: dict[str, float | None] = {"a": NOW0 + burst / 2}
    decision = _gcra.decide(_gcra.CONSUME, stored, NOW0, requests)
    assert decision.allowed == all(s.allowed for s in decision.steps)
    if not decision.allowed:
        assert decision.writes == {}
    else:
        # a key named twice was charged twice
        for key in {k for k, _ in items}:
            total = sum(c for k, c in items if k == key)
            before = stored.get(key) or NOW0
            assert decision.writes[key] == pytest.approx(max(before, NOW0) + total, rel=1e-12)
    peek = _gcra.decide(_gcra.PEEK, stored, NOW0, requests)
    assert peek.allowed == decision.allowed and peek.writes == {}


def test_unknown_mode_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        _gcra.decide("take", {}, NOW0, [])


@given(rates, bursts, gaps)
def test_tokens_view(rate: float, burst: float, gap: float) -> None:
    assert _gcra.tokens(None, NOW0, rate, burst) == burst
    step = _gcra.consume(None, NOW0, rate, burst, burst)
    assert _gcra.tokens(step.tat, NOW0 + gap, rate, burst) == pytest.approx(
        min(burst, gap * rate), abs=1e-6 * burst
    )
