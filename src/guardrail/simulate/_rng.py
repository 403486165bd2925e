"""Deterministic randomness for the simulator.

Every population draws from its own ``random.Random`` whose seed is derived from the simulation seed and the
population's name with BLAKE2b, never with Python's ``hash()`` (salted per process). So one seed gives the
same bytes in every process, and adding a population does not shift the draws of the others.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def derive_seed(seed: int, *names: str) -> int:
    """A 64-bit seed for the stream called ``names`` under ``seed`` (stable across processes)."""
    h = hashlib.blake2b(digest_size=8, person=b"guardrail-sim")
    h.update(str(seed).encode())
    for name in names:
        h.update(b"\x00" + name.encode())
    return int.from_bytes(h.digest(), "big")


def make_rng(seed: int, *names: str) -> random.Random:
    """A fresh generator for the stream called ``names`` (see :func:`derive_seed`)."""
    return random.Random(derive_seed(seed, *names))


def random_id(rng: random.Random, length: int = 12, alphabet: str = "0123456789abcdef") -> str:
    """A random-looking identifier drawn from ``rng`` (account ids, request ids, call ids)."""
    if alphabet == "0123456789abcdef":
        return f"{rng.getrandbits(4 * length):0{length}x}"
    return "".join(rng.choice(alphabet) for _ in range(length))


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth for small means, a rounded normal for large ones: good enough here)."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def weighted(rng: random.Random, items: Sequence[tuple[T, float]]) -> T:
    """One item of ``(item, weight)`` pairs, chosen in proportion to its weight."""
    total = sum(w for _, w in items)
    x = rng.random() * total
    for item, w in items:
        x -= w
        if x < 0:
            return item
    return items[-1][0]
