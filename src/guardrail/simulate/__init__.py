"""Labelled synthetic traffic: honest populations (with hard look-alikes) and distillation campaigns.

``simulate(scale=..., seed=...)`` returns a :class:`Simulation` whose ``labels`` say which account belongs
to which population and whether it is part of a campaign, and whose ``records()`` stream the requests in
time order in bounded memory. The detection engine's tests, benchmarks and ``guardrail demo`` run on it.
"""

from __future__ import annotations

from guardrail.simulate._simulation import (
    CAMPAIGN_STYLES,
    HONEST_POPULATIONS,
    MAX_SCALE,
    POPULATIONS,
    Simulation,
    simulate,
)

__all__ = ["CAMPAIGN_STYLES", "HONEST_POPULATIONS", "MAX_SCALE", "POPULATIONS", "Simulation", "simulate"]
