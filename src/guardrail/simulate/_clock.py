"""Simulated time: the window, activity profiles and lazily drawn sorted timestamps.

An account's requests are drawn as sorted uniforms (generated one at a time in increasing order, so nothing
is held in memory) mapped through the inverse cumulative distribution of its activity profile. A profile is
a weight per ten-minute bin over the whole window: human hours in a local timezone, office hours, or flat.
Because the mapping is monotone, the timestamps come out already in order.
"""

from __future__ import annotations

import bisect
import functools
import math
import random
from collections.abc import Iterator

WINDOW_START = 1_795_046_400.0  # 2026-11-19 00:00:00 UTC, a Thursday
DAYS = 3
WINDOW = DAYS * 86_400.0
BIN = 600.0
_BINS = int(WINDOW // BIN)

# Relative activity of a person by local hour (sleep at night, a peak in the afternoon and evening).
_HUMAN_HOURS = (
    0.30, 0.15, 0.08, 0.05, 0.04, 0.05, 0.12, 0.35, 0.70, 0.95, 1.00, 1.00,
    0.90, 0.95, 1.00, 1.00, 0.95, 0.85, 0.80, 0.85, 0.90, 0.85, 0.70, 0.50,
)  # fmt: skip
_OFFICE_HOURS = (
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.02, 0.3, 1.0, 1.0, 1.0,
    0.6, 0.9, 1.0, 1.0, 1.0, 0.8, 0.3, 0.05, 0.02, 0.0, 0.0, 0.0,
)  # fmt: skip


class Profile:
    """A piecewise-constant activity density over the window, with its cumulative table."""

    __slots__ = ("_cum",)

    def __init__(self, weights: list[float]) -> None:
        cum = [0.0]
        for w in weights:
            cum.append(cum[-1] + max(w, 1e-9))
        self._cum = cum

    def cdf(self, ts: float) -> float:
        """Cumulative weight up to ``ts`` (seconds since the window start)."""
        x = min(max(ts / BIN, 0.0), float(_BINS))
        i = min(int(x), _BINS - 1)
        return self._cum[i] + (self._cum[i + 1] - self._cum[i]) * (x - i)

    def inverse(self, c: float) -> float:
        """The offset (seconds since the window start) where the cumulative weight reaches ``c``."""
        i = bisect.bisect_right(self._cum, c) - 1
        i = min(max(i, 0), _BINS - 1)
        lo, hi = self._cum[i], self._cum[i + 1]
        frac = (c - lo) / (hi - lo) if hi > lo else 0.0
        return (i + min(max(frac, 0.0), 1.0)) * BIN


def _weekday(offset_seconds: float) -> int:
    # WINDOW_START is a Thursday (weekday 3).
    return (3 + int(offset_seconds // 86_400)) % 7


@functools.lru_cache(maxsize=256)
def human_profile(tz_hours: float, *, weekend: float = 1.1) -> Profile:
    """Human hours in the timezone ``tz_hours`` east of UTC (a little more activity at weekends)."""
    weights = []
    for b in range(_BINS):
        local = b * BIN + tz_hours * 3600.0
        hour = int(local // 3600) % 24
        w = _HUMAN_HOURS[hour]
        if _weekday(local) >= 5:
            w *= weekend
        weights.append(w)
    return Profile(weights)


@functools.lru_cache(maxsize=256)
def office_profile(tz_hours: float) -> Profile:
    """Working hours on weekdays in the timezone ``tz_hours`` (near silence at night and at weekends)."""
    weights = []
    for b in range(_BINS):
        local = b * BIN + tz_hours * 3600.0
        w = _OFFICE_HOURS[int(local // 3600) % 24]
        if _weekday(local) >= 5:
            w *= 0.03
        weights.append(w + 0.001)
    return Profile(weights)


@functools.lru_cache(maxsize=256)
def flat_profile() -> Profile:
    """Round-the-clock, uniform activity (machines, campaigns)."""
    return Profile([1.0] * _BINS)


def blended_profile(tz_hours: list[float]) -> Profile:
    """The sum of human profiles over several timezones: a reseller's customers, around the world."""
    parts = [human_profile(tz) for tz in tz_hours]
    weights = []
    for b in range(_BINS):
        weights.append(sum(p._cum[b + 1] - p._cum[b] for p in parts))
    return Profile(weights)


def sorted_times(
    rng: random.Random, n: int, profile: Profile, start: float = 0.0, end: float = WINDOW
) -> Iterator[float]:
    """``n`` increasing offsets in ``[start, end]`` distributed by ``profile``, drawn lazily.

    Sorted uniforms come one at a time: the minimum of ``m`` uniforms on ``(x, 1)`` is
    ``x + (1 - x) * (1 - V ** (1 / m))``; mapping them through the profile's inverse cumulative keeps order.
    """
    if end < start:
        raise ValueError(f"end ({end}) is before start ({start})")
    c0, c1 = profile.cdf(start), profile.cdf(end)
    x = 0.0
    for k in range(n):
        x += (1.0 - x) * (1.0 - rng.random() ** (1.0 / (n - k)))
        yield min(max(profile.inverse(c0 + (c1 - c0) * x), start), end)


def lognormal_count(rng: random.Random, median: float, sigma: float, cap: int) -> int:
    """A heavy-tailed request count: most accounts send a few requests, a few send very many."""
    return max(1, min(cap, round(median * math.exp(rng.gauss(0.0, sigma)))))
