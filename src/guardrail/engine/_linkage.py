"""Linkage: from bounded account profiles to clusters of accounts that behave as one (pure, no I/O).

1. **Dominant parts.** A part (recurring shingle) is *dominant* for an account when at least
   ``dominant_share`` of the account's requests carry it. Popular public text (a benchmark task, a pasted
   jailbreak) is a small share of each honest user's traffic, so it is never dominant and never links them.
2. **Signature keys.** An account's signature is the set of its dominant parts; accounts whose signatures
   share a pair among their ``signature_parts`` smallest dominant parts are joined (a banded MinHash over
   signatures: one generic phrase shared by two unrelated templates does not join their users, a whole
   wrapper does). Joining is union-find over the keys, linear in the number of accounts.
3. **Scoring.** Each component of two or more accounts is scored by how its members behave *together*:
   concentration on the shared template, flat round-the-clock timing (a per-account Rayleigh test of the
   hour-of-day over accounts active for a day or more, averaged over members, so it needs no time-zone
   assumptions and a short-lived account is no evidence either way), reasoning elicitation, shared
   address ranges, and the absence of real conversations. Sharing a template alone scores low: thousands
   of honest users of one product share one system prompt but keep human hours and their own addresses.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .store import HOURS, AccountProfile

__all__ = [
    "Cluster",
    "GroupFeatures",
    "LinkageSettings",
    "UnionFind",
    "cluster_accounts",
    "dominant_parts",
    "evidence_lines",
    "group_features",
    "score_features",
    "signature_keys",
]

_DAY = 86_400.0
_COS = tuple(math.cos(2 * math.pi * h / HOURS) for h in range(HOURS))
_SIN = tuple(math.sin(2 * math.pi * h / HOURS) for h in range(HOURS))


@dataclass(frozen=True, slots=True)
class LinkageSettings:
    """Knobs of linkage and scoring; the defaults are argued for in docs/detection.md.

    ``weights``: log-odds weight of each feature (see :func:`score_features`); ``bias`` the log-odds of a
    group with no evidence at all. ``diurnal_r2``: the squared mean resultant length assumed for a human's
    hour-of-day: people active over a 16-hour waking day give about 0.17, irregular ones less; a group's
    pooled estimate at 0 reads as flat (+1), at ``diurnal_r2`` as human (-1), halfway as no evidence.
    ``coordination_flatness`` / ``coordination_colocation`` / ``uncoordinated_cap``: see
    :func:`score_features`.
    """

    dominant_share: float = 0.15
    signature_parts: int = 3
    min_cluster: int = 3
    bias: float = -4.0
    weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "concentration": 3.0,
            "flatness": 2.5,
            "elicitation": 1.5,
            "colocation": 1.5,
            "conversation": -2.0,
            "size": 1.0,
            "uniformity": 0.0,
        }
    )
    diurnal_r2: float = 0.12
    coordination_flatness: float = 0.3
    coordination_colocation: float = 0.5
    uncoordinated_cap: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.dominant_share <= 1.0:
            raise ValueError(f"dominant_share must be in (0, 1], got {self.dominant_share!r}")
        if self.signature_parts < 2:
            raise ValueError(f"signature_parts must be >= 2, got {self.signature_parts!r}")
        if self.min_cluster < 2:
            raise ValueError(f"min_cluster must be >= 2, got {self.min_cluster!r}")
        if not 0.0 < self.diurnal_r2 < 1.0:
            raise ValueError(f"diurnal_r2 must be in (0, 1), got {self.diurnal_r2!r}")
        unknown = set(self.weights) - set(_FEATURES)
        if unknown:
            raise ValueError(f"unknown feature weights: {sorted(unknown)}; known: {list(_FEATURES)}")


_FEATURES = ("concentration", "flatness", "elicitation", "colocation", "conversation", "size", "uniformity")


class UnionFind:
    """Disjoint sets over hashable items: union by size, path halving (near-constant amortised time)."""

    __slots__ = ("_parent", "_size")

    def __init__(self) -> None:
        self._parent: dict[Any, Any] = {}
        self._size: dict[Any, int] = {}

    def add(self, x: object) -> None:
        if x not in self._parent:
            self._parent[x] = x
            self._size[x] = 1

    def find(self, x: object) -> object:
        parent = self._parent
        if x not in parent:
            self.add(x)
            return x
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: object, b: object) -> object:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size[rb]
        return ra

    def groups(self) -> dict[object, list[object]]:
        out: dict[object, list[object]] = defaultdict(list)
        for x in self._parent:
            out[self.find(x)].append(x)
        return dict(out)

    def __len__(self) -> int:
        return len(self._parent)


def dominant_parts(p: AccountProfile, share: float) -> list[int]:
    """The account's parts carried by at least ``share`` of its requests, smallest hash first."""
    if p.requests <= 0:
        return []
    need = share * p.requests
    return sorted(part for part, n in p.parts.items() if n >= need)


def signature_keys(dominant: Sequence[int], k: int) -> list[tuple[int, int]]:
    """Pairs among the ``k`` smallest dominant parts (a single dominant part is its own key)."""
    head = list(dominant[:k])
    if len(head) == 1:
        return [(head[0], head[0])]
    return [(head[i], head[j]) for i in range(len(head)) for j in range(i + 1, len(head))]


@dataclass(frozen=True, slots=True)
class GroupFeatures:
    """What a group of accounts looks like together; every field is a plain number (JSON-able)."""

    size: int
    requests: int
    tokens: int
    concentration: float  # mean share of members' traffic on the group's shared parts, 0..1
    flatness: float  # -1 (clearly human hours) .. +1 (clearly flat around the clock); 0 = no evidence
    rayleigh: float  # mean per-account Rayleigh statistic of hour-of-day (about 1 when flat)
    elicitation: float  # mean elicitation score of members' requests, 0..1
    colocation: float  # share of members whose top range is shared with another member, 0..1
    shared_ranges: int  # address ranges used by two or more members
    conversation: float  # share of members' requests that continue a conversation, 0..1
    first_seen_span: float  # seconds between the first and the last member's first request
    rate_spread: float  # standard deviation of log10(requests per active hour) over members
    uniformity: float  # -1 (heavy-tailed, independent users) .. +1 (every account at a similar rate)
    active_hours: int  # hours of day with at least 1/48 of the group's requests (24 = around the clock)
    shared_parts: int  # parts dominant for two or more members

    def as_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in self.__slots__}


def _rayleigh(p: AccountProfile) -> float:
    """Rayleigh statistic of the account's hour-of-day: ``|sum of unit vectors|^2 / n`` (about 1 if flat)."""
    c = s = 0.0
    n = 0
    for h, k in enumerate(p.hours):
        if k:
            c += k * _COS[h]
            s += k * _SIN[h]
            n += k
    return (c * c + s * s) / n if n else 1.0


def group_features(
    members: Sequence[AccountProfile],
    shared: Iterable[int],
    settings: LinkageSettings,
    dominant: Mapping[str, list[int]] | None = None,
) -> GroupFeatures:
    """Aggregate the members' profiles; ``shared`` are the parts that define the group (``dominant``:
    each member's dominant parts, when already computed)."""
    shared_set = set(shared)
    n = len(members)
    requests = sum(p.requests for p in members)
    tokens = sum(p.tokens for p in members)
    conc = 0.0
    elic = 0.0
    elic_n = 0
    conv = 0.0
    hours = [0] * HOURS
    z_sum = 0.0
    e_sum = 0.0
    m = 0
    top_range: list[str | None] = []
    range_users: Counter[str] = Counter()
    for p in members:
        r = max(1, p.requests)
        best = max((c for part, c in p.parts.items() if part in shared_set), default=0)
        conc += min(1.0, best / r)
        if p.elicitation_n:
            elic += p.elicitation_sum / p.elicitation_n
            elic_n += 1
        conv += p.conversations / r
        hours = [a + b for a, b in zip(hours, p.hours, strict=True)]
        hn = p.requests
        if hn >= 2 and p.last_seen - p.first_seen >= _DAY:
            z_sum += _rayleigh(p)
            e_sum += hn - 1
            m += 1
        for rng in p.prefixes:
            range_users[rng] += 1
        top_range.append(max(p.prefixes, key=p.prefixes.__getitem__) if p.prefixes else None)
    flatness = 0.0
    z_mean = z_sum / m if m else 1.0
    if m and e_sum > 0:
        # Pooled estimate of the members' squared mean resultant length of hour-of-day: about 0 for flat
        # traffic, 0.1-0.5 for people; its standard error under flat traffic is sqrt(m) / sum(n - 1).
        r2 = (z_sum - m) / e_sum
        se = math.sqrt(m) / e_sum
        raw = max(-1.0, min(1.0, 1.0 - 2.0 * r2 / settings.diurnal_r2))
        confidence = max(0.0, min(1.0, settings.diurnal_r2 / (4.0 * se)))
        flatness = raw * confidence
    coloc = sum(1 for t in top_range if t is not None and range_users[t] >= 2) / n if n else 0.0
    total_hours = sum(hours)
    active = sum(1 for c in hours if total_hours and c * 48 >= total_hours)
    firsts = [p.first_seen for p in members]
    # Campaigns keep every account at a similar rate, just under its limit; independent users' rates are
    # heavy-tailed. Rates are requests per active hour (an hour at least) of accounts with 3 requests or more
    # (one or two requests say nothing about a rate); the spread of their logarithm is mapped to +1 at 0.15
    # decades or less, -1 at 0.55 or more, and discounted when fewer than ten accounts qualify.
    logs = [
        math.log10(p.requests / max(1.0, (p.last_seen - p.first_seen) / 3600.0))
        for p in members
        if p.requests >= 3
    ]
    spread = 0.0
    if len(logs) >= 2:
        mean = sum(logs) / len(logs)
        spread = math.sqrt(sum((x - mean) ** 2 for x in logs) / len(logs))
    uniformity = max(-1.0, min(1.0, (0.35 - spread) / 0.2)) * min(1.0, (len(logs) - 1) / 9.0) if logs else 0.0
    part_users: Counter[int] = Counter()
    for p in members:
        dom = dominant[p.account] if dominant is not None else dominant_parts(p, settings.dominant_share)
        part_users.update(dom)
    return GroupFeatures(
        size=n,
        requests=requests,
        tokens=tokens,
        concentration=conc / n if n else 0.0,
        flatness=flatness,
        rayleigh=z_mean,
        elicitation=elic / elic_n if elic_n else 0.0,
        colocation=coloc,
        shared_ranges=sum(1 for c in range_users.values() if c >= 2),
        conversation=conv / n if n else 0.0,
        first_seen_span=(max(firsts) - min(firsts)) if firsts else 0.0,
        rate_spread=spread,
        uniformity=uniformity,
        active_hours=active,
        shared_parts=sum(1 for c in part_users.values() if c >= 2),
    )


def effective_colocation(f: GroupFeatures) -> float:
    """Colocation as evidence: a single shared range counts half (it may be one carrier NAT or one office
    that a few unrelated users happen to share); a pool of two or more shared ranges counts fully."""
    return f.colocation * min(1.0, f.shared_ranges / 2.0)


def score_features(f: GroupFeatures, settings: LinkageSettings) -> float:
    """Logistic combination of the features: 0..1, monotone in each feature's weighted direction.

    Content alone cannot convict: without evidence of coordination (flatness at least
    ``coordination_flatness``, or shared address ranges: :func:`effective_colocation` at least
    ``coordination_colocation``) the score is capped at ``uncoordinated_cap``. A popular product whose
    system prompt asks for step-by-step reasoning looks exactly like a campaign's template until its users'
    hours and addresses are seen; it is how they behave together that tells them apart.

    ``uniformity`` (similar per-account rates) is measured and reported but weighted 0 by default: it
    widened the campaigns' margins, but groups of low-volume honest users (a few requests each over days)
    look just as uniform, and it lifted a group of public-jailbreak pasters from 0.34 to 0.63.
    """
    w = settings.weights
    size_term = min(1.0, math.log10(max(1, f.size)) / 2.0)
    logit = settings.bias
    logit += w.get("concentration", 0.0) * f.concentration
    logit += w.get("flatness", 0.0) * f.flatness
    logit += w.get("elicitation", 0.0) * f.elicitation
    coloc = effective_colocation(f)
    logit += w.get("colocation", 0.0) * coloc
    logit += w.get("conversation", 0.0) * f.conversation
    logit += w.get("size", 0.0) * size_term
    logit += w.get("uniformity", 0.0) * f.uniformity
    score = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))
    if f.flatness < settings.coordination_flatness and coloc < settings.coordination_colocation:
        score = min(score, settings.uncoordinated_cap)
    return score


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def evidence_lines(f: GroupFeatures, exclusive: float | None = None) -> list[str]:
    """Human-readable evidence, e.g. "412 accounts, first seen over 3.0 days"."""
    lines = [f"{f.size} accounts, first seen over {_duration(f.first_seen_span)}, {f.requests} requests"]
    share = f"{f.concentration:.0%} of their requests use the shared template ({f.shared_parts} parts)"
    if exclusive is not None:
        share += f", {exclusive:.0%} of its users are in this cluster"
    lines.append(share)
    if f.flatness > 0.3:
        lines.append(f"flat around the clock (active {f.active_hours}/24 h, Rayleigh {f.rayleigh:.2f})")
    elif f.flatness < -0.3:
        lines.append(f"human hours (active {f.active_hours}/24 h, Rayleigh {f.rayleigh:.2f})")
    if f.shared_ranges:
        lines.append(f"{f.shared_ranges} shared address ranges, {f.colocation:.0%} of accounts co-located")
    if f.uniformity > 0.3:
        lines.append(f"accounts run at similar rates (spread {f.rate_spread:.2f} decades)")
    if f.elicitation >= 0.3:
        lines.append(f"asks for written-out reasoning (elicitation {f.elicitation:.2f})")
    if f.conversation >= 0.2:
        lines.append(f"{f.conversation:.0%} of requests continue a conversation")
    return lines


@dataclass(frozen=True, slots=True)
class Cluster:
    """One scored component: ``id`` is stable while its template persists (its most common key)."""

    id: str
    accounts: tuple[str, ...]
    score: float
    features: GroupFeatures
    parts: tuple[int, ...]  # parts dominant for two or more members, smallest first
    evidence: tuple[str, ...]
    part_users: tuple[int, ...] = ()  # members for which each of ``parts`` is dominant (same order)


def _attach(
    groups: list[list[str]],
    dominant: Mapping[str, list[int]],
    ranges: Mapping[str, Iterable[str]],
    settings: LinkageSettings,
) -> list[list[str]]:
    """Second pass: move loose accounts into the larger group whose template they use.

    ``groups`` is sorted largest first. A part *belongs* to a large group when it is dominant for at least
    a fifth of that group's members (and two of them) and for two or more members of no other group: a
    template specific to one group, unlike a generic phrase many unrelated groups use. An account of a
    group smaller than ``min_cluster`` joins the large group owning ``min(2, len(dominant))`` of its
    dominant parts. Any account of a smaller group also joins a group at least twice its own group's
    size when one of its dominant parts is dominant for a fifth of that group's members *and* it sends
    from an address range that group's members use (template plus shared infrastructure). This catches
    short-lived accounts whose few, noisy requests gave them signature keys of their own.
    """
    n_groups = len(groups)
    counts: list[Counter[int]] = []
    owners: dict[int, set[int]] = defaultdict(set)
    for gi, g in enumerate(groups):
        c: Counter[int] = Counter()
        for a in g:
            c.update(dominant[a])
        counts.append(c)
        for part, n in c.items():
            if n >= 2:
                owners[part].add(gi)
    large = [gi for gi in range(n_groups) if len(groups[gi]) >= settings.min_cluster]
    common: dict[int, list[int]] = defaultdict(list)  # part -> large groups where it is common
    belongs: dict[int, int] = {}
    for gi in large:
        need = max(2.0, 0.2 * len(groups[gi]))
        for part, n in counts[gi].items():
            if n >= need:
                common[part].append(gi)
                if owners[part] == {gi}:
                    belongs[part] = gi
    if not common:
        return groups
    range_groups: dict[str, set[int]] = defaultdict(set)
    for gi in large:
        for a in groups[gi]:
            for rng in ranges[a]:
                range_groups[rng].add(gi)
    out: list[list[str]] = [[] for _ in groups]
    for gi, g in enumerate(groups):
        size = len(g)
        for a in g:
            dom = dominant[a]
            target = None
            if size < settings.min_cluster:
                votes: Counter[int] = Counter(belongs[p] for p in dom if p in belongs)
                if votes:
                    best, n = votes.most_common(1)[0]
                    if n >= min(2, len(dom)):
                        target = best
            if target is None:
                near = {t for r in ranges[a] for t in range_groups.get(r, ())}
                candidates = [
                    t for p in dom for t in common.get(p, ()) if t in near and len(groups[t]) >= 2 * size
                ]
                if candidates:
                    target = min(candidates)  # the largest (groups are sorted largest first)
            out[gi if target is None else target].append(a)
    return [g for g in out if g]


def cluster_accounts(
    profiles: Iterable[AccountProfile],
    settings: LinkageSettings,
    cache: dict[str, tuple[int, list[int], list[tuple[int, int]]]] | None = None,
) -> list[Cluster]:
    """Link accounts by signature keys and score every component of ``min_cluster`` or more accounts.

    Deterministic: the same profiles give the same clusters, ids and scores whatever their order.
    ``cache`` (account -> (requests, dominant parts, keys)) lets a caller that re-clusters often skip the
    accounts that sent nothing since the last run.
    """
    uf = UnionFind()
    by_account: dict[str, AccountProfile] = {}
    keys_of: dict[str, list[tuple[int, int]]] = {}
    dominant: dict[str, list[int]] = {}
    for p in profiles:
        hit = cache.get(p.account) if cache is not None else None
        if hit is not None and hit[0] == p.requests:
            dom, keys = hit[1], hit[2]
        else:
            dom = dominant_parts(p, settings.dominant_share)
            keys = signature_keys(dom, settings.signature_parts) if dom else []
            if cache is not None:
                cache[p.account] = (p.requests, dom, keys)
        if not dom:
            continue
        by_account[p.account] = p
        keys_of[p.account] = keys
        dominant[p.account] = dom
        node = ("a", p.account)
        for key in keys:
            uf.union(node, ("k", key))
    groups = [
        sorted(str(x[1]) for x in nodes if isinstance(x, tuple) and x[0] == "a")
        for nodes in uf.groups().values()
    ]
    groups = [g for g in groups if g]
    groups.sort(key=lambda g: (-len(g), g[0]))
    groups = _attach(groups, dominant, {a: list(p.prefixes) for a, p in by_account.items()}, settings)
    clusters: list[Cluster] = []
    for accounts in groups:
        if len(accounts) < settings.min_cluster:
            continue
        accounts = sorted(accounts)
        members = [by_account[a] for a in accounts]
        key_users: Counter[tuple[int, int]] = Counter()
        part_users: Counter[int] = Counter()
        for a in accounts:
            key_users.update(set(keys_of[a]))
            part_users.update(dominant[a])
        shared = sorted(part for part, c in part_users.items() if c >= 2)
        if not shared:
            continue
        feats = group_features(members, shared, settings, dominant)
        best_key = min(key_users, key=lambda k: (-key_users[k], k))
        cid = f"c{best_key[0]:016x}{best_key[1]:016x}"
        clusters.append(
            Cluster(
                id=cid,
                accounts=tuple(accounts),
                score=score_features(feats, settings),
                features=feats,
                parts=tuple(shared),
                evidence=tuple(evidence_lines(feats)),
                part_users=tuple(part_users[p] for p in shared),
            )
        )
    clusters.sort(key=lambda c: (-c.score, c.id))
    return clusters
