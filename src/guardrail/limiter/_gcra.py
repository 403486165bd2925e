"""Pure GCRA (generic cell rate algorithm) maths for weighted token buckets. No I/O, no clock.

A token bucket of ``rate`` tokens per second and capacity ``burst`` is kept as one float per key, its
*theoretical arrival time* (TAT): the instant at which the bucket would be full again. With
``interval = 1 / rate`` (seconds per token) and ``tolerance = burst * interval`` (the whole bucket expressed
as time), a bucket holds ``burst - (tat - now) * rate`` tokens. Consuming ``cost`` tokens moves the TAT
forward by ``cost * interval``; the request fits when the new TAT is at most ``tolerance`` ahead of now.
Storing a single instant instead of (tokens, last refill) is what makes the memory store O(1) per key and
the Redis script a single GET/SET; a full bucket (``tat <= now``) is indistinguishable from a missing key, so
stores may drop it. A settlement after the fact may push the TAT beyond ``now + tolerance``: the bucket is
then in debt and refuses everything until time has paid the debt back.

The Lua scripts (``lua/gcra.lua``, ``lua/gcra_one.lua``) run the same maths in whole microseconds: Redis's
``TIME`` is integral there, a stored TAT is rounded up to the next microsecond (rounding never under-charges),
and the reply carries only integers (float formatting is most of a script's cost); ``from_ahead`` turns a
reply back into the fields below. Memory and Redis answers therefore agree to within one microsecond of
refill per write.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

#: Slack (seconds) when comparing a TAT with the tolerance: float rounding must not refuse a request that
#: exactly fits (e.g. cost == burst on a bucket refilled through many small steps).
EPSILON = 1e-9

#: ``remaining`` is reported to this many tokens: ``burst - (tat - now) x rate`` subtracts two absolute
#: instants, which leaves float noise in the last bits (48.9999999999994 for 49) that an answer should not
#: carry. Rounding is to the nearest multiple, as a decimal (49.0, 47.999998, 0.001), and only below
#: ``CLEAN_BELOW`` tokens (where a multiple of 1e-9 is still several times finer than a double's
#: resolution, and where the rounding below is exact). A full bucket reports exactly its burst.
PRECISION = 1e-9
SCALE = 1e9
#: Adding 2**52 to a double in [0, 2**52) and subtracting it again rounds it to the nearest integer in two
#: exact float operations (the sum's unit in the last place is 1): four times cheaper than round() in
#: CPython, on the in-process hot path.
ROUNDER = 2.0**52
CLEAN_BELOW = 4e6  # remaining x 1e9 < 2**52


def left(burst: float, used: float) -> float:
    """``remaining`` of a bucket that has used ``used`` tokens (``(tat - now) x rate``): ``burst - used``
    rounded to ``PRECISION``, never negative; ``burst`` itself when nothing is used."""
    if used <= 0.0:
        return burst
    remaining = burst - used
    if remaining <= 0.0:
        return 0.0
    if remaining < CLEAN_BELOW:
        return (remaining * SCALE + ROUNDER - ROUNDER) / SCALE
    return remaining


CONSUME = "consume"
PEEK = "peek"
SETTLE = "settle"
MODES = (CONSUME, PEEK, SETTLE)


class Step(NamedTuple):
    """Outcome of one bucket in one decision. ``tat`` is the TAT to store if the decision is applied."""

    allowed: bool
    tat: float
    remaining: float
    retry_after: float
    reset_after: float


def take(
    stored: float | None, now: float, rate: float, burst: float, cost: float
) -> tuple[bool, float, float, float, float]:
    """``consume`` as a plain tuple (allowed, tat, remaining, retry_after, reset_after): the in-process hot
    path, where building a named tuple is a measurable share of the work."""
    interval = 1.0 / rate
    tolerance = burst * interval
    tat = now if stored is None or stored < now else stored
    new_tat = tat + cost * interval
    if cost <= burst and new_tat - now <= tolerance + EPSILON:
        ahead = new_tat - now
        remaining = burst - ahead * rate
        if remaining <= 0.0:  # left(), inlined: this is the in-process hot path
            remaining = 0.0
        elif remaining < CLEAN_BELOW and ahead > 0.0:
            remaining = (remaining * SCALE + ROUNDER - ROUNDER) / SCALE
        return True, new_tat, remaining, 0.0, ahead
    retry = math.inf if cost > burst else new_tat - tolerance - now
    return False, tat, left(burst, (tat - now) * rate), retry, tat - now


def consume(stored: float | None, now: float, rate: float, burst: float, cost: float) -> Step:
    """Try to take ``cost`` tokens. Refused steps carry the unchanged TAT and the wait until ``cost`` fits.

    A cost larger than ``burst`` can never fit: it is refused with ``retry_after = inf`` (callers cap costs).
    """
    return Step(*take(stored, now, rate, burst, cost))


def settle(stored: float | None, now: float, rate: float, burst: float, delta: float) -> Step:
    """Debit (``delta > 0``) or refund (``delta < 0``) tokens after the fact; never refused.

    A debit may leave the bucket in debt (TAT beyond ``now + tolerance``); a refund never fills it beyond
    ``burst``. ``allowed`` says whether the bucket is out of debt afterwards, ``retry_after`` how long until a
    zero-cost request passes again.
    """
    interval = 1.0 / rate
    tolerance = burst * interval
    tat = now if stored is None or stored < now else stored
    new_tat = tat + delta * interval
    if new_tat < now:
        new_tat = now
    ahead = new_tat - now
    in_credit = ahead <= tolerance + EPSILON
    retry = 0.0 if in_credit else ahead - tolerance
    return Step(in_credit, new_tat, left(burst, ahead * rate), retry, ahead)


class Decision(NamedTuple):
    """Outcome of several buckets decided together. ``writes`` maps each key to the TAT to store
    (empty when nothing must be written: a refused consume, or any peek)."""

    allowed: bool
    steps: list[Step]
    writes: dict[str, float]


def decide(
    mode: str,
    stored: Mapping[str, float | None],
    now: float,
    requests: Sequence[tuple[str, float, float, float]],
) -> Decision:
    """Decide ``requests`` (key, rate, burst, cost) against ``stored`` TATs, all or nothing.

    ``consume`` admits only if every bucket admits, and then writes every bucket; ``peek`` answers the same
    question and writes nothing; ``settle`` applies every signed delta. A key named twice is charged twice:
    its second step sees the TAT its first step would leave.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    current: dict[str, float | None] = {}
    steps: list[Step] = []
    all_ok = True
    for key, rate, burst, cost in requests:
        tat = current[key] if key in current else stored.get(key)
        if mode == SETTLE:
            step = settle(tat, now, rate, burst, cost)
            current[key] = step.tat
            all_ok = all_ok and step.allowed
        else:
            step = consume(tat, now, rate, burst, cost)
            if step.allowed:
                current[key] = step.tat
            else:
                all_ok = False
        steps.append(step)
    if mode == PEEK or (mode == CONSUME and not all_ok):
        return Decision(all_ok, steps, {})
    writes = {key: tat for key, tat in current.items() if tat is not None}
    return Decision(all_ok, steps, writes)


def tokens(stored: float | None, now: float, rate: float, burst: float) -> float:
    """Tokens in the bucket at ``now`` (negative while in debt); the quantity the TAT encodes."""
    if stored is None or stored <= now:
        return burst
    return burst - (stored - now) * rate


#: The Redis scripts keep TATs in whole microseconds (``TIME`` is integral there, and integers are much
#: cheaper than floats to format in Lua); a stored TAT is rounded up, so rounding never under-charges.
MICROS = 1_000_000


def from_ahead(
    mode: str, allowed: bool, ahead: float, rate: float, burst: float, cost: float
) -> tuple[float, float, float]:
    """(remaining, retry_after, reset_after) of a bucket whose TAT is ``ahead`` seconds past now after a
    decision: what the Redis scripts reply, turned into the fields ``consume`` / ``settle`` return."""
    interval = 1.0 / rate
    tolerance = burst * interval
    remaining = left(burst, ahead * rate)
    if allowed:
        return remaining, 0.0, ahead
    if mode == SETTLE:
        return remaining, ahead - tolerance, ahead
    if cost > burst:
        return remaining, math.inf, ahead
    return remaining, ahead + cost * interval - tolerance, ahead
