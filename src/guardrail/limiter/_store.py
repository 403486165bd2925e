"""The storage contract every limiter backend fulfils, and the one error type backends raise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ._limit import BucketRequest, Limit
from ._result import BucketResult, MultiResult


class StorageError(Exception):
    """A backend could not answer (connection refused, timeout, cluster down...).

    Backends wrap their client's exceptions into this one type in one place, so the failure policy
    (``Limiter(failure=...)``) catches exactly storage trouble and never a programming error.
    """


@runtime_checkable
class Store(Protocol):
    """Where token-bucket TATs live. ``now`` is for tests and offline replay only; normally ``None``,
    meaning the store's own clock (the process's monotonic clock in memory, the server's ``TIME`` in
    Redis). All methods decide a whole sequence of buckets at once, all or nothing for ``consume``."""

    def decide(self, mode: str, requests: Sequence[BucketRequest], now: float | None = None) -> MultiResult:
        """Run ``consume`` / ``peek`` / ``settle`` over ``requests``; StorageError on backend trouble."""
        ...

    async def adecide(
        self, mode: str, requests: Sequence[BucketRequest], now: float | None = None
    ) -> MultiResult:
        """Async twin of ``decide``; never blocks the event loop."""
        ...

    def consume_one(self, key: str, limit: Limit, cost: float, now: float | None = None) -> BucketResult:
        """Single-bucket ``consume``: the hot path of ``TokenBucket``."""
        ...

    async def aconsume_one(
        self, key: str, limit: Limit, cost: float, now: float | None = None
    ) -> BucketResult: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...
