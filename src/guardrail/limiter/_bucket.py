"""TokenBucket: one limit applied per key, the simple face of the limiter.

``TokenBucket(rate=10, burst=100)`` / ``TokenBucket(rate="600/minute", burst=100, storage="redis://...")``,
then ``consume(key, cost)`` per request. Several TokenBuckets may share one store (pass a ``Store`` or a
``Limiter``); give each a distinct ``name`` so their keys do not collide.
"""

from __future__ import annotations

from typing import Any

from ._breaker import CircuitBreaker
from ._limit import BucketRequest, Limit
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

    def _unprefixed(self, result: BucketResult, key: str) -> BucketResult:
        if not self._prefix:
            return result
        return BucketResult(
            key,
            result.allowed,
            result.remaining,
            result.retry_after,
            result.reset_after,
            result.limit,
            result.source,
        )

    def consume(self, key: str, cost: float = 1.0, *, now: float | None = None) -> BucketResult:
        """Take ``cost`` tokens from ``key``'s bucket if they are there; never raises on store trouble."""
        result = self.limiter.consume(self._prefix + key, self.limit, cost, now=now)
        return self._unprefixed(result, key)

    async def aconsume(self, key: str, cost: float = 1.0, *, now: float | None = None) -> BucketResult:
        result = await self.limiter.aconsume(self._prefix + key, self.limit, cost, now=now)
        return self._unprefixed(result, key)

    def peek(self, key: str, cost: float = 1.0, *, now: float | None = None) -> BucketResult:
        """Would ``consume(key, cost)`` be admitted now? Charges nothing."""
        return self._unprefixed(self.limiter.peek(self._request(key, cost), now=now).results[0], key)

    async def apeek(self, key: str, cost: float = 1.0, *, now: float | None = None) -> BucketResult:
        result = await self.limiter.apeek(self._request(key, cost), now=now)
        return self._unprefixed(result.results[0], key)

    def settle(self, key: str, delta: float, *, now: float | None = None) -> BucketResult:
        """Debit (``delta > 0``) or refund (``delta < 0``) after the fact, e.g. actual minus estimated
        LLM tokens once the response is known. The bucket may go into debt."""
        return self._unprefixed(self.limiter.settle(self._request(key, delta), now=now).results[0], key)

    async def asettle(self, key: str, delta: float, *, now: float | None = None) -> BucketResult:
        result = await self.limiter.asettle(self._request(key, delta), now=now)
        return self._unprefixed(result.results[0], key)

    def close(self) -> None:
        self.limiter.close()

    async def aclose(self) -> None:
        await self.limiter.aclose()
