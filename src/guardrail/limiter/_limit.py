"""Limit and BucketRequest value objects; rate strings parsed with the ``limits`` package's grammar."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import limits


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket: ``rate`` tokens per second refill a bucket of ``burst`` tokens.

    ``Limit(rate=10, burst=100)`` or ``Limit.parse("600/minute", burst=100)``. Costs are in whatever unit
    the caller meters (requests, LLM tokens); rate and burst are in the same unit.
    """

    rate: float
    burst: float
    #: for the Redis scripts, computed once per limit: microseconds per token (``1e6 / rate``), and the
    #: tolerance (``burst x interval``, microseconds) as a float (packed as a double for the multi-bucket
    #: script), as bytes and as a RESP bulk string ready to send (for the single-bucket script). The
    #: client does this arithmetic (in the same double precision the script would), so the script adds
    #: and compares, and a limit is encoded once rather than once per request.
    interval_us: float = field(init=False, repr=False, compare=False)
    tolerance_us: float = field(init=False, repr=False, compare=False)
    tolerance_wire: bytes = field(init=False, repr=False, compare=False)
    resp: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rate = _positive("rate", self.rate)
        burst = _positive("burst", self.burst)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "burst", burst)
        interval = 1_000_000 / rate
        tolerance_us = burst * interval
        tolerance = repr(tolerance_us).encode()
        object.__setattr__(self, "interval_us", interval)
        object.__setattr__(self, "tolerance_us", tolerance_us)
        object.__setattr__(self, "tolerance_wire", tolerance)
        object.__setattr__(self, "resp", b"$%d\r\n%b\r\n" % (len(tolerance), tolerance))

    @classmethod
    def parse(cls, text: str, burst: float | None = None) -> Limit:
        """Parse ``limits`` rate syntax ("100/minute", "10 per second", "5/2 seconds").

        The amount per window becomes the rate; ``burst`` defaults to that amount (a full window's worth
        may arrive at once, as with a fixed window of the same size).
        """
        if not isinstance(text, str):
            raise TypeError(f"limit string must be str, got {type(text).__name__}")
        try:
            items = limits.parse_many(text)
        except ValueError as err:
            raise ValueError(
                f"cannot parse limit {text!r}: expected e.g. '100/minute' or '10 per second'"
            ) from err
        if len(items) != 1:
            raise ValueError(f"limit {text!r} names {len(items)} rates; a token bucket takes exactly one")
        item = items[0]
        window = float(item.get_expiry())
        amount = float(item.amount)
        return cls(rate=amount / window, burst=amount if burst is None else burst)

    @classmethod
    def coerce(cls, value: Limit | str, burst: float | None = None) -> Limit:
        """Accept a Limit as is, or parse a string with an optional burst."""
        if isinstance(value, Limit):
            return value
        return cls.parse(value, burst)

    def scaled(self, share: float) -> Limit:
        """This limit with rate and burst multiplied by ``share`` (a worker's part of a global budget)."""
        return Limit(rate=self.rate * share, burst=self.burst * share)


def check_cost(cost: object, *, signed: bool = False) -> float:
    """Validate a cost (or a signed settlement delta) and return it as a float."""
    if isinstance(cost, bool) or not isinstance(cost, (int, float)):
        raise TypeError(f"cost must be a number, got {type(cost).__name__}")
    value = float(cost)
    if not math.isfinite(value) or (value < 0.0 and not signed):
        kind = "a finite number" if signed else "a finite number >= 0"
        raise ValueError(f"cost must be {kind}, got {cost!r}")
    return value


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"bucket key must be a non-empty str, got {key!r}")
    return key


@dataclass(frozen=True, slots=True)
class BucketRequest:
    """One bucket in a decision: take ``cost`` tokens from bucket ``key`` governed by ``limit``.

    For ``settle`` the cost is a signed delta (positive debits, negative refunds). On Redis Cluster, keys
    that share a hash tag (``"{acct:42}:tokens"``) are decided atomically in one script.
    """

    key: str
    limit: Limit
    cost: float = 1.0

    def __post_init__(self) -> None:
        check_key(self.key)
        if not isinstance(self.limit, Limit):
            object.__setattr__(self, "limit", Limit.coerce(self.limit))
        object.__setattr__(self, "cost", check_cost(self.cost, signed=True))
