"""Circuit breaker with exponential backoff: keeps requests away from a store that just failed.

Closed: every request goes to the store. After ``threshold`` consecutive failures (one slow answer on a
busy event loop is not an outage) the breaker opens for ``base`` seconds (doubling per further failure up to
``cap``, with jitter so workers do not reconnect in lockstep); while open,
requests take the failure policy at once instead of paying another timeout. When the delay has passed,
exactly one request probes the store (half-open); its success closes the breaker, its failure reopens it
for longer. The closed check is one attribute read, so a healthy store pays nothing for the breaker.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(
        self,
        *,
        base: float = 0.5,
        cap: float = 30.0,
        threshold: int = 3,
        probe_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        if not 0.0 < base <= cap:
            raise ValueError(f"need 0 < base <= cap, got base={base}, cap={cap}")
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        self.base = base
        self.cap = cap
        self.threshold = threshold
        self.strikes = 0
        self.probe_timeout = probe_timeout
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self.failures = 0
        #: Counts openings and closings: a call reports its result with the generation it began in, and a
        #: failure that began before the last change (one of many calls in flight during one stall) is
        #: not counted again, so one stall does not stretch into the longest backoff.
        self.generation = 0
        self._open_until = 0.0
        self._probe_started = 0.0
        #: Called with ``"open"`` when an outage begins and ``"closed"`` when the store answers again
        #: (once each per outage, outside the lock; an exception from it is swallowed).
        self.on_change = on_change

    def _changed(self, state: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(state)
            except Exception:  # a logging hook must not turn a store outage into an error
                pass

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state!r}, failures={self.failures})"

    @property
    def state(self) -> str:
        if self.failures == 0:
            return "closed"
        return "half-open" if self._probe_started else "open"

    def allow(self) -> bool:
        """May this request use the store? True when closed, or for the single half-open probe."""
        if self.failures == 0:
            return True
        now = self._clock()
        with self._lock:
            if self.failures == 0:
                return True
            if now < self._open_until:
                return False
            if self._probe_started and now - self._probe_started < self.probe_timeout:
                return False
            self._probe_started = now
            return True

    def success(self, generation: int | None = None) -> None:
        if self.failures or self.strikes:
            closed = False
            with self._lock:
                if generation is not None and generation != self.generation:
                    return  # began before the breaker last opened: the probe decides
                if self.failures:
                    self.generation += 1
                    closed = True
                self.strikes = 0
                self.failures = 0
                self._open_until = 0.0
                self._probe_started = 0.0
            if closed:
                self._changed("closed")

    def failure(self, generation: int | None = None) -> None:
        """Count a failed call; ``generation``: the one the call began in (see :attr:`generation`)."""
        now = self._clock()
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            if self.failures == 0:
                self.strikes += 1
                if self.strikes < self.threshold:
                    return
            self.failures += 1
            self.generation += 1
            delay = min(self.cap, self.base * 2.0 ** min(self.failures - 1, 32))
            self._open_until = now + delay * (0.5 + 0.5 * self._rng())
            self._probe_started = 0.0
            opened = self.failures == 1
        if opened:
            self._changed("open")

    def retry_in(self) -> float:
        """Seconds until the store will be tried again (0 when closed)."""
        if self.failures == 0:
            return 0.0
        return max(0.0, self._open_until - self._clock())
