"""``account_rpm``: a plain requests-per-minute quota per account, enforced by the adapter.

The engine's buckets are weighted by LLM tokens and governed by detection; an operator often also wants a
blunt per-account request cap that clients can read in ``x-ratelimit-*-requests`` headers. It runs on the
guard's own limiter (same store, same failure policy) with one bucket per account, burst = one minute's
worth. It is consulted only when the engine allowed the request, so detection still sees all traffic.
With Redis it is one more limiter call per request: leave ``account_rpm`` unset (or use the engine's
token-weighted ``Policy(account_limit=...)``) to keep the hot path at the engine's round trips.
"""

from __future__ import annotations

import dataclasses
import math

from .._hashing import hash_identifier
from ..engine import Action, Decision
from ..limiter import BucketRequest, Limit, Limiter, MultiResult

REASON = "account over its request quota"


class RequestQuota:
    """One token bucket per account: ``rpm / 60`` requests per second, burst ``rpm``."""

    __slots__ = ("limit", "limiter", "rpm", "secret")

    def __init__(self, rpm: float, limiter: Limiter, secret: bytes) -> None:
        if isinstance(rpm, bool) or not isinstance(rpm, (int, float)) or not (math.isfinite(rpm) and rpm > 0):
            raise ValueError(f"account_rpm must be positive and finite, got {rpm!r}")
        self.rpm = float(rpm)
        self.limit = Limit(rate=self.rpm / 60.0, burst=max(1.0, self.rpm))
        self.limiter = limiter
        self.secret = secret

    def __repr__(self) -> str:
        return f"RequestQuota(rpm={self.rpm:g})"

    def request(self, account: str) -> list[BucketRequest]:
        digest = hash_identifier(account, self.secret, namespace="account")
        return [BucketRequest(f"gr:rpm:{digest}", self.limit, 1.0)]

    def consume(self, account: str) -> MultiResult:
        return self.limiter.consume_many(self.request(account))

    async def aconsume(self, account: str) -> MultiResult:
        return await self.limiter.aconsume_many(self.request(account))


def applies(decision: Decision) -> bool:
    """The quota is consulted only for requests the engine let through."""
    return decision.action == Action.ALLOW


def merge(decision: Decision, result: MultiResult, observe_only: bool) -> Decision:
    """The engine's decision with the quota's verdict folded in (a refusal is a throttle)."""
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
    )
