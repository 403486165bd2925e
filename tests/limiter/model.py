"""Reference model of a token bucket, written the textbook way (a level and a last-refill time) and
independent of the GCRA formulation under test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class ModelBuckets:
    levels: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def level(self, key: str, rate: float, burst: float, now: float) -> float:
        if key not in self.levels:
            return burst
        tokens, at = self.levels[key]
        return min(burst, tokens + max(0.0, now - at) * rate)

    def consume(
        self, requests: Sequence[tuple[str, float, float, float]], now: float, *, apply: bool = True
    ) -> bool:
        trial: dict[str, float] = {}
        ok = True
        for key, rate, burst, cost in requests:
            lvl = trial[key] if key in trial else self.level(key, rate, burst, now)
            if cost <= lvl + 1e-9 * max(1.0, burst):
                trial[key] = lvl - cost
            else:
                ok = False
        if ok and apply:
            for key, lvl in trial.items():
                self.levels[key] = (lvl, now)
        return ok

    def settle(self, requests: Sequence[tuple[str, float, float, float]], now: float) -> None:
        for key, rate, burst, delta in requests:
            lvl = self.level(key, rate, burst, now)
            self.levels[key] = (min(burst, lvl - delta), now)

    def margin(self, requests: Sequence[tuple[str, float, float, float]], now: float) -> float:
        """Smallest distance (tokens) between a bucket's level and its cost in this decision: decisions
        closer than float rounding or clock slack to the boundary are not compared."""
        trial: dict[str, float] = {}
        best = float("inf")
        for key, rate, burst, cost in requests:
            lvl = trial[key] if key in trial else self.level(key, rate, burst, now)
            best = min(best, abs(lvl - cost))
            trial[key] = lvl - cost
        return best
