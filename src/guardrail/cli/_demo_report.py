"""The demo's report data: the engine's analysis report, enriched with the replay's tallies and scored
against the simulation's labels.

The clusters are exactly what ``guardrail analyze`` reports (``guardrail.engine.analysis_report``); the demo
adds what only it knows: each cluster's true make-up, the moment it was first refused, the per-population
outcome counts and the timeline. Detection is scored per account, as ``guardrail.engine`` defines it: an
account is *flagged* when it ends the run in a cluster whose verdict is not "allow".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from guardrail.cli._demo_run import DemoRun, median_or_none, percentile, population_order
from guardrail.engine import AccountProfile, analysis_report
from guardrail.report import ClusterRow, ReportData, TemplateRow, redact
from guardrail.report._schema import SCHEMA
from guardrail.report._text import utc_now_iso

__all__ = ["build_report", "short_cluster"]


def short_cluster(cluster_id: str) -> str:
    """Display id of a cluster (ids are ``c`` + 32 hex digits; 8 of them are plenty to tell apart)."""
    return cluster_id[:9]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _pct(num: int, den: int) -> float | None:
    return round(100.0 * num / den, 1) if den else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _templates(
    profiles: list[AccountProfile],
    raw_of: Mapping[str, str],
    samples: Mapping[int, str],
    part_cluster: Mapping[int, str],
    limit: int = 60,
) -> list[TemplateRow]:
    """Template parts shared by two or more accounts: flagged clusters' parts first, then by accounts.

    Honest templates are listed too, on purpose: the table shows that sharing a template is common and
    that what sets a campaign apart is who shares it and how.
    """
    users: dict[int, dict[str, int]] = {}
    shares: dict[int, list[float]] = {}
    for p in profiles:
        for part, n in p.parts.items():
            users.setdefault(part, {})[raw_of.get(p.account, p.account)] = n
            shares.setdefault(part, []).append(p.share(part))
    shared = [part for part, who in users.items() if len(who) >= 2]
    shared.sort(
        key=lambda part: (part not in part_cluster, -len(users[part]), -sum(users[part].values()), part)
    )
    rows: list[TemplateRow] = []
    for part in shared[:limit]:
        who = users[part]
        rows.append(
            TemplateRow(
                id=f"{part:016x}",
                fingerprint=f"{part:016x}",
                accounts=len(who),
                requests=sum(who.values()),
                concentration=round(sum(shares[part]) / len(shares[part]), 3),
                sample=redact(samples.get(part, "")),
                cluster=part_cluster.get(part),
                account_requests=dict(who),
            )
        )
    return rows


def _clusters(run: DemoRun, analysed: list[dict[str, Any]]) -> list[ClusterRow]:
    labels = run.sim.labels["accounts"]
    # The moment a cluster was caught: the engine's first "flagged" event for it (log time), else the
    # first refusal of one of its accounts.
    flagged_at: dict[str, float] = {}
    for event in run.events:
        if event.get("event") == "cluster" and event.get("change") == "flagged":
            cid, ts = str(event.get("cluster")), float(event.get("ts") or 0.0)
            flagged_at[cid] = min(ts, flagged_at.get(cid, ts))
    rows: list[ClusterRow] = []
    for c in analysed:
        members: list[str] = list(c["accounts"])
        pops = Counter(str(labels.get(m, {}).get("population", "unlabelled")) for m in members)
        top, n = pops.most_common(1)[0]
        refused = [
            t.first_refused_ts
            for m in members
            if (t := run.tally.accounts.get(m)) is not None and t.first_refused_ts is not None
        ]
        action = str(c.get("action", "allow"))
        caught = flagged_at.get(c["id"])
        if caught is None and refused:
            caught = min(refused)
        rows.append(
            ClusterRow(
                id=short_cluster(c["id"]),
                label=f"{top} {n}/{len(members)}",
                accounts=members,
                score=round(float(c["score"]), 3),
                action=action,
                caught_at=caught if action != "allow" else None,
                templates=list(c.get("templates", [])),
                requests=int(c.get("requests", 0)),
                reasons=list(c.get("reasons", [])),
                evidence=dict(c.get("evidence", {})),
            )
        )
    rows.sort(key=lambda r: (r.get("action") == "allow", -r.get("score", 0.0), r["id"]))
    return rows


def build_report(run: DemoRun, *, app_description: str, storage: str) -> ReportData:
    """All report sections and headline figures for one demo run."""
    sim = run.sim
    labels: Mapping[str, Any] = sim.labels["accounts"]
    guard = run.guard
    analysed = analysis_report(guard, title="guardrail demo", raw_ids=True)
    flagged = set(analysed["flagged_accounts"])
    clusters = _clusters(run, analysed["clusters"])
    cluster_of = {a: c["id"] for c in clusters for a in c["accounts"]}

    tally = run.tally
    seen = set(tally.accounts)
    campaign = {a for a, info in labels.items() if info.get("campaign")} & seen
    hits = len(flagged & campaign)
    pops = tally.populations(order=population_order())
    campaign_names = {n for n, info in sim.labels["populations"].items() if info["campaign"]}
    camp_req = sum(p["requests"] for p in pops if p["name"] in campaign_names)
    camp_served = sum(p["served"] for p in pops if p["name"] in campaign_names)
    honest_req = sum(p["requests"] for p in pops if p["name"] not in campaign_names)
    honest_refused = sum(p["throttled"] + p["blocked"] for p in pops if p["name"] not in campaign_names)
    limited = [n for a, n in run.limited_after.items() if a in campaign]
    refused_after = [
        t.refused_after for a, t in tally.accounts.items() if a in campaign and t.refused_after is not None
    ]

    figures: dict[str, Any] = {
        "requests replayed": run.requests,
        "accounts (in campaigns)": f"{len(seen):,} ({len(campaign):,})",
        "detection precision (accounts)": _ratio(hits, len(flagged & seen)),
        "detection recall (accounts)": _ratio(hits, len(campaign)),
        "median requests before a campaign account was throttled": median_or_none(limited),
        "campaign accounts throttled": f"{len(limited)} of {len(campaign)}",
        "median requests before a campaign account's first 429/403": median_or_none(refused_after),
        "campaign volume served (%)": _pct(camp_served, camp_req),
        "honest requests refused (%)": _pct(honest_refused, honest_req),
        "added latency p50 (ms)": _round(percentile(run.added_ms, 0.5)),
        "added latency p99 (ms)": _round(percentile(run.added_ms, 0.99)),
        "replay wall time (s)": round(run.wall_seconds, 1),
    }

    # hashed id -> raw: the engine keeps it (keep_samples), as analysis_report(raw_ids=True) reads it
    raw_of = guard.core.raw_ids
    profiles = list(guard.store.profiles())
    table = guard.store.table()
    part_cluster = {part: short_cluster(cid) for part, cid in table.parts.items()}
    templates = _templates(profiles, raw_of, guard.core.samples, part_cluster)
    parts_of = {raw_of.get(p.account, p.account): p.parts for p in profiles}
    accounts = tally.account_rows(cluster_of=cluster_of)
    for row in accounts:
        info = labels.get(row["id"], {})
        row["templates"] = {f"{part:016x}": n for part, n in parts_of.get(row["id"], {}).items()}
        reasons = [f"simulated population: {info.get('population', 'unlabelled')}"]
        if info.get("style"):
            reasons.append(f"campaign style: {info['style']}")
        if row["id"] in run.limited_after:
            reasons.append(f"under a cluster's limit after {run.limited_after[row['id']]} requests")
        if row["id"] in flagged:
            reasons.append(f"flagged at the end of the run: member of cluster {cluster_of[row['id']]}")
        row["reasons"] = reasons
    timeline = tally.timeline(order=population_order())
    timeline["groups"] = {
        "honest populations": [n for n in timeline["series"] if n not in campaign_names],
        "distillation campaigns": [n for n in timeline["series"] if n in campaign_names],
    }
    return ReportData(
        schema=SCHEMA,
        title="guardrail demo",
        generated_at=utc_now_iso(),
        source={
            "kind": "demo",
            "scale": sim.scale,
            "seed": sim.seed,
            "storage": storage,
            "app": app_description,
        },
        figures=figures,
        populations=pops,
        timeline=timeline,
        clusters=clusters,
        templates=templates,
        accounts=accounts,
        notes=[
            "Traffic is simulated (guardrail.simulate); populations are the simulation's truth, which "
            "guardrail never sees.",
            "Precision and recall are per account: flagged = in a cluster whose verdict is not 'allow' at "
            "the end of the run; campaign = the simulation's campaign accounts.",
            "A campaign account counts as throttled from its first request that came under its cluster's "
            "shared token bucket; the bucket answers 429 only once the cluster's combined rate exceeds it.",
            "Added latency = time inside the middleware minus time inside the model app, per request.",
            "Prompt samples are redacted: the first words of a template, the rest masked.",
        ],
    )
