"""Plain-text rendering of a report: the summary a person reads at a glance in a terminal.

It reads the same ``ReportData`` as the HTML renderer, so the terminal and the file never disagree.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from guardrail.report._schema import ReportData, validate_report

__all__ = ["format_figure", "format_table", "summary_text"]


def format_figure(value: Any, name: str = "") -> str:
    """A headline number for people: thousands separators, three significant digits, "n/a" for None;
    a figure whose ``name`` ends with "(%)" is a percentage, shown with one decimal."""
    if value is None:
        return "n/a"
    if name.endswith("(%)") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.1f}%"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if 0.0 <= value <= 1.0:
            return f"{value:.3f}"
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, indent: str = "  ") -> str:
    """A fixed-width table; numbers right-aligned, text left-aligned."""
    cells = [[format_figure(c) if not isinstance(c, str) else c for c in row] for row in rows]
    numeric = [
        all(not isinstance(row[i], str) for row in rows) if rows else False for i in range(len(headers))
    ]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def fmt(row: Sequence[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)]
        return (indent + "  ".join(parts)).rstrip()

    lines = [fmt(list(headers)), indent + "  ".join("-" * w for w in widths)]
    lines.extend(fmt(r) for r in cells)
    return "\n".join(lines)


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def _evidence_line(evidence: Mapping[str, Any], limit: int = 4) -> str:
    items = []
    for key, value in list(evidence.items())[:limit]:
        shown = format_figure(value) if not isinstance(value, (list, dict)) else f"{len(value)} items"
        items.append(f"{key}={shown}")
    return ", ".join(items)


def summary_text(data: ReportData | Mapping[str, Any], *, max_clusters: int = 6, max_reasons: int = 4) -> str:
    """The at-a-glance summary: headline figures, populations, and the clusters (in the order given, the
    producer puts the most important first) with their first ``max_reasons`` reasons."""
    report = validate_report(data)
    out = [report["title"], "=" * len(report["title"])]
    figures = report.get("figures", {})
    if figures:
        width = max(len(k) for k in figures)
        out.append("")
        out.extend(f"  {name.ljust(width)}  {format_figure(v, name)}" for name, v in figures.items())
    pops = report.get("populations", [])
    if pops:
        out += ["", "Requests by population:"]
        rows = [
            [
                p["name"],
                p["requests"],
                p["served"],
                p["throttled"],
                p["blocked"],
                _pct(p["served"], p["requests"]),
            ]
            for p in pops
        ]
        out.append(
            format_table(["population", "requests", "served", "throttled", "blocked", "served %"], rows)
        )
    clusters = report.get("clusters", [])
    flagged = sum(1 for c in clusters if c.get("action", "allow") != "allow")
    out += ["", f"Clusters found: {len(clusters)} ({flagged} flagged)"]
    for c in clusters[:max_clusters]:
        label = f" ({c['label']})" if c.get("label") else ""
        score = f", score {format_figure(c['score'])}" if "score" in c else ""
        verdict = f" -> {c['action']}" if c.get("action") else ""
        out.append(f"  {c['id']}{label}: {len(c['accounts'])} accounts{score}{verdict}")
        if c.get("reasons"):
            out.extend("      " + reason for reason in c.get("reasons", [])[:max_reasons])
        elif c.get("evidence"):
            out.append("      evidence: " + _evidence_line(c.get("evidence", {})))
    if len(clusters) > max_clusters:
        out.append(f"  ... and {len(clusters) - max_clusters} more")
    for note in report.get("notes", []):
        out.append(f"note: {note}")
    if "generated_at" in report:
        out.append(f"(generated {report['generated_at']})")
    return "\n".join(out)


def utc_now_iso() -> str:
    """Current UTC time as ISO 8601 with a Z, for ``generated_at``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
