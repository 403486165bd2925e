"""The public entry point: :func:`simulate` builds every population's accounts; records stream lazily.

Labels (every account's population, whether it belongs to a campaign and in which style, and counts per
population) exist as soon as the simulation is built; the requests themselves are generated on demand by
merging the populations' time-ordered streams, so a million requests never sit in memory at once.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from guardrail.simulate import _campaigns, _honest
from guardrail.simulate._base import Context, Plan, Record, stream
from guardrail.simulate._clock import WINDOW, WINDOW_START
from guardrail.simulate._rng import make_rng

Builder = Callable[[Context, random.Random], list[Plan]]

# Population name -> builder, honest first. Campaign populations are named after their style.
_BUILDERS: dict[str, Builder] = {
    "organic": _honest.organic,
    "agent_product": _honest.agent_product,
    "multi_turn_chat": _honest.multi_turn_chat,
    "popular_task": _honest.popular_task,
    "public_jailbreak_paster": _honest.public_jailbreak_paster,
    "team": _honest.team,
    "batch_job": _honest.batch_job,
    "hydra": _campaigns.hydra,
    "jailbreak_harvest": _campaigns.jailbreak_harvest,
    "low_and_slow": _campaigns.low_and_slow,
    "reseller": _campaigns.reseller,
}
CAMPAIGN_STYLES: tuple[str, ...] = ("hydra", "jailbreak_harvest", "low_and_slow", "reseller")
HONEST_POPULATIONS: tuple[str, ...] = tuple(n for n in _BUILDERS if n not in CAMPAIGN_STYLES)
POPULATIONS: tuple[str, ...] = tuple(_BUILDERS)
MAX_SCALE = 1000.0


class Simulation:
    """Labelled synthetic traffic for one ``(scale, seed)``: labels now, records on demand.

    Deterministic: the same seed and scale give the same records and labels, byte for byte, in any process.
    """

    def __init__(self, *, scale: float = 1.0, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise TypeError(f"scale must be a number, got {type(scale).__name__}")
        if not math.isfinite(scale) or not 0.0 < scale <= MAX_SCALE:
            raise ValueError(f"scale must be a finite number in (0, {MAX_SCALE:g}], got {scale!r}")
        self.scale = float(scale)
        self.seed = seed
        ctx = Context.create(seed, self.scale)
        self._plans = {name: build(ctx, make_rng(seed, name, "setup")) for name, build in _BUILDERS.items()}
        self._labels = self._make_labels()

    def __repr__(self) -> str:
        return f"Simulation(scale={self.scale!r}, seed={self.seed!r})"

    def _make_labels(self) -> dict[str, Any]:
        accounts: dict[str, dict[str, Any]] = {}
        populations: dict[str, dict[str, Any]] = {}
        for name, plans in self._plans.items():
            for p in plans:
                if p.id in accounts:  # 60-bit ids: a clash would mean a bug, not bad luck
                    raise RuntimeError(f"duplicate simulated account id {p.id}")
                accounts[p.id] = {"population": p.population, "campaign": p.campaign, "style": p.style}
            populations[name] = {
                "campaign": name in CAMPAIGN_STYLES,
                "accounts": len(plans),
                "requests": sum(p.requests for p in plans),
            }
        return {
            "accounts": accounts,
            "populations": populations,
            "totals": {
                "accounts": len(accounts),
                "requests": sum(v["requests"] for v in populations.values()),
                "campaign_accounts": sum(v["accounts"] for v in populations.values() if v["campaign"]),
                "campaign_requests": sum(v["requests"] for v in populations.values() if v["campaign"]),
            },
            "window": {"start": WINDOW_START, "end": WINDOW_START + WINDOW},
            "scale": self.scale,
            "seed": self.seed,
        }

    @property
    def labels(self) -> dict[str, Any]:
        """``{"accounts": {id: {population, campaign, style}}, "populations": {...}, "scale", "seed"}``.

        Also ``"totals"`` and ``"window"`` (start and end, epoch seconds).
        """
        return self._labels

    def records(self) -> Iterator[Record]:
        """Every request in time order, generated lazily (each call starts again from the beginning).

        A record is ``{"ts", "account", "ip", "path", "body"}``; ``body`` is the request JSON object.
        """
        streams = [stream(plans, make_rng(self.seed, name, "stream")) for name, plans in self._plans.items()]
        return heapq.merge(*streams, key=_ts)

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``log.jsonl`` (one record a line) and ``labels.json`` into ``out_dir`` (made if missing)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        log_path, labels_path = out / "log.jsonl", out / "labels.json"
        with log_path.open("w", encoding="utf-8", newline="\n") as fh:
            for record in self.records():
                fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
                fh.write("\n")
        with labels_path.open("w", encoding="utf-8", newline="\n") as fh:
            json.dump(self._labels, fh, ensure_ascii=False, indent=1, sort_keys=True)
            fh.write("\n")
        return log_path, labels_path


def _ts(record: Record) -> float:
    ts: float = record["ts"]
    return ts


def simulate(*, scale: float = 1.0, seed: int = 0) -> Simulation:
    """Build labelled traffic: about 50,000 requests from about 3,400 accounts over 3 days at ``scale=1``."""
    return Simulation(scale=scale, seed=seed)
