"""Limiter: several token buckets per decision, all or nothing, behind an explicit store-failure policy.

Failure policies (what a decision returns while the store cannot answer: refused connection, a timeout on
a hung server, a restart):

- ``"local"`` (default): decide on an in-process bucket holding ``fallback_share`` of each limit's rate and
  burst. With N workers, ``fallback_share = 1/N`` keeps the global budget; larger shares trade budget for
  fewer refusals during an outage. Local state is per process and no longer consulted once Redis answers.
- ``"open"``: admit everything (availability first; the budget is unenforced during the outage).
- ``"closed"``: refuse everything with ``retry_after`` = time until the store is tried again (protection
  first; an outage of the limiter becomes an outage of the service).

Every answer carries ``source`` (``store`` / ``fallback`` / ``fail-open`` / ``fail-closed``). Storage
trouble never raises into the caller: it is a StorageError caught here, counted by a circuit breaker that
keeps requests away from the store (backoff with jitter, one probe at a time) until it answers again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from . import _gcra
from ._breaker import CircuitBreaker
from ._limit import BucketRequest, Limit, check_cost, check_key
from ._memory import MemoryStore
from ._result import FAIL_CLOSED, FAIL_OPEN, FALLBACK, BucketResult, MultiResult
from ._store import StorageError, Store, StoreReplyError
from ._uri import storage_from_uri

POLICIES = ("local", "open", "closed")

logger = logging.getLogger("guardrail.limiter")
#: At most one error log about keys the store cannot read per this many seconds (per process).
_REPLY_ERROR_EVERY = 10.0
_reply_error_logged = -_REPLY_ERROR_EVERY


def report_reply_error(exc: StoreReplyError) -> None:
    """Log (at most every ``_REPLY_ERROR_EVERY`` seconds) that the store refused a call over its keys'
    contents: a corrupted key, or another program's key under guardrail's prefix. Not an outage: only the
    calls on those keys take the failure policy, so the log is the one way anyone learns of it."""
    global _reply_error_logged
    now = time.monotonic()
    if now - _reply_error_logged >= _REPLY_ERROR_EVERY:
        _reply_error_logged = now
        logger.error(
            "guardrail store cannot use a key's contents (%s); calls on it take the failure policy. "
            "Another program may write under guardrail's key prefix, or the key was corrupted.",
            exc,
        )


def _requests(
    requests: BucketRequest | Sequence[BucketRequest], *, signed: bool = False
) -> Sequence[BucketRequest]:
    """Validate a decision's requests. Only ``settle`` takes negative costs (refunds): a negative cost in
    ``consume`` would be a refund in disguise."""
    if isinstance(requests, BucketRequest):
        requests = (requests,)
    for r in requests:
        if not isinstance(r, BucketRequest):
            raise TypeError(f"expected BucketRequest items, got {type(r).__name__}")
        if r.cost < 0.0 and not signed:
            raise ValueError(f"cost must be >= 0 outside settle, got {r.cost!r} for {r.key!r}")
    return requests


class Limiter:
    """Token buckets on one store: ``Limiter("redis://host:6379")`` or ``Limiter(store)`` to share a store.

    ``consume_many`` takes several ``BucketRequest`` (account, IP, template, cluster...) and charges all or
    none; on Redis that is one Lua script, one round trip, on the server's clock.
    """

    def __init__(
        self,
        storage: str | Store = "memory://",
        *,
        failure: str = "local",
        fallback_share: float = 0.5,
        breaker: CircuitBreaker | None = None,
        **options: Any,
    ) -> None:
        if failure not in POLICIES:
            raise ValueError(f"failure must be one of {POLICIES}, got {failure!r}")
        if not (isinstance(fallback_share, (int, float)) and 0.0 < fallback_share <= 1.0):
            raise ValueError(f"fallback_share must be in (0, 1], got {fallback_share!r}")
        self.store: Store = storage_from_uri(storage, **options) if isinstance(storage, str) else storage
        if not isinstance(self.store, Store):
            raise TypeError(f"storage must be a URI or a Store, got {type(storage).__name__}")
        self.failure = failure
        self.fallback_share = float(fallback_share)
        # An in-process store cannot fail: it needs neither breaker nor fallback.
        self.local = isinstance(self.store, MemoryStore)
        self.breaker = None if self.local else (breaker or CircuitBreaker())
        if self.breaker is not None and self.breaker.on_change is None:
            self.breaker.on_change = self._store_changed
        self._fallback = MemoryStore(source=FALLBACK) if failure == "local" and not self.local else None

    def __repr__(self) -> str:
        return f"Limiter({self.store!r}, failure={self.failure!r}, fallback_share={self.fallback_share})"

    def _store_changed(self, state: str) -> None:
        """One line when an outage begins and one when it ends: which answers the buckets give between."""
        if state == "open":
            logger.warning(
                "guardrail limiter: its store is unreachable; buckets follow the %r failure policy until it "
                "answers again",
                self.failure,
            )
        else:
            logger.warning("guardrail limiter: its store answers again; buckets are decided there")

    # -- degraded answers ----------------------------------------------------------------------------

    def _degraded(self, mode: str, requests: Sequence[BucketRequest], now: float | None) -> MultiResult:
        if self._fallback is not None:
            scaled = [BucketRequest(r.key, r.limit.scaled(self.fallback_share), r.cost) for r in requests]
            return self._fallback.decide(mode, scaled, now)
        if self.failure == "open" or mode == _gcra.SETTLE:
            source, allowed = FAIL_OPEN if self.failure == "open" else FAIL_CLOSED, True
            retry = 0.0
        else:
            source, allowed = FAIL_CLOSED, False
            assert self.breaker is not None
            retry = max(self.breaker.retry_in(), self.breaker.base)
        results = tuple(
            BucketResult(
                r.key,
                allowed,
                r.limit.burst if allowed else 0.0,
                retry,
                0.0 if allowed else retry,
                r.limit.burst,
                source,
            )
            for r in requests
        )
        return MultiResult(allowed, results)

    # -- decisions the caller ran on the store itself ----------------------------------------------------

    def direct(self) -> bool:
        """May the caller run a decision on :attr:`store` itself (``RedisStore.decide_after``, which shares
        a round trip with the caller's own script)? False while the breaker keeps the store out of use: then
        call ``decide`` / ``consume_many``, which answer by the failure policy. After True, hand the
        outcome to :meth:`direct_outcome` (or a store failure to :meth:`direct_failed`)."""
        return self.breaker is None or self.breaker.allow()

    def direct_outcome(
        self,
        outcome: MultiResult | StorageError,
        mode: str,
        requests: Sequence[BucketRequest],
        now: float | None,
    ) -> MultiResult:
        """The answer to a direct decision: the store's, or the failure policy's when it failed."""
        if isinstance(outcome, StorageError):
            self.direct_failed(outcome)
            return self._degraded(mode, requests, now)
        if self.breaker is not None:
            self.breaker.success()
        return outcome

    def fallback(self, mode: str, requests: Sequence[BucketRequest], now: float | None = None) -> MultiResult:
        """The failure policy's answer, without asking the store: for a caller whose own call to the same
        store has just failed (a second try now would only cost a second timeout)."""
        if not requests:
            return MultiResult(True, ())
        if self.breaker is None:  # an in-process store cannot be down
            return self.store.decide(mode, requests, now)
        return self._degraded(mode, requests, now)

    def direct_failed(self, exc: StorageError | None = None) -> None:
        """A direct decision's store failed (``exc``: how, when known)."""
        if self.breaker is not None:
            self._failed(self.breaker.generation, exc)

    def _failed(self, generation: int, exc: StorageError | None) -> None:
        """Count a failed store call with the breaker, begun in ``generation``: an outage is a failure; a
        reply about unreadable keys (StoreReplyError) is the store answering, and is logged instead."""
        assert self.breaker is not None
        if isinstance(exc, StoreReplyError):
            self.breaker.success(generation)
            report_reply_error(exc)
        else:
            self.breaker.failure(generation)

    # -- sync ----------------------------------------------------------------------------------------

    def decide(self, mode: str, requests: Sequence[BucketRequest], now: float | None = None) -> MultiResult:
        """``consume`` / ``peek`` / ``settle`` under the failure policy (never raises StorageError)."""
        breaker = self.breaker
        if breaker is None:
            return self.store.decide(mode, requests, now)
        generation = breaker.generation
        if breaker.allow():
            try:
                result = self.store.decide(mode, requests, now)
            except StorageError as exc:
                self._failed(generation, exc)
            else:
                breaker.success(generation)
                return result
        return self._degraded(mode, requests, now)

    def consume_many(
        self, requests: BucketRequest | Sequence[BucketRequest], *, now: float | None = None
    ) -> MultiResult:
        """Charge every bucket, or none if any would refuse."""
        return self.decide(_gcra.CONSUME, _requests(requests), now)

    def peek(
        self, requests: BucketRequest | Sequence[BucketRequest], *, now: float | None = None
    ) -> MultiResult:
        """Would ``consume_many`` admit these costs now? Charges nothing."""
        return self.decide(_gcra.PEEK, _requests(requests), now)

    def settle(
        self, requests: BucketRequest | Sequence[BucketRequest], *, now: float | None = None
    ) -> MultiResult:
        """Apply signed deltas after the fact (cost > 0 debits, < 0 refunds); buckets may go into debt.
        ``allowed`` in the answer says whether every bucket is out of debt."""
        return self.decide(_gcra.SETTLE, _requests(requests, signed=True), now)

    def consume(
        self, key: str, limit: Limit | str, cost: float = 1.0, *, now: float | None = None
    ) -> BucketResult:
        """One bucket (the single-key fast path on Redis: one EVALSHA)."""
        return self.consume_checked(check_key(key), Limit.coerce(limit), check_cost(cost), now)

    def consume_checked(self, key: str, limit: Limit, cost: float, now: float | None) -> BucketResult:
        """``consume`` for arguments already validated (TokenBucket's hot path)."""
        breaker = self.breaker
        if breaker is None:
            return self.store.consume_one(key, limit, cost, now)
        generation = breaker.generation
        if breaker.allow():
            try:
                result = self.store.consume_one(key, limit, cost, now)
            except StorageError as exc:
                self._failed(generation, exc)
            else:
                breaker.success(generation)
                return result
        return self._degraded(_gcra.CONSUME, (BucketRequest(key, limit, cost),), now).results[0]

    # -- async ---------------------------------------------------------------------------------------

    async def adecide(
        self, mode: str, requests: Sequence[BucketRequest], now: float | None = None
    ) -> MultiResult:
        breaker = self.breaker
        if breaker is None:
            return await self.store.adecide(mode, requests, now)
        generation = breaker.generation
        if breaker.allow():
            try:
                result = await self.store.adecide(mode, requests, now)
            except StorageError as exc:
                self._failed(generation, exc)
            else:
                breaker.success(generation)
                return result
        return self._degraded(mode, requests, now)

    async def aconsume_many(
        self, requests: BucketRequest | Sequence[BucketRequest], *, now: float | None = None
    ) -> MultiResult:
        return await self.adecide(_gcra.CONSUME, _requests(requests), now)

    async def apeek(
        self, requests: BucketRequest | Sequence[BucketRequest], *, now: float | None = None
    ) -> MultiResult:
        return await self.adecide(_gcra.PEEK, _requests(requests), now)

    async def asettle(
        self, requests: BucketRequest | Sequence[BucketRequest], *, now: float | None = None
    ) -> MultiResult:
        return await self.adecide(_gcra.SETTLE, _requests(requests, signed=True), now)

    async def aconsume(
        self, key: str, limit: Limit | str, cost: float = 1.0, *, now: float | None = None
    ) -> BucketResult:
        return await self.aconsume_checked(check_key(key), Limit.coerce(limit), check_cost(cost), now)

    async def aconsume_checked(self, key: str, limit: Limit, cost: float, now: float | None) -> BucketResult:
        breaker = self.breaker
        if breaker is None:
            return await self.store.aconsume_one(key, limit, cost, now)
        generation = breaker.generation
        if breaker.allow():
            try:
                result = await self.store.aconsume_one(key, limit, cost, now)
            except StorageError as exc:
                self._failed(generation, exc)
            else:
                breaker.success(generation)
                return result
        return self._degraded(_gcra.CONSUME, (BucketRequest(key, limit, cost),), now).results[0]

    # -- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        self.store.close()

    async def aclose(self) -> None:
        await self.store.aclose()
