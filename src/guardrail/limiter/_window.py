"""WindowLimiter: plain request counts with the ``limits`` package's window strategies.

Token buckets are ours (limits has none); fixed window, moving window and sliding window counter are
limits', reused as they are, with the same result shape as a token bucket so callers can mix the kinds.
Storage URIs go to ``limits.storage.storage_from_string`` (its async twin via the ``async+`` prefix).
Store trouble follows the same explicit policy as the token buckets: ``"open"`` admits, ``"closed"`` refuses;
nothing raises into the caller's request path.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import limits
import limits.aio.strategies
import limits.strategies
from limits.errors import StorageError as LimitsStorageError
from limits.storage import storage_from_string

from ._result import FAIL_CLOSED, FAIL_OPEN, BucketResult

STRATEGIES = ("fixed-window", "moving-window", "sliding-window-counter")
#: limits wraps backend errors into its StorageError (``wrap_exceptions=True``); sockets may still raise.
_ERRORS: tuple[type[BaseException], ...] = (LimitsStorageError, OSError, asyncio.TimeoutError)


class WindowLimiter:
    """``WindowLimiter("100/minute", strategy="moving-window", storage="memory://")``; costs are integers."""

    def __init__(
        self,
        limit: str,
        *,
        strategy: str = "moving-window",
        storage: str = "memory://",
        failure: str = "open",
        **options: Any,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if failure not in ("open", "closed"):
            raise ValueError(f"failure must be 'open' or 'closed', got {failure!r}")
        self.item = limits.parse(limit)
        self.strategy = strategy
        self.failure = failure
        self._uri = storage
        self._options = {"wrap_exceptions": True, **options}
        self._limiter: Any = limits.strategies.STRATEGIES[strategy](
            storage_from_string(storage, **self._options)
        )
        self._alimiter: Any = None

    def __repr__(self) -> str:
        return f"WindowLimiter({self.item!s}, strategy={self.strategy!r}, storage={self._uri!r})"

    def _cost(self, cost: int) -> int:
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise ValueError(f"window limits count whole requests: cost must be an int >= 0, got {cost!r}")
        return cost

    def _result(self, key: str, allowed: bool, remaining: int, reset_time: float) -> BucketResult:
        reset_after = max(0.0, reset_time - time.time())
        amount = float(self.item.amount)
        return BucketResult(
            key, allowed, float(remaining), 0.0 if allowed else reset_after, reset_after, amount
        )

    def _degraded(self, key: str) -> BucketResult:
        amount = float(self.item.amount)
        if self.failure == "open":
            return BucketResult(key, True, amount, 0.0, 0.0, amount, FAIL_OPEN)
        wait = float(self.item.get_expiry())
        return BucketResult(key, False, 0.0, wait, wait, amount, FAIL_CLOSED)

    def consume(self, key: str, cost: int = 1) -> BucketResult:
        cost = self._cost(cost)
        try:
            allowed = self._limiter.hit(self.item, key, cost=cost)
            stats = self._limiter.get_window_stats(self.item, key)
        except _ERRORS:
            return self._degraded(key)
        return self._result(key, allowed, stats.remaining, stats.reset_time)

    async def aconsume(self, key: str, cost: int = 1) -> BucketResult:
        cost = self._cost(cost)
        if self._alimiter is None:
            options = dict(self._options)
            if not self._uri.startswith("memory"):
                options.setdefault("implementation", "redispy")  # limits' async default is coredis
            storage = storage_from_string(f"async+{self._uri}", **options)
            strategy: Any = limits.aio.strategies.STRATEGIES[self.strategy]
            self._alimiter = strategy(storage)
        try:
            allowed = await self._alimiter.hit(self.item, key, cost=cost)
            stats = await self._alimiter.get_window_stats(self.item, key)
        except _ERRORS:
            return self._degraded(key)
        return self._result(key, allowed, stats.remaining, stats.reset_time)

    async def aclose(self) -> None:
        """Close the async storage's connections (limits' async storages have no close of their own, and
        asyncio connections must be closed inside the loop that opened them). Call it before that loop ends;
        the next ``aconsume`` opens a fresh storage."""
        alimiter, self._alimiter = self._alimiter, None
        if alimiter is None:
            return
        client = getattr(getattr(alimiter.storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            try:
                await close()
            except _ERRORS:
                pass
