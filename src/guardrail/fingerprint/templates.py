"""Streaming template assignment: each fingerprint joins its best verified match or founds a template.

A band hit in the LSH index only nominates candidates; the fingerprint joins the candidate template with
the highest *estimated* similarity, and only when that similarity reaches the threshold. Template ids are
derived from the founding fingerprint's bytes, so workers that see the same founding prompt agree on the id
without coordination.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass

import xxhash

from guardrail.fingerprint.lsh import LSHIndex
from guardrail.fingerprint.minhash import Fingerprint

__all__ = ["TemplateIndex", "TemplateMatch", "template_id"]


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """Result of :meth:`TemplateIndex.assign`: the template, the estimated similarity to its founding
    fingerprint (1.0 for a new template), and whether this fingerprint founded it."""

    template_id: str
    similarity: float
    new: bool


def template_id(fp: Fingerprint) -> str:
    """The stable id of a template founded by ``fp``: ``"tpl-"`` + 16 hex digits of XXH3 of its bytes."""
    return "tpl-" + xxhash.xxh3_64_hexdigest(fp.to_bytes())


class TemplateIndex:
    """Bounded streaming clustering of fingerprints into templates.

    ``threshold`` is the estimated Jaccard similarity to a template's founding fingerprint needed to join
    it. The LSH banding is tuned to favour recall (false negatives weigh 3x false positives) because every
    candidate is verified. At most ``capacity`` templates are kept; the least recently matched are
    forgotten first. Thread-safe.
    """

    def __init__(self, *, threshold: float = 0.5, num_perm: int = 128, capacity: int = 100_000) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold
        self.capacity = capacity
        self._founders: dict[str, Fingerprint] = {}
        self._lsh = LSHIndex(threshold, num_perm, capacity, weights=(0.25, 0.75), on_evict=self._forget)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TemplateIndex(threshold={self.threshold}, capacity={self.capacity}, templates={len(self)})"

    def __len__(self) -> int:
        return len(self._founders)

    def __contains__(self, template: object) -> bool:
        return template in self._founders

    @property
    def lsh(self) -> LSHIndex:
        return self._lsh

    def founder(self, template: str) -> Fingerprint | None:
        """The founding fingerprint of a known template, else ``None``."""
        return self._founders.get(template)

    def _forget(self, key: Hashable) -> None:
        if isinstance(key, str):
            self._founders.pop(key, None)

    def assign(self, fp: Fingerprint) -> TemplateMatch:
        """The template of ``fp``: its best match at or above the threshold, or a new one it founds."""
        with self._lock:
            best_id: str | None = None
            best = -1.0
            for candidate in self._lsh.query(fp):
                founder = self._founders.get(str(candidate))
                if founder is None:
                    continue
                similarity = founder.similarity(fp)
                if similarity > best or (
                    similarity == best and best_id is not None and str(candidate) < best_id
                ):
                    best_id, best = str(candidate), similarity
            if best_id is not None and best >= self.threshold:
                self._lsh.touch(best_id)
                return TemplateMatch(best_id, best, False)
            new_id = template_id(fp)
            if new_id in self._founders:  # identical founder already known (e.g. empty prompts)
                self._lsh.touch(new_id)
                return TemplateMatch(new_id, 1.0, False)
            self._founders[new_id] = fp
            self._lsh.insert(new_id, fp)
            return TemplateMatch(new_id, 1.0, True)
