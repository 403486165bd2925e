"""The engine's state-store contract: what the detection engine keeps, and the operations on it.

Two backends fulfil it with the same semantics and the same test suite: memory (one process, bounded) and
Redis (many workers or nodes see one picture). The contract is shaped for Redis from the start:

* **One round trip on the hot path.** :meth:`EngineStore.observe` does everything a request needs (count the
  request's segments, pick its template parts, update the account profile and the parts' statistics, read
  back the account's published cluster) in one call, which Redis runs as one Lua script.
* **Heavy work off the request path.** Re-clustering reads every profile (:meth:`EngineStore.profiles`),
  runs the pure linkage code (``guardrail.engine._linkage``) in the caller, and writes the result back
  with :meth:`EngineStore.publish`. Online it runs every few seconds in a background thread or task, guarded
  by :meth:`EngineStore.try_lock` so that one worker of many does it; offline it runs inline on the log's
  clock. Decisions read the published table cheaply inside ``observe``.
* **Bounded.** Profiles are evicted least-recently-seen beyond ``max_accounts``; segment counts live in a
  fixed-size count-min sketch whose counters are halved periodically (so old one-off lines fade and the
  sketch never saturates); template statistics are evicted least-recently-seen beyond ``max_templates``;
  an account keeps at most ``TOP_PARTS`` parts and ``TOP_PREFIXES`` address ranges (space-saving counts).
* **Hashed identifiers only.** ``account`` and ``prefix`` values are keyed digests
  (:mod:`guardrail._hashing`); segments are 64-bit hashes of normalised lines. No raw text reaches a store.

Redis key layout (recommended; all keys of one deployment share one hash tag ``{<prefix>}`` so the hot-path
script is atomic on Redis Cluster; the engine state is small and bounded, the token buckets of
:mod:`guardrail.limiter` spread over slots on their own):

====================================  =============================================================
``{p}:seg``                           count-min sketch of segment counts (string of u32 cells, or a hash)
``{p}:seg:n``                         insertions since the last halving
``{p}:acct:<account>``                hash: the :class:`AccountProfile` fields (parts/prefixes as
                                      ``part:<hex>`` / ``pfx:<hash>`` fields, hours as ``h0``..``h23``)
``{p}:accts``                         sorted set account -> last seen (eviction order, enumeration)
``{p}:tpl:<hex>``                     hash: :class:`TemplateStats` fields; ``{p}:tpl:<hex>:hll`` PFADD
``{p}:tpls``                          sorted set template -> last seen (eviction order)
``{p}:clu:ver``                       published table version (int)
``{p}:clu:acct``                      hash account -> cluster id (current version)
``{p}:clu:part``                      hash template part (hex) -> cluster id, flagged clusters only
``{p}:clu:info``                      hash cluster id -> JSON of :class:`ClusterVerdict`
``{p}:lock``                          re-clustering lock (SET NX PX)
====================================  =============================================================
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "HOURS",
    "TOP_PARTS",
    "TOP_PREFIXES",
    "AccountProfile",
    "ClusterTable",
    "ClusterVerdict",
    "EngineStore",
    "Observation",
    "Observed",
    "StoreSettings",
    "TemplateStats",
]

#: Parts (template lines) an account profile keeps, by space-saving count.
TOP_PARTS = 12
#: Address ranges an account profile keeps, by space-saving count.
TOP_PREFIXES = 4
#: Hour-of-day histogram length (UTC hours).
HOURS = 24


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Knobs every backend honours identically (so memory and Redis agree request for request).

    ``part_min_count``: a segment becomes a template *part* of a request once the sketch has seen it in at
    least this many requests (this one included). ``max_parts``: parts kept per request, the numerically
    smallest hashes (a consistent sample: the same wrapper always yields the same parts).
    ``sketch_width`` x ``sketch_depth`` u32 cells; counters are halved every ``sketch_width`` insertions.
    """

    max_accounts: int = 500_000
    max_templates: int = 200_000
    part_min_count: int = 3
    max_parts: int = 6
    max_segments: int = 64
    sketch_width: int = 1 << 20
    sketch_depth: int = 3

    def __post_init__(self) -> None:
        for name in ("max_accounts", "max_templates", "part_min_count", "max_parts", "max_segments"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"StoreSettings.{name} must be an integer >= 1, got {value!r}")
        w = self.sketch_width
        if isinstance(w, bool) or not isinstance(w, int) or w < 64 or w & (w - 1):
            raise ValueError(f"StoreSettings.sketch_width must be a power of two >= 64, got {w!r}")
        if self.sketch_depth not in (1, 2, 3):
            raise ValueError(f"StoreSettings.sketch_depth must be 1, 2 or 3, got {self.sketch_depth!r}")


@dataclass(frozen=True, slots=True)
class Observation:
    """What the engine learnt from one request; everything already hashed or reduced to numbers.

    ``segments``: 64-bit hashes of the normalised lines/sentences of the system text and the latest user
    turn (deduplicated, order irrelevant; earlier turns of a resent conversation are deliberately left out,
    so a chat client that resends the history does not look templated). ``prefix``: keyed hash of the
    client's /24 (IPv4) or /48 (IPv6), or ``None``. ``tokens``: estimated prompt tokens. ``elicitation``:
    0..1, how strongly the prompt asks for reasoning to be written out, or ``None`` when this request was
    not scored (the engine scores a keyed-random quarter of requests: the signal is only used as an
    account's or a group's mean). ``conversation``: the request carries a real conversation (an assistant
    turn before the latest user turn).
    """

    account: str
    ts: float
    segments: tuple[int, ...]
    prefix: str | None = None
    tokens: int = 0
    elicitation: float | None = None
    conversation: bool = False


@dataclass(slots=True)
class AccountProfile:
    """One account's bounded profile (a store returns a snapshot; mutating it changes nothing stored).

    ``parts``: part hash -> requests that carried it (space-saving: at most :data:`TOP_PARTS`; an entry
    that replaced an evicted one starts at 1, so counts are lower bounds). ``templated``: requests
    that carried at least one part. ``hours``: requests per UTC hour of day. ``gap_n``/``gap_sum``/
    ``gap_sq``: count, sum and sum of squares of log2(1 + seconds between consecutive requests).
    ``prefixes``: address range -> requests (at most :data:`TOP_PREFIXES`, space-saving).
    ``elicitation_sum`` / ``elicitation_n``: sum and count of the scored requests' elicitation.
    """

    account: str
    first_seen: float
    last_seen: float
    requests: int = 0
    tokens: int = 0
    templated: int = 0
    conversations: int = 0
    elicitation_sum: float = 0.0
    elicitation_n: int = 0
    gap_n: int = 0
    gap_sum: float = 0.0
    gap_sq: float = 0.0
    hours: list[int] = field(default_factory=lambda: [0] * HOURS)
    parts: dict[int, int] = field(default_factory=dict)
    prefixes: dict[str, int] = field(default_factory=dict)

    def share(self, part: int) -> float:
        """Fraction of this account's requests that carried ``part`` (0..1)."""
        return min(1.0, self.parts.get(part, 0) / self.requests) if self.requests else 0.0


@dataclass(slots=True)
class TemplateStats:
    """Running statistics of one template part (a recurring normalised line).

    ``accounts`` is a bounded distinct count (HyperLogLog in both backends).
    """

    part: int
    requests: int
    first_seen: float
    last_seen: float
    accounts: int


@dataclass(frozen=True, slots=True)
class ClusterVerdict:
    """A published cluster: what the policy decided for it, read on the hot path.

    ``action``: "allow" | "throttle" | "block" (the policy's verdict for the cluster as a whole).
    ``summary``: short, JSON-able evidence (numbers and strings) copied into decisions' evidence.
    """

    cluster: str
    score: float
    action: str
    size: int
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClusterTable:
    """The result of one re-clustering, published atomically (readers see the old or the new table).

    ``assignment``: account -> cluster id for every clustered account. ``parts``: template part -> cluster id
    for the parts that characterise a flagged cluster (a brand-new account whose traffic is concentrated on
    such a part joins that cluster's bucket at once: the "replaced within minutes" case).
    """

    version: int
    clusters: Mapping[str, ClusterVerdict]
    assignment: Mapping[str, str]
    parts: Mapping[int, str]


@dataclass(frozen=True, slots=True)
class Observed:
    """What :meth:`EngineStore.observe` returns: the request's parts and the account's current picture.

    ``profile``: the account's profile *after* this request (read-only: the memory store hands out its
    live object to spare a copy on the hot path). ``cluster``: the account's published cluster,
    or ``None``. ``part_cluster``: the flagged cluster of the smallest of this request's parts that belongs
    to one (``None`` when no part is flagged), and ``flagged_part`` that part, for the replacement-account
    path. ``accounts``: how many profiles the store holds (sizes the re-clustering schedule).
    """

    parts: tuple[int, ...]
    profile: AccountProfile
    cluster: ClusterVerdict | None
    part_cluster: ClusterVerdict | None
    flagged_part: int | None
    table_version: int
    accounts: int


@runtime_checkable
class EngineStore(Protocol):
    """The engine's state. Every method has an async twin (``a``-prefixed) with the same semantics.

    Backends raise ``guardrail.limiter.StorageError`` (or a subclass) on backend trouble, never their
    client library's exceptions; ``Guard`` turns that into its failure policy.
    """

    settings: StoreSettings

    def observe(self, obs: Observation) -> Observed:
        """The hot path, atomic, one round trip.

        1. For each of ``obs.segments`` (the first ``max_segments`` after sorting), add one to its count in
           the sketch (conservative update: each cell of the segment is raised to the old minimum + 1)
           and read the new estimate; once ``sketch_width`` insertions have accumulated (checked after each
           request), all counters are halved.
        2. The request's parts: the segments whose estimate is ``>= part_min_count``, the ``max_parts``
           numerically smallest.
        3. Create or update the account profile: requests, tokens, templated (if any part), conversations,
           elicitation_sum/_n (when scored), hours[UTC hour of ts], gap stats (when a previous request
           exists and ts is not earlier), first/last seen (min/max), space-saving update of ``parts``
           (each part +1) and of ``prefixes`` (+1 when ``prefix`` is set). Evict the least recently seen
           profile beyond ``max_accounts``.
        4. For each part: TemplateStats requests +1, first/last seen, account added to its distinct count;
           evict least recently seen beyond ``max_templates``.
        5. Read the published cluster of the account and the flagged cluster of the first (smallest) part
           that has one.
        """
        ...

    async def aobserve(self, obs: Observation) -> Observed: ...

    def profiles(self) -> Iterator[AccountProfile]:
        """Every stored profile (snapshots; order unspecified). Used by re-clustering, off the hot path."""
        ...

    async def aprofiles(self) -> list[AccountProfile]: ...

    def templates(self, parts: Sequence[int]) -> dict[int, TemplateStats]:
        """Statistics of the given parts (missing or evicted parts are left out)."""
        ...

    async def atemplates(self, parts: Sequence[int]) -> dict[int, TemplateStats]: ...

    def publish(self, table: ClusterTable) -> None:
        """Replace the published cluster table atomically, unless a table with a version >= ``table.version``
        is already published (a slow worker never overwrites a newer result)."""
        ...

    async def apublish(self, table: ClusterTable) -> None: ...

    def table(self) -> ClusterTable:
        """The published table (an empty version-0 table before the first publish)."""
        ...

    async def atable(self) -> ClusterTable: ...

    def try_lock(self, owner: str, ttl: float) -> bool:
        """Take or renew the re-clustering lock for ``ttl`` seconds; True if ``owner`` holds it now."""
        ...

    async def atry_lock(self, owner: str, ttl: float) -> bool: ...

    def clear(self) -> None:
        """Forget everything (tests, ``Guard.reset``)."""
        ...

    async def aclear(self) -> None: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...
