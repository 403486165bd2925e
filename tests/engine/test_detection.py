"""The detection bars on the simulator: every campaign style found, honest look-alikes left alone.

The quick test runs a small simulation (a few thousand requests); the ``slow`` one runs the default scale
and holds the project's bars: recall >= 0.95 per campaign style, precision >= 0.98, false-positive rate
<= 0.2 %, and no batch-job, agent-product, team or multi-turn-chat account flagged.
"""

from __future__ import annotations

import pytest

from guardrail.engine import Guard
from guardrail.engine._evaluate import Evaluation, evaluate
from guardrail.simulate import simulate

PROTECTED = ("batch_job", "agent_product", "team", "multi_turn_chat")


def _run(scale: float, seed: int) -> Evaluation:
    sim = simulate(scale=scale, seed=seed)
    return evaluate(Guard(), sim.records(), sim.labels)


def test_small_simulation() -> None:
    ev = _run(0.3, 3)
    # At this scale the reseller style has only three accounts, too few to hold a bar on its own.
    assert all(r >= 0.9 for style, r in ev.recall.items() if style != "reseller"), ev.recall
    assert ev.precision >= 0.95
    assert not any(ev.honest_flagged.get(p) for p in PROTECTED), ev.honest_flagged
    assert ev.median_requests_to_throttle is not None and ev.median_requests_to_throttle < 20


@pytest.mark.slow
def test_default_scale_meets_the_bars() -> None:
    ev = _run(1.0, 0)
    assert all(r >= 0.95 for r in ev.recall.values()), ev.recall
    assert ev.precision >= 0.98
    assert ev.false_positive_rate <= 0.002
    assert not any(ev.honest_flagged.get(p) for p in PROTECTED), ev.honest_flagged
    assert ev.median_requests_to_throttle is not None and ev.median_requests_to_throttle < 20
