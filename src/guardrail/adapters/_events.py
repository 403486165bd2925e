"""What the adapter did with one inspected request: the event given to ``on_event`` and to the logs.

Identifiers appear only as keyed hashes, and nothing here is ever sent to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger("guardrail.adapters")


@dataclass(frozen=True, slots=True)
class GuardrailEvent:
    """One inspected request's outcome.

    ``outcome`` is what the adapter did: ``"allowed"``, ``"throttled"``, ``"blocked"`` (refused),
    ``"observed"`` (the policy would have refused, observe-only let it through), ``"too_large"``,
    ``"bad_length"``, ``"timeout"``, ``"disconnected"``, ``"passed_uninspected"`` or ``"error"``
    (guardrail failed internally and let the request through).
    """

    ts: float
    path: str
    provider: str
    account: str | None  # keyed hash
    ip: str | None  # keyed hash
    outcome: str
    action: str | None  # the engine's action ("allow" / "throttle" / "block"), if it was asked
    would_action: str | None
    status: int | None  # the status we answered with, or None when the app answered
    retry_after: float
    reasons: tuple[str, ...]
    evidence: Mapping[str, Any]
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["evidence"] = dict(self.evidence)
        data["reasons"] = list(self.reasons)
        return data


OnEvent = Callable[[GuardrailEvent], object]

_QUIET = frozenset({"allowed"})


def emit(event: GuardrailEvent, hook: OnEvent | None) -> None:
    """Log the event (refusals at INFO, allows at DEBUG) and call the user hook; never raises."""
    level = logging.DEBUG if event.outcome in _QUIET else logging.INFO
    if event.outcome == "error":
        level = logging.WARNING
    if logger.isEnabledFor(level):
        logger.log(
            level,
            "guardrail %s %s %s",
            event.outcome,
            event.provider,
            event.path,
            extra={"guardrail": event.as_dict()},
        )
    if hook is not None:
        try:
            hook(event)
        except Exception:
            logger.exception("guardrail on_event hook raised; ignored")
