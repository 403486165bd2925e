"""``account_rpm``: a plain requests-per-minute quota per account, enforced by the adapter.

The engine's buckets are weighted by LLM tokens and governed by detection; an operator often also wants a
blunt per-account request cap that clients can read in ``x-ratelimit-*-requests`` headers. It runs on the
guard's own limiter (same store, same failure policy) with one bucket per account, burst = one minute's
worth, and is charged only when the engine lets the request through, so detection still sees all traffic.

With the engine's ``Guard`` / ``AsyncGuard`` the quota's bucket rides in the engine's own limiter call
(``check(facts, extra=...)``): charged all or none with the engine's buckets, no extra round trip, and
a refused request charged nothing. Any other guard (a test double, a wrapper) keeps the two-call path:
the engine decides, then the quota is consumed on its own and folded in with ``merge``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Awaitable
from typing import Any, TypeVar

from .._hashing import hash_identifier
from ..engine import Action, AsyncGuard, Decision, Guard, RequestFacts
from ..engine._core import EXTRA_REASON
from ..limiter import BucketRequest, Limit, Limiter, MultiResult

#: The reason given when the quota refused a request: the engine's own for a refused extra bucket.
REASON = EXTRA_REASON


class RequestQuota:
    """One token bucket per account: ``rpm / 60`` requests per second, burst ``rpm``."""

    __slots__ = ("limit", "limiter", "namespace", "rpm", "secret")

    def __init__(self, rpm: float, limiter: Limiter, secret: bytes, namespace: str = "gr") -> None:
        if isinstance(rpm, bool) or not isinstance(rpm, (int, float)) or not (math.isfinite(rpm) and rpm > 0):
            raise ValueError(f"account_rpm must be positive and finite, got {rpm!r}")
        self.rpm = float(rpm)
        self.limit = Limit(rate=self.rpm / 60.0, burst=max(1.0, self.rpm))
        self.limiter = limiter
        self.secret = secret
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"RequestQuota(rpm={self.rpm:g})"

    def request(self, account: str) -> list[BucketRequest]:
        digest = hash_identifier(account, self.secret, namespace="account")
        return [BucketRequest(f"{self.namespace}:rpm:{digest}", self.limit, 1.0)]

    def consume(self, account: str) -> MultiResult:
        return self.limiter.consume_many(self.request(account))

    async def aconsume(self, account: str) -> MultiResult:
        return await self.limiter.aconsume_many(self.request(account))


def carries_extra(guard: object) -> bool:
    """Whether ``guard.check`` takes ``extra=`` buckets into its single limiter call: the engine's own
    ``Guard`` / ``AsyncGuard`` (subclasses included) do; duck-typed guards are not assumed to."""
    return isinstance(guard, (Guard, AsyncGuard))


def applies(decision: Decision) -> bool:
    """The quota is consulted only for requests the engine let through."""
    return decision.action == Action.ALLOW


def merge(decision: Decision, result: MultiResult, observe_only: bool) -> Decision:
    """(Two-call path.) The engine's decision with the quota's verdict folded in (a refusal is a throttle)."""
    if result.allowed:
        return decision
    return dataclasses.replace(
        decision,
        action=Action.ALLOW if observe_only else Action.THROTTLE,
        would_action=Action.THROTTLE,
        retry_after=0.0 if observe_only else result.retry_after,
        limit=result.limit,
        remaining=result.remaining,
        reset_after=result.reset_after,
        reasons=(*decision.reasons, REASON),
        extra=result,
    )


def quota_for(
    account_rpm: float | None, guard: object, secret: bytes, namespace: str
) -> tuple[RequestQuota | None, bool]:
    """The quota for ``account_rpm`` on the guard's limiter (its store and failure policy; an in-process
    one for a guard without a limiter), and whether it rides in the guard's own limiter call."""
    if account_rpm is None:
        return None, False
    own = getattr(guard, "limiter", None)
    limiter = own if isinstance(own, Limiter) else Limiter("memory://")
    return RequestQuota(account_rpm, limiter, secret, namespace), carries_extra(guard) and limiter is own


_T = TypeVar("_T")


async def _value(value: _T) -> _T:
    return value


def awaited(result: Any) -> Awaitable[Any]:
    """A guard's answer as an awaitable: an async guard's as it is; a duck-typed guard whose plain ``def``
    returned its answer directly (it blocks the loop while it runs, so keep it quick) wrapped."""
    return result if inspect.isawaitable(result) else _value(result)


async def acheck(
    guard: Any, facts: RequestFacts, quota: RequestQuota | None, in_check: bool, observe_only: bool
) -> tuple[Decision, MultiResult | None]:
    """The guard's decision with the quota's folded in, and the quota's answer. In the guard's own call
    when it takes extra buckets (all or none: a refused request charged nothing); else the two-call path,
    the quota consulted only for an allowed request, and the engine refunded when the quota refuses."""
    if quota is not None and in_check:
        decision = await awaited(guard.check(facts, extra=quota.request(facts.account)))
        return decision, decision.extra
    decision = await awaited(guard.check(facts))
    result: MultiResult | None = None
    if quota is not None and applies(decision):
        result = await quota.aconsume(facts.account)
        if not result.allowed:
            if not observe_only:
                await awaited(guard.settle(decision, 0))  # nothing will be generated: refund
            decision = merge(decision, result, observe_only)
    return decision, result


def check(
    guard: Any, facts: RequestFacts, quota: RequestQuota | None, in_check: bool, observe_only: bool
) -> tuple[Decision, MultiResult | None]:
    """:func:`acheck` for a sync guard (WSGI); an awaitable answer is an error with a clear reason."""
    if quota is not None and in_check:
        decision = _sync(guard.check(facts, extra=quota.request(facts.account)))
        return decision, decision.extra
    decision = _sync(guard.check(facts))
    result: MultiResult | None = None
    if quota is not None and applies(decision):
        result = quota.consume(facts.account)
        if not result.allowed:
            if not observe_only:
                guard.settle(decision, 0)  # nothing will be generated: refund
            decision = merge(decision, result, observe_only)
    return decision, result


def _sync(decision: Any) -> Any:
    """A guard's answer where nothing can await: an awaitable (a duck-typed guard that turned out async)
    is an error with a clear reason, not a puzzling one later."""
    if inspect.isawaitable(decision):
        if inspect.iscoroutine(decision):
            decision.close()
        raise TypeError("the guard's check() returned an awaitable: the WSGI middleware needs a sync guard")
    return decision
