"""Results of limiter decisions: one bucket (BucketResult) or several decided together (MultiResult)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

#: Where an answer came from: the configured store, or the failure policy while that store is unreachable.
STORE = "store"
FALLBACK = "fallback"
FAIL_OPEN = "fail-open"
FAIL_CLOSED = "fail-closed"


class BucketResult(NamedTuple):
    """One bucket's answer. Times are seconds (floats) from the decision's clock.

    ``remaining`` is never negative (a bucket in debt reports 0 and a longer ``retry_after``);
    ``retry_after`` is 0 when allowed and ``inf`` when the cost exceeds the burst;
    ``reset_after`` is the time until the bucket is full again; ``limit`` is the burst; ``key`` is the
    bucket's key in the store. A named tuple (immutable, and the cheapest object to build on a hot path).
    """

    key: str
    allowed: bool
    remaining: float
    retry_after: float
    reset_after: float
    limit: float
    source: str = STORE

    @property
    def degraded(self) -> bool:
        """True when the answer came from the failure policy rather than the configured store."""
        return self.source != STORE


@dataclass(frozen=True, slots=True)
class MultiResult:
    """All-or-nothing answer for several buckets.

    ``allowed`` only if every bucket admitted (and then every bucket was charged). ``retry_after`` is the
    longest wait among refusing buckets. ``remaining``, ``limit`` and ``reset_after`` describe the tightest
    bucket (``tightest``): when refused, the refusing bucket with the longest wait; when allowed, the bucket
    with the fewest remaining tokens relative to its burst. These feed rate-limit response headers.
    """

    allowed: bool
    results: tuple[BucketResult, ...]

    @property
    def tightest(self) -> BucketResult:
        if not self.results:
            raise ValueError("an empty decision has no tightest bucket")
        if not self.allowed:
            return max((r for r in self.results if not r.allowed), key=lambda r: r.retry_after)
        return min(self.results, key=lambda r: (r.remaining / r.limit, r.remaining))

    @property
    def retry_after(self) -> float:
        if self.allowed:
            return 0.0
        return max(r.retry_after for r in self.results if not r.allowed)

    @property
    def remaining(self) -> float:
        return self.tightest.remaining if self.results else 0.0

    @property
    def limit(self) -> float:
        return self.tightest.limit if self.results else 0.0

    @property
    def reset_after(self) -> float:
        return self.tightest.reset_after if self.results else 0.0

    @property
    def source(self) -> str:
        """``store`` unless some bucket was answered by the failure policy."""
        for r in self.results:
            if r.source != STORE:
                return r.source
        return STORE

    @property
    def degraded(self) -> bool:
        return self.source != STORE

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> BucketResult:
        return self.results[index]
