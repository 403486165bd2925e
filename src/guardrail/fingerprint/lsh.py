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
from itertools import filterfalse
from typing import Any, Final

import numpy as np

from guardrail.fingerprint.minhash import Fingerprint, FingerprintParams

__all__ = ["LSHIndex", "collision_probability", "optimal_bands"]

_MISSING: Final = object()
# C-level callables for the query's map and filter passes (no Python frame per band).
_get = dict.get
_is_set = set.__instancecheck__
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

    Each band has one table from a band value to its bucket: the key itself when one key holds that value
    (no container for the cyclic garbage collector to walk: with one list per bucket its passes over
    millions of buckets made inserts several times slower), else a ``set`` of keys (O(1) removal in the
    buckets of near-identical prompts). A query looks up all bands with one C-level ``map``, then takes
    the bare keys (``filterfalse``) and merges the sets (``filter``, ``set.update``: sets merge without
    re-hashing), with no Python-level step per band. Keys must be hashable and not ``set`` instances.
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
        # band value -> the key holding it, or a set of the keys holding it (Any: either, by design).
        self._tables: list[dict[bytes, Any]] = [{} for _ in range(self.bands)]
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
        if fp.__class__ is not Fingerprint or fp._params is not self._params:
            self._check(fp)
        bands: tuple[bytes, ...] = self._split(fp._values)
        return bands

    def insert(self, key: Hashable, fp: Fingerprint) -> None:
        """Index ``key`` under ``fp`` (replacing its previous fingerprint if already present)."""
        if isinstance(key, set):  # a bucket of several keys is a set: a set key would be mistaken for one
            raise TypeError("LSHIndex keys must not be sets")
        bands = self._bands(fp)
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._unlink(key, previous)
            self._entries[key] = bands
            for table, band in zip(self._tables, bands, strict=True):
                other = table.setdefault(band, key)
                if other is not key:
                    if other.__class__ is set:
                        other.add(key)
                    else:
                        table[band] = {other, key}
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
        # Fast path: a fingerprint from this package with the index's (identical) parameters object.
        if fp.__class__ is not Fingerprint or fp._params is not self._params:
            self._check(fp)
        bands = self._split(fp._values)
        with self._lock:
            hits = list(map(_get, self._tables, bands, self._missing))
            found: set[Hashable] = set(filterfalse(_is_set, hits))
            found.update(*filter(_is_set, hits))
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
        for table, band in zip(self._tables, bands, strict=True):
            bucket = table.get(band, _MISSING)
            if bucket.__class__ is set:
                bucket.discard(key)
                if len(bucket) == 1:
                    table[band] = bucket.pop()
            elif bucket is not _MISSING and bucket == key:
                del table[band]
