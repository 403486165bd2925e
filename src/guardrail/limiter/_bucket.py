"""TokenBucket: one limit applied per key, the simple face of the limiter.

``TokenBucket(rate=10, burst=100)`` / ``TokenBucket(rate="600/minute", burst=100, storage="redis://...")``,
then ``consume(key, cost)`` per request. Several TokenBuckets may share one store (pass a ``Store`` or a
``Limiter``); give each a distinct ``name`` so their keys do not collide.
"""

from __future__ import annotations

import math
from typing import Any

from ._breaker import CircuitBreaker
from ._limit import BucketRequest, Limit, check_cost, check_key
from ._limiter import Limiter
from ._result import BucketResult
from ._store import Store


class TokenBucket:
    def __init__(
        self,
        rate: float | str | Limit,
        burst: float | None = None,
        *,
        storage: str | Store | Limiter = "memory://",
        name: str = "",
        failure: str = "local",
        fallback_share: float = 0.5,
        breaker: CircuitBreaker | None = None,
        **options: Any,
    ) -> None:
        if isinstance(rate, Limit):
            if burst is not None:
                raise ValueError("give burst inside the Limit, not beside it")
            self.limit = rate
        elif isinstance(rate, str):
            self.limit = Limit.parse(rate, burst)
        else:
            if burst is None:
                raise ValueError("a numeric rate needs a burst: TokenBucket(rate=10, burst=100)")
            self.limit = Limit(rate=rate, burst=burst)
        if isinstance(storage, Limiter):
            self.limiter = storage
        else:
            self.limiter = Limiter(
                storage, failure=failure, fallback_share=fallback_share, breaker=breaker, **options
            )
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self.name = name
        self._prefix = f"{name}:" if name else ""
        # An in-process store cannot fail: call it directly, skipping the failure-policy layer.
        self._direct = self.limiter.store.consume_one if self.limiter.breaker is None else None

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.limit.rate}, burst={self.limit.burst}, limiter={self.limiter!r})"

    @property
    def rate(self) -> float:
        return self.limit.rate

    @property
    def burst(self) -> float:
        return self.limit.burst

    def _request(self, key: str, cost: float) -> BucketRequest:
        return BucketRequest(self._prefix + key, self.limit, cost)

    def _checked(self, key: str, cost: float) -> tuple[str, float]:
        if cost.__class__ is not float or not 0.0 <= cost < math.inf:
            cost = check_cost(cost)
        if key.__class__ is not str or not key:
            check_key(key)
        return (self._prefix + key if self._prefix else key), cost

    def consume(self, key: str, cost: float = 1.0, *, now: float | None = None) -> BucketResult:
        """Take ``cost`` tokens from ``key``'s bucket if they are there; never raises on store trouble.
        The result's ``key`` is the bucket's key in the store (``name:key`` for a named bucket)."""
        # _checked, inlined: this is the hot path of the in-process store
        if cost.__class__ is not float or not 0.0 <= cost < math.inf:
            cost = check_cost(cost)
        if key.__class__ is not str or not key:
            check_key(key)
        if self._prefix:
            key = self._prefix + key
        direct = self._direct
        if direct is not None:
            return direct(key, self.limit, cost, now)
        return self.limiter.consume_checked(key, self.limit, cost, now)

    async def aconsume(self, key: str, cost: float = 1.0, *, now: float | None = None) -> BucketResult:
        key, cost = self._checked(key, cost)
        return await self.limiter.aconsume_checked(key, self.limit, cost, now)

    def peek(self, key: str, cost: float = 1.0, *, now: float | None = None) -> BucketResult:
        """Would ``consume(key, cost)`` be admitted now? Charges nothing."""
        return self.limiter.peek(self._request(key, cost), now=now).results[0]

    async def apeek(self, key: str, cost: float = 1.0, *, now: float | None = None) -> BucketResult:
        result = await self.limiter.apeek(self._request(key, cost), now=now)
        return result.results[0]

    def settle(self, key: str, delta: float, *, now: float | None = None) -> BucketResult:
        """Debit (``delta > 0``) or refund (``delta < 0``) after the fact, e.g. actual minus estimated
        LLM tokens once the response is known. The bucket may go into debt."""
        return self.limiter.settle(self._request(key, delta), now=now).results[0]

    async def asettle(self, key: str, delta: float, *, now: float | None = None) -> BucketResult:
        result = await self.limiter.asettle(self._request(key, delta), now=now)
        return result.results[0]

    def close(self) -> None:
        self.limiter.close()

    async def aclose(self) -> None:
        await self.limiter.aclose()
