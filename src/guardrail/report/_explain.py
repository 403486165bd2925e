""" "Why was this key throttled?": what the engine's shared state says about one account, server-side.

``explain_account(store, account)`` reads the account's profile, its published cluster and verdict, and the
statistics of the template parts its traffic carries, from any engine store (memory in-process, or Redis,
which every worker shares). It answers from the current state, the same state the next decision will read;
refused clients are never told any of this (they get a generic message), operators are.

The engine is imported lazily: ``guardrail.engine`` itself imports this package for redaction.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from guardrail._hashing import default_secret, hash_identifier
from guardrail.report._text import format_figure

__all__ = ["explain_account", "explain_text"]

_DIGEST = re.compile(r"^[0-9a-f]{32}$")


def _profile_of(store: Any, account: str) -> Any:
    """The account's profile: a direct lookup when the store has one, else a scan (off the hot path)."""
    lookup = getattr(store, "profile", None)
    if callable(lookup):
        return lookup(account)
    for profile in store.profiles():
        if profile.account == account:
            return profile
    return None


def explain_account(
    store: Any,
    account: str,
    *,
    secret: bytes | str | None = None,
    hashed: bool | None = None,
    prefix: str | None = None,
) -> dict[str, Any]:
    """A JSON-able explanation of ``account`` (a raw API key / account id, or its keyed hash).

    ``store`` is an engine store or a storage URI (``"redis://host:6379/0"``, with the deployment's key
    ``prefix`` when it is not the default). ``hashed`` says whether
    ``account`` is already the keyed hash; by default a 32-hex-digit string is taken as one. ``secret`` is
    the deployment's hashing key (default: ``GUARDRAIL_SECRET``), needed to find a raw key's hash.
    """
    if not isinstance(account, str) or not account:
        raise ValueError("account must be a non-empty string (an API key, an account id or its hash)")
    key = default_secret() if secret is None else secret
    key_bytes = key.encode("utf-8") if isinstance(key, str) else key
    is_hash = bool(_DIGEST.match(account)) if hashed is None else hashed
    hid = account if is_hash else hash_identifier(account, key_bytes, namespace="account")
    if not isinstance(store, str):
        return _explain(store, hid)
    from guardrail.engine import open_store

    options: dict[str, Any] = {} if prefix is None else {"prefix": prefix}
    opened = open_store(store, None, **options)
    try:
        return _explain(opened, hid)
    finally:  # a store this call opened is this call's to close (its connection pool)
        opened.close()


def _explain(store: Any, hid: str) -> dict[str, Any]:
    table = store.table()
    cluster_id = table.assignment.get(hid)
    verdict = table.clusters.get(cluster_id) if cluster_id is not None else None
    profile = _profile_of(store, hid)
    out: dict[str, Any] = {
        "account": hid,
        "known": profile is not None,
        "table_version": table.version,
        "cluster": None,
        "profile": None,
        "templates": [],
        "verdict": "allow",
        "reasons": [],
    }
    if verdict is not None:
        summary = dict(verdict.summary)
        out["cluster"] = {
            "id": verdict.cluster,
            "action": verdict.action,
            "score": round(float(verdict.score), 4),
            "size": verdict.size,
            "evidence": [str(e) for e in summary.pop("evidence", [])],
            "summary": summary,
        }
        out["verdict"] = verdict.action
        if verdict.action != "allow":
            out["reasons"].append(
                f"member of cluster {verdict.cluster} ({verdict.size} accounts, score {verdict.score:.2f}), "
                f"whose verdict is {verdict.action}"
            )
        else:
            out["reasons"].append(f"linked to cluster {verdict.cluster}, whose verdict is allow")
    if profile is not None:
        requests = int(profile.requests)
        out["profile"] = {
            "requests": requests,
            "first_seen": profile.first_seen,
            "last_seen": profile.last_seen,
            "tokens": int(profile.tokens),
            "templated_share": round(profile.templated / requests, 3) if requests else 0.0,
            "conversation_share": round(profile.conversations / requests, 3) if requests else 0.0,
            # mean over the scored requests, as the engine's linkage reads it (not over all requests)
            "elicitation": (
                round(profile.elicitation_sum / profile.elicitation_n, 3) if profile.elicitation_n else 0.0
            ),
            "active_hours": sum(1 for h in profile.hours if h),
            "address_ranges": len(profile.prefixes),
        }
        parts = sorted(profile.parts.items(), key=lambda kv: (-kv[1], kv[0]))
        stats: Mapping[int, Any] = store.templates([p for p, _ in parts]) if parts else {}
        flagged_parts: Mapping[int, str] = table.parts
        for part, n in parts:
            st = stats.get(part)
            flagged_by = flagged_parts.get(part)
            row: dict[str, Any] = {
                "template": f"{part:016x}",
                "requests_from_account": n,
                "share_of_account": round(profile.share(part), 3),
                "accounts": getattr(st, "accounts", None),
                "requests": getattr(st, "requests", None),
                "flagged_cluster": flagged_by,
            }
            out["templates"].append(row)
            if flagged_by is not None and (verdict is None or flagged_by != verdict.cluster):
                out["reasons"].append(
                    f"{row['share_of_account']:.0%} of its requests use template {part:016x}, which "
                    f"characterises flagged cluster {flagged_by} "
                    "(a new account on it joins that cluster's limit)"
                )
    if not out["reasons"]:
        out["reasons"].append(
            "not in any flagged cluster: a refusal, if any, came from the account's own limit"
            if profile is not None
            else "no profile: the store has not seen this account (wrong key, secret or storage?)"
        )
    return out


def _when(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return "n/a"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def explain_text(explanation: Mapping[str, Any]) -> str:
    """A person-readable rendering of ``explain_account``'s result."""
    lines = [f"account {explanation['account']}  verdict: {explanation['verdict']}"]
    lines.extend(f"  - {r}" for r in explanation["reasons"])
    profile = explanation.get("profile")
    if profile:
        lines.append("profile:")
        for key, value in profile.items():
            shown = _when(value) if key.endswith("_seen") else format_figure(value)
            lines.append(f"  {key}: {shown}")
    cluster = explanation.get("cluster")
    if cluster:
        lines.append(
            f"cluster {cluster['id']}: {cluster['size']} accounts, score {format_figure(cluster['score'])}, "
            f"verdict {cluster['action']}"
        )
        lines.extend(f"  - {e}" for e in cluster["evidence"])
    if explanation.get("templates"):
        lines.append("templates (most used first):")
        for t in explanation["templates"]:
            flag = f", flagged for cluster {t['flagged_cluster']}" if t["flagged_cluster"] else ""
            lines.append(
                f"  {t['template']}: {t['requests_from_account']} of its requests "
                f"({t['share_of_account']:.0%}), "
                f"shared by {format_figure(t['accounts'])} accounts{flag}"
            )
    return "\n".join(lines)
