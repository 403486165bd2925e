"""Locality-sensitive hashing of fingerprints by banding, in memory and bounded.

The signature is cut into ``bands`` bands of ``rows`` values; two fingerprints with Jaccard similarity
``s`` share at least one band with probability ``1 - (1 - s**rows) ** bands``, an S-curve around the
threshold. ``bands`` and ``rows`` are chosen from the threshold by minimising the weighted area of false
positives below it plus false negatives above it (the criterion datasketch's ``MinHashLSH`` uses).
:meth:`LSHIndex.band_keys` gives each band as stable bytes, so a store kept elsewhere (Redis) can index
the same bands as this in-memory one.
"""

from __future__ import annotations

import functools
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final

import numpy as np

from guardrail.fingerprint.minhash import Fingerprint, FingerprintParams

__all__ = ["LSHIndex", "collision_probability", "optimal_bands"]

# A bucket of several keys is a list up to this size, then a dict (O(1) removal in buckets of near-identical
# prompts); a bucket of one key holds it bare (see LSHIndex).
_LIST_LIMIT = 32
_MISSING: Final = object()
_get = dict.get
_GRID = np.linspace(0.0, 1.0, 1001)


def _area(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid rule (``np.trapezoid`` is numpy >= 2 only; ``np.trapz`` is deprecated there)."""
    return float(((y[1:] + y[:-1]) * np.diff(x)).sum() / 2.0)


def collision_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that two fingerprints of Jaccard ``similarity`` share at least one band."""
    return float(1.0 - (1.0 - similarity**rows) ** bands)


@functools.lru_cache(maxsize=64)
def optimal_bands(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """``(bands, rows)`` with ``bands * rows <= num_perm`` minimising the weighted error areas.

    False positive area: integral over s in [0, threshold] of P(candidate | s); false negative area:
    integral over [threshold, 1] of P(not candidate | s).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be positive, got {num_perm}")
    if false_positive_weight < 0 or false_negative_weight < 0:
        raise ValueError("weights must be non-negative")
    below = _GRID[_GRID <= threshold]
    above = _GRID[_GRID >= threshold]
    best: tuple[float, int, int] | None = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp_area = _area(1.0 - (1.0 - below**rows) ** bands, below)
            fn_area = _area((1.0 - above**rows) ** bands, above)
            error = false_positive_weight * fp_area + false_negative_weight * fn_area
            if best is None or error < best[0]:
                best = (error, bands, rows)
    assert best is not None
    return best[1], best[2]


class LSHIndex:
    """Keys indexed by the bands of their fingerprints; :meth:`query` returns candidate keys.

    Bounded: beyond ``capacity`` keys the least recently inserted or touched key is evicted (and
    ``on_evict(key)`` called). Candidates are not verified here: a band hit means similarity is likely,
    not certain (see :class:`~guardrail.fingerprint.TemplateIndex` for verified assignment).
    Thread-safe.

    Each band has two tables: ``singles`` maps a band value held by one key to that key (bare, so the
    cyclic garbage collector has no container to walk: with one list per bucket its passes made inserts
    several times slower), ``multis`` maps a band value held by several keys to their list (a dict beyond
    ``_LIST_LIMIT`` keys, for O(1) removal). A band value is in one of the two, never both. The split lets
    :meth:`query` look up every band and merge the buckets with C-level ``map``, ``filter`` and
    ``set.update``, without a Python-level step per band.
    """

    def __init__(
        self,
        threshold: float = 0.8,
        num_perm: int = 128,
        capacity: int = 100_000,
        *,
        weights: tuple[float, float] = (0.5, 0.5),
        on_evict: Callable[[Hashable], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.capacity = capacity
        self.bands, self.rows = optimal_bands(threshold, num_perm, weights[0], weights[1])
        self._on_evict = on_evict
        # One C call cuts the signature bytes into the bands' raw bytes (measured 2x faster than a numpy
        # ``void`` view and ``tolist``, and no Python step per band).
        self._split = struct.Struct(f"{4 * self.rows}s" * self.bands).unpack_from
        self._missing = (_MISSING,) * self.bands
        self._params: FingerprintParams | None = None
        self._entries: OrderedDict[Hashable, tuple[bytes, ...]] = OrderedDict()
        self._singles: list[dict[bytes, Hashable]] = [{} for _ in range(self.bands)]
        self._multis: list[dict[bytes, set[Hashable]]] = [{} for _ in range(self.bands)]
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"LSHIndex(threshold={self.threshold}, num_perm={self.num_perm}, capacity={self.capacity}, "
            f"bands={self.bands}, rows={self.rows}, size={len(self)})"
        )

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def collision_probability(self, similarity: float) -> float:
        """Probability that a fingerprint of this Jaccard similarity to an indexed one finds it."""
        return collision_probability(similarity, self.bands, self.rows)

    def _check(self, fp: Fingerprint) -> None:
        if not isinstance(fp, Fingerprint):
            raise TypeError(f"expected Fingerprint, got {type(fp).__name__}")
        if fp.num_perm != self.num_perm:
            raise ValueError(f"fingerprint has num_perm={fp.num_perm}, index expects {self.num_perm}")
        with self._lock:  # slow path only: the first fingerprint fixes the parameters
            if self._params is None:
                self._params = fp.params
        if fp.params != self._params:
            raise ValueError(f"fingerprint parameters {fp.params} differ from the index's {self._params}")

    def band_keys(self, fp: Fingerprint) -> list[bytes]:
        """One stable byte string per band: 2-byte little-endian band number + the band's uint32 values
        (the very bytes the in-memory tables are keyed by), for a store that keeps the bands elsewhere."""
        self._check(fp)
        return [i.to_bytes(2, "little") + band for i, band in enumerate(self._split(fp.signature_bytes))]

    def _bands(self, fp: Fingerprint) -> tuple[bytes, ...]:
        """The bands' raw bytes, one per band table, cut by one ``struct`` call."""
        if fp.__class__ is not Fingerprint or fp.params is not self._params:
            self._check(fp)
        bands: tuple[bytes, ...] = self._split(fp.signature_bytes)
        return bands

    def insert(self, key: Hashable, fp: Fingerprint) -> None:
        """Index ``key`` under ``fp`` (replacing its previous fingerprint if already present)."""
        bands = self._bands(fp)
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._unlink(key, previous)
            self._entries[key] = bands
            for singles, multis, band in zip(self._singles, self._multis, bands, strict=True):
                bucket = multis.get(band)
                if bucket is None:
                    other = singles.setdefault(band, key)
                    if other is not key:
                        del singles[band]
                        multis[band] = {other, key}
                else:
                    bucket.add(key)
            evicted: list[Hashable] = []
            while len(self._entries) > self.capacity:
                old_key, old_bands = self._entries.popitem(last=False)
                self._unlink(old_key, old_bands)
                evicted.append(old_key)
        if self._on_evict is not None:
            for old_key in evicted:
                self._on_evict(old_key)

    def query(self, fp: Fingerprint) -> list[Hashable]:
        """Keys sharing at least one band with ``fp``, each once, in no particular order.

        A query does not refresh the keys it returns (candidates are not matches): call :meth:`touch` on
        the key a caller actually uses, as :class:`~guardrail.fingerprint.TemplateIndex` does.
        """
        if fp.__class__ is not Fingerprint or fp.params is not self._params:
            self._check(fp)
        bands = self._split(fp.signature_bytes)
        with self._lock:
            found: set[Hashable] = set(map(_get, self._singles, bands, self._missing))
            found.update(*filter(None, map(_get, self._multis, bands)))
        found.discard(_MISSING)
        return list(found)

    def remove(self, key: Hashable) -> bool:
        """Forget ``key``; ``False`` if it was not indexed."""
        with self._lock:
            bands = self._entries.pop(key, None)
            if bands is None:
                return False
            self._unlink(key, bands)
            return True

    def touch(self, key: Hashable) -> None:
        """Mark ``key`` as recently used (no-op when absent)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)

    def _unlink(self, key: Hashable, bands: tuple[bytes, ...]) -> None:
        for singles, multis, band in zip(self._singles, self._multis, bands, strict=True):
            bucket = multis.get(band)
            if bucket is None:
                if singles.get(band, _MISSING) == key:
                    del singles[band]
            else:
                bucket.discard(key)
                if len(bucket) == 1:
                    del multis[band]
                    singles[band] = bucket.pop()
