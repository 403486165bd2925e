"""The in-process engine store: bounded dictionaries behind one lock.

Every operation is a few dictionary updates, so one lock (not one per key) keeps it simple and correct
under threads; the async twins call the sync ones directly because nothing here waits on I/O.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from ._sketch import CountMinSketch, HyperLogLog, distinct_sorted
from .store import (
    TOP_PARTS,
    TOP_PREFIXES,
    AccountProfile,
    ClusterTable,
    ClusterVerdict,
    Observation,
    Observed,
    StoreSettings,
    TemplateStats,
)

__all__ = ["MemoryEngineStore", "space_saving_add", "update_profile"]

_EMPTY = ClusterTable(version=0, clusters={}, assignment={}, parts={})


def space_saving_add(counts: dict[int, int] | dict[str, int], key: object, cap: int) -> None:
    """Add one to ``key``; when full, the smallest entry gives way to ``key`` at count 1.

    Starting a newcomer at 1 (not at the evicted count, as classic space-saving does) keeps counts lower
    bounds: an honest account with ever-changing parts can never inflate one of them into a high share.
    """
    table: dict[object, int] = counts  # type: ignore[assignment]
    if key in table:
        table[key] += 1
        return
    if len(table) >= cap:
        smallest = min(table, key=table.__getitem__)
        del table[smallest]
    table[key] = 1


def update_profile(p: AccountProfile, obs: Observation, parts: Sequence[int]) -> None:
    """Apply one observation to a profile (shared by every backend's reference semantics)."""
    if p.requests:
        gap = obs.ts - p.last_seen
        if gap >= 0.0:
            g = math.log2(1.0 + gap)
            p.gap_n += 1
            p.gap_sum += g
            p.gap_sq += g * g
    p.requests += 1
    p.tokens += max(0, obs.tokens)
    if parts:
        p.templated += 1
    if obs.conversation:
        p.conversations += 1
    if obs.elicitation is not None:
        p.elicitation_sum += min(1.0, max(0.0, obs.elicitation))
        p.elicitation_n += 1
    ts = obs.ts
    p.hours[int(ts // 3600) % 24] += 1
    if ts < p.first_seen:
        p.first_seen = ts
    if ts > p.last_seen:
        p.last_seen = ts
    counts = p.parts
    for part in parts:
        if part in counts:  # the common case, inline (this runs for every part of every request)
            counts[part] += 1
        else:
            space_saving_add(counts, part, TOP_PARTS)
    if obs.prefix is not None:
        space_saving_add(p.prefixes, obs.prefix, TOP_PREFIXES)


def select_parts(segments: Sequence[int], counts: Sequence[int], settings: StoreSettings) -> tuple[int, ...]:
    """The parts of a request: segments counted at least ``part_min_count`` times, smallest hashes first
    (``segments`` sorted ascending, ``counts`` their new estimates)."""
    if len(segments) != len(counts):
        raise ValueError(f"{len(segments)} segments but {len(counts)} counts")
    need = settings.part_min_count
    most = settings.max_parts
    chosen: list[int] = []
    # Stops at ``max_parts``: a templated prompt has most of its segments counted often enough.
    for seg, n in zip(segments, counts, strict=True):
        if n >= need:
            chosen.append(seg)
            if len(chosen) == most:
                break
    return tuple(chosen)


class _Template:
    __slots__ = ("first", "hll", "last", "requests")

    def __init__(self, ts: float) -> None:
        self.requests = 0
        self.first = ts
        self.last = ts
        self.hll = HyperLogLog()


class MemoryEngineStore:
    """``memory://``: the reference implementation of :class:`guardrail.engine.store.EngineStore`."""

    def __init__(self, settings: StoreSettings | None = None) -> None:
        self.settings = settings or StoreSettings()
        s = self.settings
        self._lock = threading.Lock()
        self._sketch = CountMinSketch(s.sketch_width, s.sketch_depth)
        self._profiles: OrderedDict[str, AccountProfile] = OrderedDict()
        self._templates: OrderedDict[int, _Template] = OrderedDict()
        self._table = _EMPTY
        self._lock_owner: tuple[str, float] | None = None

    def template_count(self) -> int:
        """How many template parts are tracked now (for the ``guardrail_templates_tracked`` gauge)."""
        with self._lock:
            return len(self._templates)

    # -- hot path -------------------------------------------------------------------------------------
    def observe(self, obs: Observation) -> Observed:
        s = self.settings
        segs = distinct_sorted(obs.segments, s.max_segments)
        with self._lock:
            parts = select_parts(segs, self._sketch.add_many(segs), s)
            profiles = self._profiles
            p = profiles.get(obs.account)
            if p is None:
                p = AccountProfile(account=obs.account, first_seen=obs.ts, last_seen=obs.ts)
                profiles[obs.account] = p
                if len(profiles) > s.max_accounts:
                    profiles.popitem(last=False)
            else:
                profiles.move_to_end(obs.account)
            update_profile(p, obs, parts)
            if parts:
                reg, rank = HyperLogLog.position(_account_hash(obs.account))
                ts = obs.ts
                templates = self._templates
                for part in parts:
                    t = templates.get(part)
                    if t is None:
                        t = _Template(ts)
                        templates[part] = t
                        if len(templates) > s.max_templates:
                            templates.popitem(last=False)
                    else:
                        templates.move_to_end(part)
                    t.requests += 1
                    if ts < t.first:
                        t.first = ts
                    if ts > t.last:
                        t.last = ts
                    t.hll.add_position(reg, rank)
            table = self._table
            cid = table.assignment.get(obs.account)
            cluster = table.clusters.get(cid) if cid is not None else None
            part_cluster: ClusterVerdict | None = None
            flagged: int | None = None
            if table.parts:
                for part in parts:
                    pc = table.parts.get(part)
                    if pc is not None:
                        part_cluster = table.clusters.get(pc)
                        flagged = part
                        break
            return Observed(parts, p, cluster, part_cluster, flagged, table.version, len(profiles))

    async def aobserve(self, obs: Observation) -> Observed:
        return self.observe(obs)

    # -- off the hot path -----------------------------------------------------------------------------
    def profiles(self) -> Iterator[AccountProfile]:
        with self._lock:
            copies = [snapshot(p) for p in self._profiles.values()]
        return iter(copies)

    def profiles_live(self) -> list[AccountProfile]:
        """The stored profiles themselves, without copying: for the in-process re-clustering only,
        which reads them under the caller's guarantee that no ``observe`` runs concurrently."""
        return list(self._profiles.values())

    async def aprofiles(self) -> list[AccountProfile]:
        return list(self.profiles())

    def templates(self, parts: Sequence[int]) -> dict[int, TemplateStats]:
        out: dict[int, TemplateStats] = {}
        with self._lock:
            for part in parts:
                t = self._templates.get(part)
                if t is not None:
                    out[part] = TemplateStats(part, t.requests, t.first, t.last, t.hll.count())
        return out

    async def atemplates(self, parts: Sequence[int]) -> dict[int, TemplateStats]:
        return self.templates(parts)

    def publish(self, table: ClusterTable) -> None:
        with self._lock:
            if table.version > self._table.version:
                self._table = table

    async def apublish(self, table: ClusterTable) -> None:
        self.publish(table)

    def table(self) -> ClusterTable:
        return self._table

    async def atable(self) -> ClusterTable:
        return self._table

    def try_lock(self, owner: str, ttl: float, now: float | None = None) -> bool:
        import time

        t = time.monotonic() if now is None else now
        with self._lock:
            held = self._lock_owner
            if held is None or held[0] == owner or held[1] <= t:
                self._lock_owner = (owner, t + ttl)
                return True
            return False

    async def atry_lock(self, owner: str, ttl: float) -> bool:
        return self.try_lock(owner, ttl)

    def clear(self) -> None:
        with self._lock:
            self._sketch.clear()
            self._profiles.clear()
            self._templates.clear()
            self._table = _EMPTY
            self._lock_owner = None

    async def aclear(self) -> None:
        self.clear()

    def close(self) -> None:
        """Nothing to release; present for the contract."""

    async def aclose(self) -> None:
        """Nothing to release; present for the contract."""


def snapshot(p: AccountProfile) -> AccountProfile:
    """A copy that shares nothing mutable with ``p`` (cheaper than ``copy.deepcopy``)."""
    return AccountProfile(
        account=p.account,
        first_seen=p.first_seen,
        last_seen=p.last_seen,
        requests=p.requests,
        tokens=p.tokens,
        templated=p.templated,
        conversations=p.conversations,
        elicitation_sum=p.elicitation_sum,
        elicitation_n=p.elicitation_n,
        gap_n=p.gap_n,
        gap_sum=p.gap_sum,
        gap_sq=p.gap_sq,
        hours=list(p.hours),
        parts=dict(p.parts),
        prefixes=dict(p.prefixes),
    )


def _account_hash(account: str) -> int:
    """64 bits of the (already keyed-hashed, hex) account id; any other string is hashed with xxhash."""
    try:
        if len(account) >= 16:
            return int(account[:16], 16)
    except ValueError:
        pass
    import xxhash

    return xxhash.xxh3_64_intdigest(account.encode("utf-8", "surrogatepass"))
