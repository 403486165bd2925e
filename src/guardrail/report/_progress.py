"""A dependency-free progress bar for long replays (the demo, ``guardrail analyze``).

On a terminal it redraws one line in place, at most ``fps`` times a second; elsewhere (CI logs, a pipe) it
stays quiet and prints the final line once, so captured output stays readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """``Progress(total, label="replay")``; call ``update(n, **counters)`` then ``close()``.

    ``counters`` (e.g. ``throttled=12``) are shown after the rate; ``live`` forces in-place redraws on or
    off (default: only when ``stream`` is a terminal).
    """

    def __init__(
        self,
        total: int,
        *,
        label: str = "",
        unit: str = "req",
        stream: TextIO | None = None,
        width: int = 28,
        fps: float = 8.0,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total < 0:
            raise ValueError(f"total must be >= 0, got {total}")
        if width < 1 or fps <= 0:
            raise ValueError("width must be >= 1 and fps > 0")
        self.total = total
        self.label = label
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.live = self.stream.isatty() if live is None else live
        self.done = 0
        self.counters: dict[str, int] = {}
        self._clock = clock
        self._start = clock()
        self._interval = 1.0 / fps
        self._last_draw = -1e9
        self._closed = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self) -> str:
        """The current status line (without carriage return or newline)."""
        frac = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.label} " if self.label else "", f"[{bar}] {frac * 100:5.1f}% "]
        parts.append(f"{self.done:,}/{self.total:,} {self.unit}  {rate:,.0f} {self.unit}/s")
        if self._closed or self.done >= self.total:
            parts.append(f"  {_duration(elapsed)}")
        elif rate > 0:
            parts.append(f"  eta {_duration((self.total - self.done) / rate)}")
        for name, value in self.counters.items():
            parts.append(f"  {name} {value:,}")
        return "".join(parts)

    def update(self, n: int = 1, **counters: int) -> None:
        self.done += n
        self.counters.update(counters)
        if not self.live:
            return
        now = self._clock()
        if now - self._last_draw >= self._interval:
            self._last_draw = now
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        """Draw the final line and end it with a newline (once)."""
        if self._closed:
            return
        self._closed = True
        self.stream.write(("\r" if self.live else "") + self.line() + ("\x1b[K\n" if self.live else "\n"))
        self.stream.flush()
