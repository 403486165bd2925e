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


class StoreReplyError(StorageError):
    """The store answered, with an error about the data of this call's keys (a key of the wrong type, a
    value that is not a number): one corrupted or foreign key, not an outage.

    The failure policy answers the call, but the circuit breaker counts it as the store answering, so one
    bad key (say another application's key under the same prefix) never takes every other key's requests
    off the store.

    ``decision``: when the failing script shared its round trip with a limiter decision
    (``RedisStore.decide_after``), that decision's own outcome, which stands.
    """

    def __init__(self, message: str, decision: MultiResult | StorageError | None = None) -> None:
        super().__init__(message)
        self.decision = decision


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
