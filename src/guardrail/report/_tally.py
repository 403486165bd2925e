"""Counting a replay's outcomes into the report's sections (populations, timeline, accounts).

The demo and ``guardrail analyze`` both replay requests and learn, per request, who sent it, when, and
what guardrail did. ``Tally`` keeps exactly what the report shows: counts per population, counts per time
bucket, and a small record per account (bounded by ``max_accounts``: accounts beyond it still count in the
totals and the timeline, only their drill-down row is dropped).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from guardrail.report._schema import AccountRow, PopulationRow, Timeline

__all__ = ["OUTCOMES", "AccountTally", "Tally"]

OUTCOMES = ("served", "throttled", "blocked")
_ACTION_TO_OUTCOME = {
    "allow": "served",
    "served": "served",
    "throttle": "throttled",
    "throttled": "throttled",
    "block": "blocked",
    "blocked": "blocked",
}


@dataclass(slots=True)
class AccountTally:
    """One account's counts; ``first_refused_ts`` / ``refused_after`` describe its first refusal."""

    population: str
    first_ts: float
    last_ts: float
    requests: int = 0
    served: int = 0
    throttled: int = 0
    blocked: int = 0
    first_refused_ts: float | None = None
    refused_after: int | None = None  # requests it had sent before the first refusal
    templates: dict[str, int] = field(default_factory=dict)


class Tally:
    """Accumulates outcomes; ``population_of(account)`` names an account's population ("all" by default)."""

    def __init__(
        self,
        *,
        start: float,
        bucket_seconds: float,
        population_of: Callable[[str], str] | None = None,
        max_accounts: int = 100_000,
        max_buckets: int = 2_000,
    ) -> None:
        if not (math.isfinite(start) and math.isfinite(bucket_seconds) and bucket_seconds > 0):
            raise ValueError("start must be finite and bucket_seconds positive and finite")
        if max_accounts < 0 or max_buckets < 1:
            raise ValueError("max_accounts must be >= 0 and max_buckets >= 1")
        self.start = start
        self.bucket_seconds = bucket_seconds
        self.population_of = population_of or (lambda _account: "all")
        self.max_accounts = max_accounts
        self.max_buckets = max_buckets
        self.accounts: dict[str, AccountTally] = {}
        self.untracked = 0  # requests of accounts beyond max_accounts
        self.totals: dict[str, dict[str, int]] = {}
        self.series: dict[str, list[int]] = {}
        self.refused: dict[str, list[int]] = {}

    def _bucket(self, ts: float) -> int:
        return min(max(int((ts - self.start) // self.bucket_seconds), 0), self.max_buckets - 1)

    def add(self, *, ts: float, account: str, action: str, template: str | None = None) -> None:
        """Count one request: ``action`` is "allow"/"throttle"/"block" (or "served"/"throttled"/"blocked")."""
        outcome = _ACTION_TO_OUTCOME.get(action)
        if outcome is None:
            raise ValueError(f"unknown action {action!r}; expected one of {sorted(_ACTION_TO_OUTCOME)}")
        acct = self.accounts.get(account)
        population = acct.population if acct is not None else self.population_of(account)
        totals = self.totals.setdefault(population, dict.fromkeys(("requests", *OUTCOMES), 0))
        totals["requests"] += 1
        totals[outcome] += 1
        b = self._bucket(ts)
        for table, hit in ((self.series, True), (self.refused, outcome != "served")):
            counts = table.setdefault(population, [])
            if len(counts) <= b:
                counts.extend([0] * (b + 1 - len(counts)))
            if hit:
                counts[b] += 1
        if acct is None:
            if len(self.accounts) >= self.max_accounts:
                self.untracked += 1
                return
            acct = self.accounts[account] = AccountTally(population, ts, ts)
        if outcome != "served" and acct.first_refused_ts is None:
            acct.first_refused_ts = ts
            acct.refused_after = acct.requests
        acct.requests += 1
        setattr(acct, outcome, getattr(acct, outcome) + 1)
        acct.first_ts = min(acct.first_ts, ts)
        acct.last_ts = max(acct.last_ts, ts)
        if template is not None:
            acct.templates[template] = acct.templates.get(template, 0) + 1

    def populations(self, order: tuple[str, ...] = ()) -> list[PopulationRow]:
        """Rows in ``order`` first (those seen), then the rest by name."""
        names = [n for n in order if n in self.totals] + sorted(n for n in self.totals if n not in order)
        return [
            PopulationRow(
                name=n,
                requests=self.totals[n]["requests"],
                served=self.totals[n]["served"],
                throttled=self.totals[n]["throttled"],
                blocked=self.totals[n]["blocked"],
            )
            for n in names
        ]

    def timeline(self, order: tuple[str, ...] = ()) -> Timeline:
        """Every population's counts per bucket, padded to one common length."""
        length = max((len(v) for v in self.series.values()), default=0)
        names = [n for n in order if n in self.series] + sorted(n for n in self.series if n not in order)

        def padded(table: Mapping[str, list[int]], name: str) -> list[int]:
            counts = table.get(name, [])
            return counts + [0] * (length - len(counts))

        return Timeline(
            start=self.start,
            bucket_seconds=self.bucket_seconds,
            series={n: padded(self.series, n) for n in names},
            refused={n: padded(self.refused, n) for n in names},
        )

    def account_rows(
        self,
        cluster_of: Mapping[str, str] | None = None,
        reasons_of: Mapping[str, list[str]] | None = None,
        label: Callable[[str], str] | None = None,
    ) -> list[AccountRow]:
        """Drill-down rows; ``label`` maps an account to the id shown (e.g. a hash or a short form)."""
        rows: list[AccountRow] = []
        for account, t in self.accounts.items():
            row = AccountRow(
                id=label(account) if label else account,
                population=t.population,
                cluster=(cluster_of or {}).get(account),
                requests=t.requests,
                served=t.served,
                throttled=t.throttled,
                blocked=t.blocked,
                first_ts=t.first_ts,
                last_ts=t.last_ts,
                templates=dict(t.templates),
                reasons=list((reasons_of or {}).get(account, [])),
                first_refused_after=t.refused_after,
            )
            rows.append(row)
        return rows
