"""What the adapter did with one inspected request: the event given to ``on_event`` and to the logs.

Identifiers appear only as keyed hashes, and nothing here is ever sent to the client.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

logger = logging.getLogger("guardrail.adapters")


@dataclass(frozen=True, slots=True)
class GuardrailEvent:
    """One inspected request's outcome.

    ``outcome`` is what the adapter did: ``"allowed"``, ``"throttled"``, ``"blocked"`` (refused),
    ``"observed"`` (the policy would have refused, observe-only let it through), ``"too_large"``,
    ``"bad_length"``, ``"unsupported"`` (a content coding not undone), ``"busy"`` (a coded body not
    inflated in time: 503), ``"bad_credentials"`` (several different ``key`` query values: 400),
    ``"timeout"``, ``"disconnected"``,
    ``"passed_uninspected"`` or ``"error"`` (guardrail failed internally and let the request through).
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
        """A plain dict for structured log handlers (shallow: ``asdict`` would deep-copy the evidence,
        and raise on anything that cannot be copied)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
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
        try:
            logger.log(
                level,
                "guardrail %s %s %s account=%s would=%s status=%s reasons=%s",
                event.outcome,
                event.provider,
                event.path,
                event.account or "-",
                event.would_action or "-",
                event.status if event.status is not None else "-",
                ",".join(event.reasons) or "-",
                extra={"guardrail": event.as_dict()},
            )
        except Exception:  # a broken handler or odd evidence must not turn into a 500
            logger.debug("guardrail event could not be logged", exc_info=True)
    if hook is not None:
        try:
            result = hook(event)
        except Exception:
            logger.exception("guardrail on_event hook raised; ignored")
            return
        if inspect.isawaitable(result):
            _schedule(result)


#: Tasks of ``async def`` hooks still running (the loop keeps only weak references to its tasks).
_hook_tasks: set[asyncio.Future[Any]] = set()
#: Beyond this many hook tasks still running, further events skip the hook (a hook slower than the
#: traffic must not grow memory without bound); one warning per process.
MAX_HOOK_TASKS = 10_000
_warned_full = False


def _schedule(result: Any) -> None:
    """An ``async def`` hook (ASGI): run on the running loop as a task of its own, off the request path;
    its exception is logged. Without a running asyncio loop (trio; WSGI refuses such hooks up front) it is
    dropped."""
    global _warned_full
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None or len(_hook_tasks) >= MAX_HOOK_TASKS:
        if inspect.iscoroutine(result):
            result.close()
        if loop is None:
            logger.warning("guardrail on_event hook returned an awaitable outside an asyncio loop; dropped")
        elif not _warned_full:
            _warned_full = True
            logger.warning("guardrail on_event hook: %d calls still running; skipping it", MAX_HOOK_TASKS)
        return
    try:
        task = asyncio.ensure_future(result, loop=loop)
    except (TypeError, ValueError):  # awaitable by protocol but not to asyncio, or another loop's
        logger.warning("guardrail on_event hook returned an awaitable asyncio cannot run; dropped")
        return
    _hook_tasks.add(task)
    task.add_done_callback(_hook_done)


def _hook_done(task: asyncio.Future[Any]) -> None:
    _hook_tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        logger.error("guardrail on_event hook raised; ignored", exc_info=exc)


def log_failure(what: str, exc: BaseException, secrets: tuple[str | None, ...]) -> str:
    """Log a failure inside guardrail with its traceback, and return the error text for the event.

    An engine exception may carry the request (``RequestFacts`` repr holds the raw API key): every
    ``secrets`` value is masked in both the log and the returned text, so no raw key reaches a log.
    """
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    summary = repr(exc)
    # Longest first: a short value that occurs inside a key (a header ``python`` inside ``sk-...python...``)
    # masked first would break the key apart, and its other pieces would no longer match.
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        detail = detail.replace(secret, "<redacted>")
        summary = summary.replace(secret, "<redacted>")
    logger.warning("%s\n%s", what, detail.rstrip())
    return summary
