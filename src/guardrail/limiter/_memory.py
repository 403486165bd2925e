"""In-process store: one float (the TAT) per key in bounded LRU caches, striped locks.

Memory is O(1) per key and bounded twice: a cap on keys (``max_keys``; the least recently used bucket is
evicted, via ``cachetools.LRUCache``), and full buckets are dropped by an incremental sweep (a full bucket
equals a missing one, so dropping it changes no answer). The sweep of a stripe runs once per as many writes
as the stripe holds keys, so it costs O(1) amortised per write.

Threads: keys are spread over ``stripes`` locks by hash; a decision over several keys takes its stripes'
locks in index order, so concurrent multi-key decisions cannot deadlock. Asyncio: every operation is a few
microseconds of arithmetic with no await inside, so the async methods run it inline without blocking the loop
in any meaningful way (no executor hop, which would cost more than the work).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

from cachetools import LRUCache

from . import _gcra
from ._gcra import CLEAN_BELOW as _CLEAN_BELOW
from ._gcra import EPSILON as _EPSILON
from ._gcra import ROUNDER as _ROUNDER
from ._gcra import SCALE as _SCALE
from ._limit import BucketRequest, Limit
from ._result import STORE, BucketResult, MultiResult

_SWEEP_MIN = 256


class _Stripe:
    __slots__ = ("cache", "lock", "sweep_at", "writes")

    def __init__(self, maxsize: int) -> None:
        self.lock = threading.Lock()
        self.cache: LRUCache[str, float] = LRUCache(maxsize=maxsize)
        self.writes = 0
        self.sweep_at = _SWEEP_MIN

    def write(self, key: str, tat: float, now: float) -> None:
        """Store a TAT (or forget a full bucket), then count the write towards the next sweep."""
        if tat <= now:
            self.cache.pop(key, None)
        else:
            self.cache[key] = tat
        self.writes += 1
        if self.writes >= self.sweep_at:
            self.sweep(now)

    def sweep(self, now: float) -> None:
        """Drop every full bucket; the next sweep comes after as many writes as keys remain."""
        cache = self.cache
        for stale in [k for k, v in cache.items() if v <= now]:
            del cache[stale]
        self.writes = 0
        self.sweep_at = max(_SWEEP_MIN, len(cache))


class MemoryStore:
    """Token buckets in this process. ``max_keys`` bounds memory; ``clock`` (default ``time.monotonic``)
    is the time source when callers pass no ``now``."""

    def __init__(
        self,
        *,
        max_keys: int = 100_000,
        stripes: int = 16,
        clock: Callable[[], float] = time.monotonic,
        source: str = STORE,
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        if stripes < 1 or stripes & (stripes - 1):
            raise ValueError(f"stripes must be a power of two, got {stripes}")
        stripes = min(stripes, 1 << (max_keys.bit_length() - 1))
        self._mask = stripes - 1
        self._stripes = [_Stripe(max(1, max_keys // stripes)) for _ in range(stripes)]
        self._clock = clock
        self._source = source
        self.max_keys = max_keys

    def __repr__(self) -> str:
        return f"MemoryStore(max_keys={self.max_keys}, stripes={len(self._stripes)})"

    def __len__(self) -> int:
        return sum(len(s.cache) for s in self._stripes)

    def consume_one(self, key: str, limit: Limit, cost: float, now: float | None = None) -> BucketResult:
        """``_gcra.take`` inlined (the same operations in the same order, so the same answers): this is
        the in-process hot path, where a function call and a tuple are a measurable share of the work."""
        if now is None:
            now = self._clock()
        stripe = self._stripes[hash(key) & self._mask]
        cache = stripe.cache
        rate = limit.rate
        burst = limit.burst
        interval = 1.0 / rate
        with stripe.lock:
            try:
                tat = cache[key]
                if tat < now:
                    tat = now
            except KeyError:
                tat = now
            new_tat = tat + cost * interval
            if cost <= burst and new_tat - now <= burst * interval + _EPSILON:
                ahead = new_tat - now
                remaining = burst - ahead * rate
                if remaining <= 0.0:  # _gcra.left, inlined
                    remaining = 0.0
                elif remaining < _CLEAN_BELOW and ahead > 0.0:
                    remaining = (remaining * _SCALE + _ROUNDER - _ROUNDER) / _SCALE
                if ahead > 0.0:
                    cache[key] = new_tat
                    stripe.writes += 1
                    if stripe.writes >= stripe.sweep_at:
                        stripe.sweep(now)
                return tuple.__new__(BucketResult, (key, True, remaining, 0.0, ahead, burst, self._source))
        retry = math.inf if cost > burst else new_tat - burst * interval - now
        return tuple.__new__(
            BucketResult,
            (key, False, _gcra.left(burst, (tat - now) * rate), retry, tat - now, burst, self._source),
        )

    async def aconsume_one(
        self, key: str, limit: Limit, cost: float, now: float | None = None
    ) -> BucketResult:
        return self.consume_one(key, limit, cost, now)

    def decide(self, mode: str, requests: Sequence[BucketRequest], now: float | None = None) -> MultiResult:
        if now is None:
            now = self._clock()
        mask = self._mask
        indexes = sorted({hash(r.key) & mask for r in requests})
        locks = [self._stripes[i].lock for i in indexes]
        for lock in locks:
            lock.acquire()
        try:
            stored = {r.key: self._stripes[hash(r.key) & mask].cache.get(r.key) for r in requests}
            decision = _gcra.decide(
                mode, stored, now, [(r.key, r.limit.rate, r.limit.burst, r.cost) for r in requests]
            )
            for key, tat in decision.writes.items():
                self._stripes[hash(key) & mask].write(key, tat, now)
        finally:
            for lock in reversed(locks):
                lock.release()
        results = tuple(
            BucketResult(
                r.key, s.allowed, s.remaining, s.retry_after, s.reset_after, r.limit.burst, self._source
            )
            for r, s in zip(requests, decision.steps, strict=True)
        )
        return MultiResult(decision.allowed, results)

    async def adecide(
        self, mode: str, requests: Sequence[BucketRequest], now: float | None = None
    ) -> MultiResult:
        return self.decide(mode, requests, now)

    def clear(self) -> None:
        for stripe in self._stripes:
            with stripe.lock:
                stripe.cache.clear()

    def close(self) -> None:
        """Nothing to release; present for the Store contract."""

    async def aclose(self) -> None:
        """Nothing to release; present for the Store contract."""
