"""Inline SVG charts drawn in Python, so the HTML report needs no script library and no network.

Two charts: traffic over time per population (one line each, vertical markers where a cluster was caught)
and the account-template graph of a cluster (templates in the middle, accounts on a ring around them,
edge width by requests). Every string goes through ``html.escape``; coordinates are rounded to keep the
file small.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

from guardrail.report._escape import esc as escape

__all__ = ["PALETTE", "color_for", "graph_svg", "nice_ticks", "timeline_svg"]

# Colour-blind-friendly (Okabe-Ito), then a few extra.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#8C564B",
    "#7F7F7F",
    "#17BECF",
    "#9467BD",
    "#BCBD22",
    "#2CA02C",
    "#FF7F0E",
    "#1F3A93",
)


def color_for(index: int) -> str:
    """A stable colour for the ``index``-th series."""
    return PALETTE[index % len(PALETTE)]


def _f(x: float) -> str:
    """Compact coordinate."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def nice_ticks(high: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``high`` (1, 2, 5 times a power of ten)."""
    if high <= 1 or not math.isfinite(high):
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    n = math.ceil(high / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _fmt_count(x: float) -> str:
    if x >= 1_000_000:
        return f"{x / 1_000_000:g}M"
    if x >= 1_000:
        return f"{x / 1_000:g}k"
    return f"{x:g}"


def _fmt_time(ts: float, span: float) -> str:
    fmt = "%H:%M" if span <= 86_400 else "%m-%d %H:%M"
    return time.strftime(fmt, time.gmtime(ts))


def timeline_svg(
    series: Mapping[str, Sequence[int]],
    *,
    start: float,
    bucket_seconds: float,
    markers: Sequence[tuple[float, str]] = (),
    colors: Mapping[str, str] | None = None,
    title: str = "",
    width: int = 920,
    height: int = 260,
) -> str:
    """A line per series (counts per bucket), time on x in UTC, with labelled vertical ``markers``."""
    left, right, top, bottom = 56, 16, 24 if title else 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    buckets = max((len(v) for v in series.values()), default=0)
    span = max(buckets, 1) * bucket_seconds
    high = max((max(v, default=0) for v in series.values()), default=0)
    ticks = nice_ticks(float(high))
    y_max = ticks[-1] or 1.0

    def x_of(ts: float) -> float:
        return left + plot_w * min(max((ts - start) / span, 0.0), 1.0)

    def y_of(v: float) -> float:
        return top + plot_h * (1.0 - v / y_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{escape(title or "traffic over time")}</title>'
    ]
    if title:
        out.append(f'<text x="{left}" y="15" class="ct">{escape(title)}</text>')
    for tick in ticks:
        y = _f(y_of(tick))
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y}" y2="{y}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{y}" class="yl">{escape(_fmt_count(tick))}</text>')
    for i in range(6):
        ts = start + span * i / 5
        x = _f(x_of(ts))
        anchor = ' style="text-anchor:start"' if i == 0 else ' style="text-anchor:end"' if i == 5 else ""
        out.append(f'<text x="{x}" y="{height - 10}" class="xl"{anchor}>{escape(_fmt_time(ts, span))}</text>')
    out.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" class="axis"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" class="axis"/>'
    )
    for i, (name, counts) in enumerate(series.items()):
        color = (colors or {}).get(name, color_for(i))
        points = " ".join(
            f"{_f(x_of(start + (j + 0.5) * bucket_seconds))},{_f(y_of(c))}" for j, c in enumerate(counts)
        )
        out.append(
            f'<polyline class="series" data-series="{escape(name)}" fill="none" stroke="{color}" '
            f'stroke-width="1.6" points="{points}"><title>{escape(name)}</title></polyline>'
        )
    for i, (ts, label) in enumerate(sorted(markers)):
        x = _f(x_of(ts))
        short = label if len(label) <= 14 else label[:13] + "\u2026"
        label_y = top + 10 + 11 * (i % 4)  # staggered: labels of clusters caught close together stay legible
        out.append(
            f'<g class="marker"><line x1="{x}" x2="{x}" y1="{top}" y2="{top + plot_h}"/>'
            f'<text x="{_f(x_of(ts) + 3)}" y="{label_y}" class="ml">{escape(short)}</text>'
            f"<title>{escape(label)} caught at {escape(_fmt_time(ts, 2 * 86_400))} UTC</title></g>"
        )
    out.append("</svg>")
    return "".join(out)


def graph_svg(
    cluster_id: str,
    accounts: Sequence[str],
    templates: Sequence[str],
    edges: Mapping[tuple[str, str], int],
    *,
    size: int = 300,
) -> str:
    """Bipartite account-template graph of one cluster: templates inside, accounts on the outer ring.

    ``edges`` maps (account, template) to requests; edge width grows with the log of the count.
    """
    cx = cy = size / 2
    r_out, r_in = size / 2 - 18, (size / 6 if len(templates) > 1 else 0.0)
    pos: dict[str, tuple[float, float]] = {}
    for i, account in enumerate(accounts):
        a = 2 * math.pi * i / max(len(accounts), 1) - math.pi / 2
        pos["a:" + account] = (cx + r_out * math.cos(a), cy + r_out * math.sin(a))
    for i, template in enumerate(templates):
        a = 2 * math.pi * i / max(len(templates), 1)
        pos["t:" + template] = (cx + r_in * math.cos(a), cy + r_in * math.sin(a))
    top = max(edges.values(), default=1) or 1
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" viewBox="0 0 {size} {size}" '
        f'width="{size}" height="{size}" data-cluster="{escape(cluster_id)}">'
        f"<title>accounts and templates of cluster {escape(cluster_id)}</title>"
    ]
    for (account, template), count in edges.items():
        pa, pt = pos.get("a:" + account), pos.get("t:" + template)
        if pa is None or pt is None or count <= 0:
            continue
        w = 0.5 + 2.5 * math.log1p(count) / math.log1p(top)
        out.append(
            f'<line class="edge" x1="{_f(pa[0])}" y1="{_f(pa[1])}" x2="{_f(pt[0])}" y2="{_f(pt[1])}" '
            f'stroke-width="{_f(w)}"><title>{escape(account)} \u2192 {escape(template)}: '
            f"{count} requests</title></line>"
        )
    for account in accounts:
        x, y = pos["a:" + account]
        out.append(
            f'<circle class="acct" cx="{_f(x)}" cy="{_f(y)}" r="5"><title>account {escape(account)}</title>'
            "</circle>"
        )
    for template in templates:
        x, y = pos["t:" + template]
        out.append(
            f'<rect class="tmpl" x="{_f(x - 7)}" y="{_f(y - 7)}" width="14" height="14">'
            f"<title>template {escape(template)}</title></rect>"
        )
    out.append("</svg>")
    return "".join(out)
