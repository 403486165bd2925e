"""The engine's request and decision value objects (the contract in docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from guardrail.extract import Prompt
from guardrail.limiter import BucketRequest, MultiResult

__all__ = ["Action", "Decision", "Event", "RequestFacts"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Action(str, Enum):
    """What the adapter does with a request."""

    ALLOW = "allow"
    THROTTLE = "throttle"  # 429 with Retry-After
    BLOCK = "block"  # 403


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """Everything the engine needs to know about one request.

    ``account`` is the raw account id or API key: it is hashed inside and never stored raw. ``ts`` is
    seconds since the epoch (``None`` = now; offline replay passes the log's clock). ``prompt`` may be given
    when the caller has already extracted it; otherwise it is extracted from ``body``.
    """

    account: str = field(repr=False)
    ip: str | None = field(default=None, repr=False)  # an address is personal data: kept out of logs
    path: str = "/v1/chat/completions"
    body: bytes | Mapping[str, Any] | None = field(default=None, repr=False)
    prompt: Prompt | None = field(default=None, repr=False)
    ts: float | None = None
    hints: Mapping[str, str] = field(default_factory=lambda: _EMPTY, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.account, str):
            raise TypeError(f"RequestFacts.account must be str, got {type(self.account).__name__}")
        if self.ts is not None and (isinstance(self.ts, bool) or not isinstance(self.ts, (int, float))):
            raise TypeError(f"RequestFacts.ts must be a number of seconds or None, got {self.ts!r}")


@dataclass(frozen=True, slots=True)
class Ticket:
    """What ``settle`` needs: the buckets charged and the output tokens assumed when charging."""

    buckets: tuple[BucketRequest, ...]
    assumed_output: int
    ts: float | None


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer for one request. ``reasons`` and ``evidence`` are server-side only."""

    action: Action
    would_action: Action
    retry_after: float
    limit: float | None
    remaining: float | None
    reset_after: float | None
    reasons: tuple[str, ...]
    evidence: Mapping[str, Any]
    ticket: object
    #: The answer for the caller's ``check(..., extra=...)`` buckets alone (``None`` when none were
    #: charged): ``allowed`` when each of them admitted; they were charged only if ``action`` allowed
    #: under every bucket. An adapter reads its quota's headers from it.
    extra: MultiResult | None = None

    @property
    def allowed(self) -> bool:
        return self.action is Action.ALLOW

    @property
    def settles(self) -> bool:
        """False when a ``settle`` of this decision would do nothing (the engine charged no bucket, as for
        nearly every honest request): an adapter then need not read the response's usage at all. True for
        a ticket the engine did not make (a custom guard's), which is always settled."""
        t = self.ticket
        return not isinstance(t, Ticket) or bool(t.buckets)


@dataclass(frozen=True, slots=True)
class Event:
    """A hook notification: a decision that is not a plain allow, or a cluster that appeared, changed
    verdict or disappeared. Identifiers are keyed hashes, never raw ids.

    ``kind``: "decision" | "cluster.flagged" | "cluster.changed" | "cluster.cleared".
    """

    kind: str
    ts: float
    account: str | None
    cluster: str | None
    action: str
    score: float
    data: Mapping[str, Any]
