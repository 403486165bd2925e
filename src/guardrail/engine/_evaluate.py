"""Replaying labelled traffic through a guard and scoring it: the detection bars' one definition.

Used by the test suite, ``benchmarks/detection.py`` and anyone evaluating a configuration on their own
labelled log. Account-level metrics: an account is *flagged* when, after the replay, it belongs to a
cluster whose policy action is not "allow".
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._guard import Guard
from ._report import analysis_report
from ._types import Action, RequestFacts

__all__ = ["Evaluation", "evaluate", "replay"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Figures of one replay (see docs/detection.md for their definitions)."""

    requests: int
    recall: Mapping[str, float]  # campaign style -> share of its accounts flagged
    precision: float
    false_positive_rate: float  # flagged honest accounts / honest accounts
    honest_flagged: Mapping[str, int]  # honest population -> accounts flagged
    median_requests_to_throttle: float | None  # per detected campaign account, requests sent before
    volume_before_detection: float  # share of campaign requests sent before their account was detected
    campaign_served: float  # share of campaign requests allowed (whole replay)
    honest_refused: int  # honest requests throttled or blocked

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def replay(guard: Guard, records: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int | None, int]]:
    """Run every record through ``guard.check`` on the log's clock.

    Returns raw account -> (requests, requests sent before its first cluster decision or None, allowed).
    """
    seen: dict[str, list[Any]] = {}
    for rec in records:
        account = str(rec["account"])
        facts = RequestFacts(
            account=account,
            ip=rec.get("ip"),
            path=rec.get("path") or "/v1/chat/completions",
            body=rec.get("body"),
            ts=float(rec["ts"]),
        )
        d = guard.check(facts)
        row = seen.get(account)
        if row is None:
            row = seen[account] = [0, None, 0]
        if row[1] is None and d.evidence.get("cluster_action") in (Action.THROTTLE.value, Action.BLOCK.value):
            row[1] = row[0]
        row[0] += 1
        if d.action is Action.ALLOW:
            row[2] += 1
    return {a: (r[0], r[1], r[2]) for a, r in seen.items()}


def evaluate(guard: Guard, records: Iterable[Mapping[str, Any]], labels: Mapping[str, Any]) -> Evaluation:
    """Replay ``records`` and score against ``labels`` (the simulator's ``labels`` shape)."""
    last_ts: list[float] = [0.0]

    def clocked() -> Iterable[Mapping[str, Any]]:
        for rec in records:
            last_ts[0] = max(last_ts[0], float(rec["ts"]))
            yield rec

    stats = replay(guard, clocked())
    guard.recluster(last_ts[0] + 1.0)
    report = analysis_report(guard, raw_ids=False)
    flagged_hashed = set(report["flagged_accounts"])
    flagged = {a for a in stats if guard.account_id(a) in flagged_hashed}
    accounts: Mapping[str, Mapping[str, Any]] = labels["accounts"]
    per_style: Counter[str] = Counter()
    per_style_hit: Counter[str] = Counter()
    honest_total = 0
    honest_flagged: Counter[str] = Counter()
    tp = fp = 0
    to_throttle: list[int] = []
    before = total = served = 0
    honest_refused = 0
    for account, info in accounts.items():
        n, first, allowed = stats.get(account, (0, None, 0))
        if n == 0:
            continue
        hit = account in flagged
        if info["campaign"]:
            style = str(info["style"] or info["population"])
            per_style[style] += 1
            per_style_hit[style] += int(hit)
            tp += int(hit)
            total += n
            served += allowed
            if first is not None:
                to_throttle.append(first)
                before += first
            else:
                before += n
        else:
            honest_total += 1
            honest_refused += n - allowed
            if hit:
                fp += 1
                honest_flagged[str(info["population"])] += 1
    return Evaluation(
        requests=sum(v[0] for v in stats.values()),
        recall={s: per_style_hit[s] / per_style[s] for s in sorted(per_style)},
        precision=tp / (tp + fp) if tp + fp else 1.0,
        false_positive_rate=fp / honest_total if honest_total else 0.0,
        honest_flagged=dict(honest_flagged),
        median_requests_to_throttle=float(statistics.median(to_throttle)) if to_throttle else None,
        volume_before_detection=before / total if total else 0.0,
        campaign_served=served / total if total else 0.0,
        honest_refused=honest_refused,
    )
