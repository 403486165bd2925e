"""Accounts as plans, and the lazy time-ordered stream of one population.

An account is a :class:`Plan`: its labels, how many requests it will send, when it becomes active, and a
maker of its activity (its request times, drawn lazily, and a function that builds each request when its
time comes). The population's stream keeps one heap entry per account and only creates an account's
activity when the clock reaches its start, so memory grows with the number of accounts, never with the
number of requests.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from guardrail.simulate._clock import WINDOW_START
from guardrail.simulate._network import World
from guardrail.simulate._rng import derive_seed, make_rng

# An account's activity: its request times, each with a small tag (e.g. the position in a session), in order,
# and a function that builds the request (address, path, body) for a tag when the clock reaches it. Bodies are
# built only when emitted, so the heap holds a timestamp per account, never a pending request.
Content = tuple[str, str, dict[str, Any]]
Emit = Callable[[random.Random, int], Content]
Activity = tuple[Iterator[tuple[float, int]], Emit]
Maker = Callable[[random.Random], Activity]
Record = dict[str, Any]


def untagged(times: Iterator[float]) -> Iterator[tuple[float, int]]:
    """Times with the tag 0, for accounts whose requests need no per-request context."""
    return ((t, 0) for t in times)


@dataclass(frozen=True, slots=True)
class Plan:
    """One account: labels, request count, activation time (seconds into the window) and activity maker."""

    id: str
    population: str
    campaign: bool
    style: str | None
    requests: int
    start: float
    make: Maker = field(repr=False, compare=False)  # called once per stream, at ``start``


@dataclass(slots=True)
class Context:
    """What every population builder receives: the seed, the scale and the shared world."""

    seed: int
    scale: float
    world: World

    @classmethod
    def create(cls, seed: int, scale: float) -> Context:
        """The context of one simulation (the shared world is drawn from its own stream)."""
        return cls(seed=seed, scale=scale, world=World(make_rng(seed, "world"), scale))

    def count(self, base: float, minimum: int) -> int:
        """``base`` accounts at scale 1, scaled, but never fewer than ``minimum``."""
        return max(minimum, round(base * self.scale))

    def account_id(self, population: str, index: int) -> str:
        """A random-looking id, alike for every population (no label leaks into the id)."""
        h = derive_seed(self.seed, "account", population, str(index))
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        chars = []
        for _ in range(12):
            h, r = divmod(h, 36)
            chars.append(alphabet[r])
        return "acct_" + "".join(chars)


def stream(plans: list[Plan], rng: random.Random) -> Iterator[Record]:
    """The requests of ``plans`` in time order, generated lazily (one heap entry per account).

    An account's activity is created when the clock reaches its start; its requests are built one at a time
    as they are emitted. Ties are broken by account index, so the order is deterministic.
    """
    heap: list[tuple[float, int, int, Activity | None]] = [(p.start, i, 0, None) for i, p in enumerate(plans)]
    heapq.heapify(heap)
    while heap:
        ts, i, tag, activity = heapq.heappop(heap)
        plan = plans[i]
        if activity is None:
            activity = plan.make(rng)
        else:
            ip, path, body = activity[1](rng, tag)
            yield {
                "ts": round(WINDOW_START + ts, 3),
                "account": plan.id,
                "ip": ip,
                "path": path,
                "body": body,
            }
        nxt = next(activity[0], None)
        if nxt is not None:
            heapq.heappush(heap, (nxt[0], i, nxt[1], activity))


def sessions(rng: random.Random, n: int, mean_size: float) -> list[int]:
    """Split ``n`` requests into sessions of geometric size with mean ``mean_size``."""
    sizes: list[int] = []
    left = n
    p = 1.0 / max(mean_size, 1.0)
    while left > 0:
        size = 1
        while rng.random() > p and size < left:
            size += 1
        sizes.append(size)
        left -= size
    return sizes
