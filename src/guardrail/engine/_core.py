"""What ``Guard`` and ``AsyncGuard`` share: turning facts into an observation, re-clustering into a
published table, and an observed request into a decision. No I/O here: the twins do the store and limiter
calls (sync or async) around these steps.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import xxhash

from guardrail._hashing import default_secret, hash_identifier
from guardrail.limiter import BucketRequest, MultiResult

from ._features import observation, prompt_of
from ._linkage import Cluster, LinkageSettings, cluster_accounts
from ._policy import Policy
from ._types import Action, Decision, Event, RequestFacts, Ticket
from .store import AccountProfile, ClusterTable, ClusterVerdict, Observation, Observed, TemplateStats

__all__ = ["EXTRA_REASON", "Core", "Prepared", "Ticket", "prepare"]

_ALLOW_REASONS: tuple[str, ...] = ()
#: The reason given when a caller's extra bucket (``check(..., extra=...)``) refused the request; the same
#: words as the adapter's ``account_rpm`` quota, which is what such buckets are for.
EXTRA_REASON = "account over its request quota"
_ID_SEED = int.from_bytes(os.urandom(8), "little")
#: Raw ids kept for an offline report at most (beyond it, later accounts are reported by their hash).
_MAX_RAW_IDS = 1_000_000


@dataclass(slots=True)
class Prepared:
    obs: Observation
    text: str
    max_output: int | None
    cost: float
    offline: bool


def prepare(
    facts: RequestFacts, account: str, secret: bytes, policy: Policy, clock: Callable[[], float]
) -> Prepared:
    """The stateless half of a check: extract, reduce and price one request (``account`` already hashed)."""
    offline = facts.ts is not None
    ts = float(facts.ts) if facts.ts is not None else clock()
    prompt = prompt_of(facts.path, facts.body, facts.prompt)
    obs, text = observation(account, ts, prompt, facts.ip, secret)
    max_output = prompt.max_output_tokens if prompt is not None else None
    # Samples are shown redacted (a few opening words), so 160 characters are plenty.
    return Prepared(obs, text[:160], max_output, policy.cost(obs.tokens, max_output), offline)


_NO_TICKET = Ticket((), 0, None)


def _extra_result(result: MultiResult | None, extra: int) -> MultiResult | None:
    """The caller's buckets' share of ``result`` (they come last in the limiter call)."""
    if result is None or extra <= 0:
        return None
    mine = result.results[-extra:]
    return MultiResult(all(r.allowed for r in mine), mine)


class Core:
    """Shared state and logic of a guard (one per ``Guard``)."""

    def __init__(
        self,
        *,
        policy: Policy,
        linkage: LinkageSettings,
        secret: bytes | None,
        on_event: Callable[[Event], None] | None,
        keep_samples: bool,
        clock: Callable[[], float],
        namespace: str = "gr",
    ) -> None:
        self.policy = policy
        self.namespace = namespace
        self.linkage = linkage
        self.secret = secret if secret is not None else default_secret()
        self.on_event = on_event
        self.keep_samples = keep_samples
        self.clock = clock
        self._ids: OrderedDict[int, str] = OrderedDict()
        #: hashed id -> raw id, kept only with keep_samples (offline reports map ids back in memory).
        self.raw_ids: dict[str, str] = {}
        #: part -> redacted-later text sample, kept only with keep_samples.
        self.samples: dict[int, str] = {}
        self.last_clusters: list[Cluster] = []
        self.version = 0
        self.requests = 0
        self.since_recluster = 0
        self.last_recluster_ts: float | None = None
        self._key_cache: dict[str, tuple[int, list[int], list[tuple[int, int]]]] = {}
        self._old_actions: dict[str, str] = {}

    # -- request path ---------------------------------------------------------------------------------
    def account_id(self, raw: str) -> str:
        # The cache is keyed by a per-process seeded digest, never by the raw id (an API key must not sit
        # in memory beyond its request); 128 bits make a collision, and so a wrong account, negligible.
        key = xxhash.xxh3_128_intdigest(raw.encode("utf-8", "surrogatepass"), _ID_SEED)
        cached = self._ids.get(key)
        if cached is None:
            cached = hash_identifier(raw, self.secret, namespace="account")
            self._ids[key] = cached
            if len(self._ids) > 100_000:
                self._ids.popitem(last=False)
            if self.keep_samples and len(self.raw_ids) < _MAX_RAW_IDS:
                self.raw_ids[cached] = raw
        return cached

    def prepare(self, facts: RequestFacts) -> Prepared:
        if not isinstance(facts, RequestFacts):
            raise TypeError(f"check() expects RequestFacts, got {type(facts).__name__}")
        return prepare(facts, self.account_id(facts.account), self.secret, self.policy, self.clock)

    def adopt(self, raw: str, hashed: str) -> None:
        """Record a hash computed elsewhere (a replay worker) so reports can map it back offline."""
        if self.keep_samples and hashed not in self.raw_ids and len(self.raw_ids) < _MAX_RAW_IDS:
            self.raw_ids[hashed] = raw

    def remember_sample(self, prepared: Prepared, observed: Observed) -> None:
        """Offline only: keep the read text of the first request that carried each part (for reports)."""
        if not self.keep_samples or not observed.parts:
            return
        for part in observed.parts:
            if part not in self.samples and len(self.samples) < 50_000:
                self.samples[part] = prepared.text

    def buckets(self, observed: Observed) -> tuple[ClusterVerdict | None, Action, list[str]]:
        """The cluster that governs this request, its action, and the reasons (server-side)."""
        verdict = observed.cluster
        reasons: list[str] = []
        action = Action.ALLOW
        if verdict is not None and verdict.action != Action.ALLOW.value:
            action = Action(verdict.action)
            reasons.append(f"account is in cluster {verdict.cluster} (score {verdict.score:.2f})")
        elif observed.part_cluster is not None and observed.flagged_part is not None:
            pc = observed.part_cluster
            p = observed.profile
            if (
                pc.action != Action.ALLOW.value
                and p.requests <= self.policy.join_max_requests
                and p.share(observed.flagged_part) >= self.policy.join_share
            ):
                verdict = pc
                action = Action(pc.action)
                reasons.append(f"account's traffic uses the template of cluster {pc.cluster}")
        return verdict, action, reasons

    def bucket_requests(
        self, prepared: Prepared, verdict: ClusterVerdict | None, action: Action
    ) -> list[BucketRequest]:
        """The engine's buckets for a request: its cluster's when throttled, then its own."""
        own = self.own_buckets(prepared)
        if action is Action.THROTTLE and verdict is not None:
            key = f"{self.namespace}:cluster:{verdict.cluster}"
            return [BucketRequest(key, self.policy.cluster_limit, prepared.cost), *own]
        return own

    def own_buckets(self, prepared: Prepared) -> list[BucketRequest]:
        """The buckets known before the store answers (the account's own, ``Policy(account_limit=...)``):
        what a store sharing the limiter's Redis can charge in the same round trip as ``observe``."""
        policy = self.policy
        if policy.account_limit is None and policy.range_limit is None:
            return []
        own: list[BucketRequest] = []
        if policy.account_limit is not None:
            key = f"{self.namespace}:acct:{prepared.obs.account}"
            own.append(BucketRequest(key, policy.account_limit, prepared.cost))
        if policy.range_limit is not None and prepared.obs.prefix is not None:
            key = f"{self.namespace}:range:{prepared.obs.prefix}"
            own.append(BucketRequest(key, policy.range_limit, prepared.cost))
        return own

    def decide(
        self,
        prepared: Prepared,
        observed: Observed,
        verdict: ClusterVerdict | None,
        action: Action,
        reasons: list[str],
        charged: list[BucketRequest],
        result: MultiResult | None,
        extra: int = 0,
    ) -> Decision:
        """The decision for one observed request. ``result`` answers ``charged`` followed by ``extra``
        caller buckets (``check(..., extra=...)``), charged all or none in the same limiter call."""
        if result is None and verdict is None and not reasons:
            # The plain allow (nearly every request): no bucket charged, nothing to settle.
            return Decision(
                Action.ALLOW, Action.ALLOW, 0.0, None, None, None, _ALLOW_REASONS,
                {"account": prepared.obs.account}, _NO_TICKET,
            )  # fmt: skip
        would = action
        retry = 0.0
        limit = remaining = reset = None
        if action is Action.THROTTLE:
            would = Action.ALLOW
        if result is not None:
            limit, remaining, reset = result.limit, result.remaining, result.reset_after
            if not result.allowed:
                would = Action.THROTTLE if action is not Action.BLOCK else Action.BLOCK
                retry = result.retry_after
                refused = [i for i, r in enumerate(result.results) if not r.allowed]
                if extra and any(i >= len(result.results) - extra for i in refused):
                    reasons.append(EXTRA_REASON)
                if action is Action.ALLOW:
                    mine = [result.results[i].key for i in refused if i < len(result.results) - extra]
                    ranges = f"{self.namespace}:range:"
                    if any(not key.startswith(ranges) for key in mine):
                        reasons.append("account over its own limit")
                    if any(key.startswith(ranges) for key in mine):
                        reasons.append("address range over its limit")
        final = Action.ALLOW if self.policy.observe_only else would
        evidence: Mapping[str, Any]
        if verdict is None and not reasons:
            evidence = {"account": prepared.obs.account}
        else:
            evidence = {
                "account": prepared.obs.account,
                "cluster": verdict.cluster if verdict else None,
                "score": verdict.score if verdict else None,
                "cluster_action": verdict.action if verdict else None,
                "summary": dict(verdict.summary) if verdict else {},
            }
        assumed = prepared.max_output if prepared.max_output is not None else self.policy.expected_output
        ticket = Ticket(
            tuple(charged) if result is not None and result.allowed else (),
            assumed,
            prepared.obs.ts if prepared.offline else None,
        )
        decision = Decision(
            action=final,
            would_action=would,
            retry_after=retry if final is not Action.ALLOW else 0.0,
            limit=limit,
            remaining=remaining,
            reset_after=reset,
            reasons=tuple(reasons) if reasons else _ALLOW_REASONS,
            evidence=evidence,
            ticket=ticket,
            extra=_extra_result(result, extra),
        )
        if would is not Action.ALLOW and self.on_event is not None:
            self.emit(
                Event(
                    kind="decision",
                    ts=prepared.obs.ts,
                    account=prepared.obs.account,
                    cluster=verdict.cluster if verdict else None,
                    action=would.value,
                    score=verdict.score if verdict else 0.0,
                    data={"retry_after": retry, "observe_only": self.policy.observe_only},
                )
            )
        return decision

    def settle_requests(
        self, decision: Decision, output_tokens: int
    ) -> tuple[list[BucketRequest], float | None]:
        if isinstance(output_tokens, bool) or not isinstance(output_tokens, int) or output_tokens < 0:
            raise ValueError(f"output_tokens must be an int >= 0, got {output_tokens!r}")
        ticket = decision.ticket
        if not isinstance(ticket, Ticket) or not ticket.buckets:
            return [], None
        delta = float(output_tokens - ticket.assumed_output)
        if delta == 0.0:
            return [], None
        return [BucketRequest(b.key, b.limit, delta) for b in ticket.buckets], ticket.ts

    # -- re-clustering --------------------------------------------------------------------------------
    def due(self, ts: float, accounts_hint: int) -> bool:
        """Inline schedule: every ``max(2000, 2 * accounts)`` requests, or after 60 s of log time once
        ``max(500, accounts)`` requests have arrived (a re-clustering visits every profile, so either way
        its cost is amortised to a few profile visits per request however many accounts there are)."""
        self.requests += 1
        self.since_recluster += 1
        if self.last_recluster_ts is None:
            self.last_recluster_ts = ts
        if self.since_recluster >= max(2000, 2 * accounts_hint):
            return True
        return ts - self.last_recluster_ts >= 60.0 and self.since_recluster >= max(500, accounts_hint)

    def build_table(
        self,
        profiles: Iterable[AccountProfile],
        ts: float,
        base_version: int,
        stats: Callable[[list[int]], Mapping[int, TemplateStats]] | None = None,
    ) -> ClusterTable:
        """Cluster, score, apply the policy; ``stats`` looks up template statistics for the flagged
        clusters' characteristic parts (see :meth:`characteristic_parts`)."""
        if len(self._key_cache) > 2_000_000:
            self._key_cache.clear()
        clusters = cluster_accounts(profiles, self.linkage, self._key_cache)
        self.since_recluster = 0
        self.last_recluster_ts = ts
        verdicts: dict[str, ClusterVerdict] = {}
        assignment: dict[str, str] = {}
        parts: dict[int, str] = {}
        for c in clusters:
            f = c.features
            summary = {
                "accounts": f.size,
                "requests": f.requests,
                "concentration": round(f.concentration, 3),
                "flatness": round(f.flatness, 3),
                "elicitation": round(f.elicitation, 3),
                "colocation": round(f.colocation, 3),
                "shared_ranges": f.shared_ranges,
                "conversation": round(f.conversation, 3),
                "evidence": list(c.evidence),
            }
            provisional = ClusterVerdict(c.id, c.score, Action.ALLOW.value, f.size, summary)
            action = self.policy.cluster_action(provisional)
            verdict = ClusterVerdict(c.id, c.score, action.value, f.size, summary)
            verdicts[c.id] = verdict
            for a in c.accounts:
                assignment[a] = c.id
            if action is not Action.ALLOW:
                for part in self.characteristic_parts(c, stats):
                    parts.setdefault(part, c.id)
        self.emit_changes(clusters, verdicts, ts)
        self.last_clusters = clusters
        self.version = max(self.version, base_version) + 1
        return ClusterTable(self.version, verdicts, assignment, parts)

    @staticmethod
    def characteristic_parts(
        c: Cluster, stats: Callable[[list[int]], Mapping[int, TemplateStats]] | None
    ) -> list[int]:
        """The parts that identify a cluster's template: dominant for a fifth of its members, and mostly
        used by them (at least half of all the accounts that ever sent the part, by the template's distinct
        count). A generic phrase that a campaign's template shares with honest prompts fails the second
        test, so an honest newcomer using that phrase never joins the campaign's bucket."""
        need = max(2.0, 0.2 * len(c.accounts))
        candidates = [p for p, n in zip(c.parts, c.part_users, strict=True) if n >= need]
        if stats is None or not candidates:
            return candidates
        found = stats(candidates)
        users = dict(zip(c.parts, c.part_users, strict=True))
        return [p for p in candidates if p not in found or found[p].accounts <= 2 * users[p]]

    def emit_changes(
        self, clusters: list[Cluster], verdicts: Mapping[str, ClusterVerdict], ts: float
    ) -> None:
        if self.on_event is None:
            return
        before = {c.id: c for c in self.last_clusters}
        old_actions = self._old_actions
        new_actions = {cid: v.action for cid, v in verdicts.items()}
        for cid, v in verdicts.items():
            prev = old_actions.get(cid)
            if prev == v.action:
                continue
            if v.action == Action.ALLOW.value and prev is None:
                continue
            kind = "cluster.flagged" if prev in (None, Action.ALLOW.value) else "cluster.changed"
            if v.action == Action.ALLOW.value:
                kind = "cluster.cleared"
            self.emit(Event(kind, ts, None, cid, v.action, v.score, dict(v.summary)))
        for cid, action in old_actions.items():
            if cid not in verdicts and action != Action.ALLOW.value and cid in before:
                self.emit(Event("cluster.cleared", ts, None, cid, Action.ALLOW.value, 0.0, {}))
        self._old_actions = new_actions

    def emit(self, event: Event) -> None:
        hook = self.on_event
        if hook is None:
            return
        try:
            hook(event)
        except Exception:  # a broken hook must never break the request path
            return
