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
import math

from .._hashing import hash_identifier
from ..engine import Action, AsyncGuard, Decision, Guard
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
