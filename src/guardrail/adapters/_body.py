"""Bounded reading of an ASGI request body, and its replay to the app exactly once.

The declared ``Content-Length`` is checked against the maximum before a byte is read; a chunked body is
read with the same cap. A stalled client hits ``timeout`` (the whole body must arrive in that time); a
client that disconnects mid-body is reported as such. Whatever was read is replayed to the app as one
message, then the app talks to the original ``receive`` (so it still sees a later disconnect).
"""

from __future__ import annotations

import asyncio
import enum
import weakref
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
            length = parse_length(value)
            if length is None or (found is not None and found != length):
                return BodyStatus.BAD_LENGTH
            found = length
    return found


#: Longer digit strings are clamped: int() refuses past 4300 digits, and no cap is near 10**18.
_MAX_DIGITS = 18
_CLAMPED: int = 10**_MAX_DIGITS


def parse_length(value: bytes | str) -> int | None:
    """A ``Content-Length`` value as an integer (ASCII digits only, surrounding spaces allowed), else
    ``None``. An absurdly long number is clamped to ``10**18`` rather than parsed."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():  # str.isdigit alone accepts superscripts
        return None
    if len(text) > _MAX_DIGITS:
        text = text.lstrip("0")
        if len(text) > _MAX_DIGITS:
            return _CLAMPED
    return int(text) if text else 0


class Watch:
    """One awaited step under watch: its task, its deadline, and whether the watchdog cancelled it."""

    __slots__ = ("deadline", "fired", "owner", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float, owner: _LoopWatch) -> None:
        self.task = task
        self.deadline = deadline
        self.owner = owner
        self.fired = False

    def uncancel(self) -> None:
        """Forget the watchdog's cancellation (3.11+), so the task can carry on normally."""
        uncancel = getattr(self.task, "uncancel", None)
        if uncancel is not None:
            uncancel()


class _LoopWatch:
    """The watches of one event loop and its tick (each loop ticks on its own thread, never another's).

    Holds its loop weakly and not its timer handle (which refers to the loop): the watchdog keys these by
    loop in a weak dictionary, and a value that kept its key alive would keep every loop that ever served a
    request (one ``asyncio.run`` per call, test clients) alive for good.
    """

    __slots__ = ("_loop", "armed", "period", "reads")

    def __init__(self, loop: asyncio.AbstractEventLoop, period: float) -> None:
        self._loop = weakref.ref(loop)
        self.period = period
        self.reads: set[Watch] = set()
        self.armed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop()

    def add(self, watch: Watch) -> None:
        self.reads.add(watch)
        if not self.armed:
            loop = self._loop()
            if loop is not None:
                loop.call_later(self.period, self.tick)
                self.armed = True

    def tick(self) -> None:
        self.armed = False
        loop = self._loop()
        if not self.reads or loop is None:
            return
        now = loop.time()
        for watch in [w for w in self.reads if w.deadline <= now]:
            self.reads.discard(watch)
            watch.fired = True
            watch.task.cancel()
        if self.reads:
            loop.call_later(self.period, self.tick)
            self.armed = True


class Watchdog:
    """Deadlines for awaited steps (body reads, engine calls) at the cost of a set insertion.

    A timer per read (``asyncio.timeout``, ``anyio.move_on_after``) costs 5-25 us on every request, for a
    deadline that almost never fires. Instead, watches register here and one periodic tick per event loop
    (armed only while watches are in flight) cancels the overdue ones. A deadline fires up to ``period``
    late. One middleware may serve several loops (threads with their own loop, test clients): each loop
    keeps its own watches and timer, so a tick never touches another thread's tasks.
    """

    __slots__ = ("_last", "_loops", "period")

    def __init__(self, timeout: float) -> None:
        self.period = max(0.02, min(1.0, timeout / 4))
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWatch] = (
            weakref.WeakKeyDictionary()
        )
        self._last: _LoopWatch | None = None

    def watch(self, timeout: float) -> Watch | None:
        """Put the current asyncio task under a ``timeout`` deadline; ``None`` when not on asyncio.

        The caller catches ``CancelledError``, checks ``fired`` (else the cancellation was not ours and
        is re-raised), and always ``discard``s the watch.
        """
        task = _asyncio_task()
        if task is None:
            return None
        loop = task.get_loop()
        owner = self._last
        if owner is None or owner.loop is not loop:
            owner = self._loops.get(loop)
            if owner is None:
                owner = self._loops.setdefault(loop, _LoopWatch(loop, self.period))
            self._last = owner
        watch = Watch(task, loop.time() + timeout, owner)
        owner.add(watch)
        return watch

    @staticmethod
    def rearm(watch: Watch, timeout: float) -> None:
        """Watch the same task again with a new deadline (one ``Watch`` serves a request's steps)."""
        owner = watch.owner
        watch.deadline = watch.task.get_loop().time() + timeout
        watch.fired = False
        owner.add(watch)

    @staticmethod
    def discard(watch: Watch | None) -> None:
        if watch is not None:
            watch.owner.reads.discard(watch)


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
    watch: Watch | None = None,
) -> BodyRead:
    """Read the request body, at most ``max_bytes``, within ``timeout`` seconds.

    The deadline is kept by ``watchdog`` (or by ``watch``, already armed by the caller for this
    task); with neither, or off asyncio, by an anyio cancel scope."""
    declared = declared_length(headers)
    if isinstance(declared, BodyStatus) or (declared is not None and declared > max_bytes):
        Watchdog.discard(watch)  # nothing to read: a stale watch would fire later, mid-app
        return BodyRead(declared if isinstance(declared, BodyStatus) else BodyStatus.TOO_LARGE, b"", True)
    chunks: list[bytes] = []
    read = watch if watch is not None else watchdog.watch(timeout) if watchdog is not None else None
    try:
        if read is None:  # not on asyncio (trio), or no watchdog: anyio's cancel scope
            with anyio.move_on_after(timeout):
                return await _read_into(receive, chunks, max_bytes)
            return BodyRead(BodyStatus.TIMEOUT, b"".join(chunks), True)
        return await _read_into(receive, chunks, max_bytes)
    except asyncio.CancelledError:
        if read is None or not read.fired:
            raise
        read.uncancel()  # this cancellation was ours, not the server's
        return BodyRead(BodyStatus.TIMEOUT, b"".join(chunks), True)
    except Exception:  # a server whose receive() raises on a broken connection: treat it as gone
        return BodyRead(BodyStatus.DISCONNECTED, b"".join(chunks), False)
    finally:
        Watchdog.discard(read)


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
