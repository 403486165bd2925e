"""The analysis report as plain data: clusters with their evidence, and the templates that define them.

One structure feeds ``guardrail analyze --format text|json`` and the HTML report (``guardrail.report``
schema ``guardrail.report/1``). Identifiers are keyed hashes unless the caller holds the raw ids in memory
(offline analysis of its own log) and asks for them; samples are always redacted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guardrail.report._redact import redact

from ._types import Action

if TYPE_CHECKING:
    from ._guard import AsyncGuard, Guard

__all__ = ["analysis_report"]


def analysis_report(
    guard: Guard | AsyncGuard,
    *,
    title: str = "guardrail analysis",
    raw_ids: bool = False,
    max_templates: int = 50,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the report from the guard's last re-clustering (call ``recluster`` first for a fresh one).

    ``flagged_accounts``: accounts of clusters whose policy action is not "allow" (sorted). ``clusters``:
    every cluster of ``min_cluster`` or more accounts, highest score first, each with ``accounts``,
    ``score``, ``action``, ``evidence`` (numbers) and ``reasons`` (sentences). ``templates``: the shared
    template parts of those clusters with their running statistics and a redacted sample when kept.
    """
    core = guard.core
    table = guard.store.table()
    names = core.raw_ids if raw_ids else {}

    def show(account: str) -> str:
        return names.get(account, account)

    clusters: list[dict[str, Any]] = []
    flagged: set[str] = set()
    template_rows: list[dict[str, Any]] = []
    reps: list[tuple[int, str, float]] = []
    for c in core.last_clusters:
        verdict = table.clusters.get(c.id)
        action = verdict.action if verdict is not None else Action.ALLOW.value
        shown = sorted(show(a) for a in c.accounts)
        if action != Action.ALLOW.value:
            flagged.update(shown)
        # The cluster's most characteristic part: dominant for the most members (smallest hash on ties).
        rep = (
            min(zip(c.parts, c.part_users, strict=True), key=lambda pu: (-pu[1], pu[0]))[0]
            if c.parts
            else None
        )
        if rep is not None:
            reps.append((rep, c.id, c.features.concentration))
        clusters.append(
            {
                "id": c.id,
                "accounts": shown,
                "score": round(c.score, 4),
                "action": action,
                "requests": c.features.requests,
                "templates": [f"{p:016x}" for p in c.parts[:5]],
                "reasons": list(c.evidence),
                "evidence": c.features.as_dict(),
            }
        )
    reps = reps[:max_templates]
    stats = guard.store.templates([r[0] for r in reps]) if hasattr(guard.store, "templates") else {}
    for part, cid, conc in reps:
        st = stats.get(part)
        row: dict[str, Any] = {
            "id": f"{part:016x}",
            "fingerprint": f"{part:016x}",
            "cluster": cid,
            "concentration": round(conc, 4),
        }
        if st is not None:
            row["accounts"] = st.accounts
            row["requests"] = st.requests
            row["first_ts"] = st.first_seen
            row["last_ts"] = st.last_seen
        sample = core.samples.get(part)
        if sample is not None:
            row["sample"] = redact(sample)
        template_rows.append(row)
    report: dict[str, Any] = {
        "title": title,
        "schema": "guardrail.report/1",
        "flagged_accounts": sorted(flagged),
        "clusters": clusters,
        "templates": template_rows,
        "figures": {
            "requests": core.requests,
            "clusters": len(clusters),
            "flagged_clusters": sum(1 for c in clusters if c["action"] != Action.ALLOW.value),
            "flagged_accounts": len(flagged),
        },
    }
    if source is not None:
        report["source"] = source
    return report
