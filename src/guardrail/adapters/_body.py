"""Bounded reading of an ASGI request body, and its replay to the app exactly once.

The declared ``Content-Length`` is checked against the maximum before a byte is read; a chunked body is
read with the same cap. A stalled client hits ``timeout`` (the whole body must arrive in that time); a
client that disconnects mid-body is reported as such. Whatever was read is replayed to the app as one
message, then the app talks to the original ``receive`` (so it still sees a later disconnect).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio

from .._types import Message, Receive


class BodyStatus(enum.Enum):
    COMPLETE = "complete"  # the whole body was read
    TOO_LARGE = "too_large"  # declared or actual size above the cap; a prefix may have been read
    BAD_LENGTH = "bad_length"  # unparseable or conflicting Content-Length; nothing was read
    TIMEOUT = "timeout"  # the client stalled
    DISCONNECTED = "disconnected"  # the client went away


@dataclass(slots=True)
class BodyRead:
    status: BodyStatus
    body: bytes  # what was read (the whole body only when COMPLETE)
    more: bool  # whether the original receive still has body to give


def declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | BodyStatus | None:
    """The ``Content-Length``, ``None`` when absent, or ``BAD_LENGTH`` when unusable."""
    found: int | None = None
    for key, value in headers:
        if key == b"content-length":
            text = value.strip()
            if not text.isdigit():
                return BodyStatus.BAD_LENGTH
            length = int(text)
            if found is not None and found != length:
                return BodyStatus.BAD_LENGTH
            found = length
    return found


class _Read:
    """One body read under watch: its task, its deadline, and whether the watchdog cancelled it."""

    __slots__ = ("deadline", "fired", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.fired = False


class Watchdog:
    """Deadlines for body reads at the cost of a set insertion per request.

    A timer per read (``asyncio.timeout``, ``anyio.move_on_after``) costs 5-25 us on every request, for a
    deadline that almost never fires. Instead, reads register here and one periodic tick (armed only
    while reads are in flight) cancels the overdue ones. A deadline fires up to ``period`` late.
    """

    __slots__ = ("_handle", "_loop", "_reads", "period")

    def __init__(self, timeout: float) -> None:
        self.period = max(0.02, min(1.0, timeout / 4))
        self._reads: set[_Read] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    def add(self, loop: asyncio.AbstractEventLoop, read: _Read) -> None:
        if loop is not self._loop:  # a new event loop (tests, reloads): forget the old one's state
            self._loop, self._handle = loop, None
            self._reads = set()
        self._reads.add(read)
        if self._handle is None:
            self._handle = loop.call_later(self.period, self._tick)

    def discard(self, read: _Read) -> None:
        self._reads.discard(read)

    def _tick(self) -> None:
        self._handle = None
        loop = self._loop
        if loop is None or not self._reads:
            return
        now = loop.time()
        for read in [r for r in self._reads if r.deadline <= now]:
            self._reads.discard(read)
            read.fired = True
            read.task.cancel()
        if self._reads:
            self._handle = loop.call_later(self.period, self._tick)


async def _read_into(receive: Receive, chunks: list[bytes], max_bytes: int) -> BodyRead:
    size = 0
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "http.disconnect":
            return BodyRead(BodyStatus.DISCONNECTED, b"".join(chunks), False)
        if kind != "http.request":
            continue
        chunk = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if chunk:
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            return BodyRead(BodyStatus.TOO_LARGE, b"".join(chunks), more)
        if not more:
            return BodyRead(BodyStatus.COMPLETE, b"".join(chunks), False)


async def read_body(
    receive: Receive,
    headers: Iterable[tuple[bytes, bytes]],
    *,
    max_bytes: int,
    timeout: float,
    watchdog: Watchdog | None = None,
) -> BodyRead:
    """Read the request body, at most ``max_bytes``, within ``timeout`` seconds."""
    declared = declared_length(headers)
    if isinstance(declared, BodyStatus):
        return BodyRead(declared, b"", True)
    if declared is not None and declared > max_bytes:
        return BodyRead(BodyStatus.TOO_LARGE, b"", True)
    chunks: list[bytes] = []
    task = _asyncio_task() if watchdog is not None else None
    if watchdog is None or task is None:  # not on asyncio (trio): anyio's cancel scope
        with anyio.move_on_after(timeout):
            return await _read_into(receive, chunks, max_bytes)
        return BodyRead(BodyStatus.TIMEOUT, b"".join(chunks), True)
    loop = task.get_loop()
    read = _Read(task, loop.time() + timeout)
    watchdog.add(loop, read)
    try:
        return await _read_into(receive, chunks, max_bytes)
    except asyncio.CancelledError:
        if not read.fired:
            raise
        uncancel = getattr(task, "uncancel", None)  # 3.11+: this cancellation was ours, not the server's
        if uncancel is not None:
            uncancel()
        return BodyRead(BodyStatus.TIMEOUT, b"".join(chunks), True)
    finally:
        watchdog.discard(read)


def _asyncio_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


class Replay:
    """A ``receive`` that yields the buffered body once, then defers to the original ``receive``."""

    __slots__ = ("_body", "_more", "_receive", "_sent")

    def __init__(self, receive: Receive, body: bytes, more: bool) -> None:
        self._receive = receive
        self._body = body
        self._more = more
        self._sent = False

    async def __call__(self) -> Message:
        if not self._sent:
            self._sent = True
            return {"type": "http.request", "body": self._body, "more_body": self._more}
        return await self._receive()
