"""Bounded counting structures of the memory backend: a count-min sketch and a small HyperLogLog.

Both have the same semantics as their Redis counterparts (a u32 counter array updated by a Lua script, and
``PFADD``/``PFCOUNT``), so the memory and Redis stores answer alike.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence

import numpy as np

__all__ = ["CountMinSketch", "HyperLogLog", "cell_indexes", "distinct_sorted"]

_MASK64 = (1 << 64) - 1
#: Up to this many values, :meth:`CountMinSketch.add_many` counts in plain Python (see there).
_SMALL = 16


def distinct_sorted(segments: Sequence[int], limit: int) -> list[int]:
    """The ``limit`` smallest distinct segments, ascending (the order both stores update the sketch in).

    Shingles arrive sorted and distinct already: sorting a sorted list is one linear pass, and the set is
    built only to check, which is cheaper than always sorting the set's hash order.
    """
    out = sorted(segments)
    if len(set(out)) != len(out):
        out = sorted(set(out))
    return out[:limit]


def cell_indexes(value: int, width_bits: int, depth: int) -> list[int]:
    """Row ``i`` uses bits ``[64 - w(i+1), 64 - w i)`` of the 64-bit hash (offset by ``i * width``).

    Taking disjoint bit ranges of one good 64-bit hash gives independent rows at no extra hashing cost; the
    Redis script reads the same bits from the hash's 16-digit hex form.
    """
    width = 1 << width_bits
    mask = width - 1
    value &= _MASK64
    return [i * width + ((value >> (64 - width_bits * (i + 1))) & mask) for i in range(depth)]


class CountMinSketch:
    """Counts with conservative update; all counters halve every ``width`` insertions.

    Conservative update (raise only the cells at the current minimum) keeps over-counting low; halving keeps
    the sketch from saturating on an endless stream, so a line seen a few times long ago fades while a line
    in steady use stays high. Estimates never undercount between halvings.
    """

    __slots__ = ("_bits", "_cells", "_depth", "_mask", "_offsets", "_shifts", "_since", "_view", "_width")

    def __init__(self, width: int, depth: int) -> None:
        if width < 2 or width & (width - 1):
            raise ValueError(f"width must be a power of two, got {width}")
        bits = width.bit_length() - 1
        if depth < 1 or bits * depth > 64:
            raise ValueError(f"depth must be >= 1 with depth * log2(width) <= 64, got {depth}")
        self._width = width
        self._bits = bits
        self._depth = depth
        self._cells = array("I", bytes(4 * width * depth))
        self._view = np.frombuffer(self._cells, dtype=np.uint32)
        self._since = 0
        self._shifts = np.array([[64 - bits * (i + 1)] for i in range(depth)], dtype=np.uint64)
        self._mask = np.uint64(width - 1)
        self._offsets = np.array([[i * width] for i in range(depth)], dtype=np.intp)

    def add(self, value: int) -> int:
        """Count one more occurrence of ``value``; return its new estimate."""
        cells = self._cells
        idx = cell_indexes(value, self._bits, self._depth)
        low = min(cells[i] for i in idx) + 1
        for i in idx:
            if cells[i] < low:
                cells[i] = low
        self._since += 1
        if self._since >= self._width:
            self._view >>= 1
            self._since = 0
        return low

    def add_many(self, values: list[int]) -> list[int]:
        """:meth:`add` for several distinct values at once; halving is checked afterwards.

        Every estimate is read from the sketch as it was before the call, then each cell is raised to the
        largest estimate written to it (order-free, so the Redis script's counts are the same). A few
        values are counted in plain Python: below about a dozen, NumPy's fixed cost per call (some ten
        calls of about a microsecond) exceeds the whole work.
        """
        if not values:
            return []
        if len(values) <= _SMALL and self._depth == 3:
            out = self._add_small3(values)
        else:
            out = self._add_vector(values)
        self._since += len(values)
        if self._since >= self._width:
            self._view >>= np.uint32(1)
            self._since = 0
        return out

    def _add_small3(self, values: list[int]) -> list[int]:
        """:meth:`add_many` for a depth of 3 (the default), unrolled."""
        cells = self._cells
        bits = self._bits
        width = self._width
        mask = width - 1
        s0, s1, s2 = 64 - bits, 64 - 2 * bits, 64 - 3 * bits
        w2 = 2 * width
        out: list[int] = []
        writes: list[tuple[int, int, int, int]] = []
        for value in values:
            value &= _MASK64
            i0 = (value >> s0) & mask
            i1 = width + ((value >> s1) & mask)
            i2 = w2 + ((value >> s2) & mask)
            c0, c1, c2 = cells[i0], cells[i1], cells[i2]
            low = c0 if c0 < c1 else c1
            if c2 < low:
                low = c2
            low += 1
            out.append(low)
            writes.append((i0, i1, i2, low))
        for i0, i1, i2, low in writes:
            if cells[i0] < low:
                cells[i0] = low
            if cells[i1] < low:
                cells[i1] = low
            if cells[i2] < low:
                cells[i2] = low
        return out

    def _add_vector(self, values: list[int]) -> list[int]:
        """:meth:`add_many` with NumPy (many values)."""
        a = np.array(values, dtype=np.uint64)
        idx = ((a >> self._shifts) & self._mask).astype(np.intp)
        idx += self._offsets
        view = self._view
        cur = view[idx]
        est = np.minimum.reduce(cur, axis=0)
        est += np.uint32(1)
        # Each cell ends at max(its value, every estimate written to it). A fancy assignment with repeated
        # indexes keeps one of the writes, NumPy does not promise which; cells shared by two values are
        # rare (a few hundred of millions of cells), so assign, then raise any cell a smaller write won
        # with ``np.maximum.at`` (unbuffered, order-free), at a fraction of its cost on every call.
        view[idx] = np.maximum(cur, est)
        short = view[idx] < est
        if np.count_nonzero(short):
            np.maximum.at(view, idx[short], np.broadcast_to(est, idx.shape)[short])
        out: list[int] = est.tolist()
        return out

    def estimate(self, value: int) -> int:
        cells = self._cells
        return min(cells[i] for i in cell_indexes(value, self._bits, self._depth))

    def clear(self) -> None:
        self._view[:] = 0
        self._since = 0


class HyperLogLog:
    """Distinct counting in 256 bytes (precision 8, standard error about 6.5%), exact-ish when small.

    Fed with 64-bit hashes (accounts are already keyed digests, so their leading hex digits are uniform).
    """

    __slots__ = ("_regs",)
    _P = 8
    _M = 1 << _P

    def __init__(self) -> None:
        self._regs = bytearray(self._M)

    def add(self, value: int) -> None:
        idx, rank = self.position(value)
        if rank > self._regs[idx]:
            self._regs[idx] = rank

    @classmethod
    def position(cls, value: int) -> tuple[int, int]:
        """The register ``value`` goes to and its rank there (for :meth:`add_position`)."""
        value &= _MASK64
        idx = value >> (64 - cls._P)
        rest = (value << cls._P) & _MASK64
        return idx, 65 - cls._P if rest == 0 else (64 - rest.bit_length()) + 1

    def add_position(self, idx: int, rank: int) -> None:
        """:meth:`add` of a value whose :meth:`position` is known: one account's request adds the same
        value to every template it uses, so the position is computed once per request."""
        if rank > self._regs[idx]:
            self._regs[idx] = rank

    def count(self) -> int:
        m = self._M
        regs = self._regs
        inv = sum(2.0**-r for r in regs)
        est = (0.7213 / (1 + 1.079 / m)) * m * m / inv
        zeros = regs.count(0)
        if est <= 2.5 * m and zeros:
            est = m * math.log(m / zeros)
        return round(est)
