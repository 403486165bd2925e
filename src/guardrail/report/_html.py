"""The self-contained HTML report: one file, opened from disk, with no network access at all.

CSS is inline, charts are SVG drawn in Python (``_svg``), and the only script is a few lines that filter the
account table. Every string from the data is escaped (account ids and templates are attacker-chosen text)
and prompt samples are redacted again here, whatever the caller passed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from guardrail.report._escape import esc
from guardrail.report._redact import redact
from guardrail.report._schema import (
    AccountRow,
    ClusterRow,
    ReportData,
    TemplateRow,
    Timeline,
    validate_report,
)
from guardrail.report._svg import color_for, graph_svg, timeline_svg

__all__ = ["render_html"]

_DOT = " \u00b7 "

_CSS = """
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--bg:#fff;--soft:#f6f8fa;--bad:#cf222e;--warn:#9a6700}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;max-width:1100px;padding:20px 24px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);
padding-bottom:4px}h3{font-size:14px;margin:12px 0 4px}
.meta{color:var(--muted);font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;min-width:150px;background:var(--soft)}
.card .v{font-size:20px;font-weight:600}.card .k{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.sample{color:var(--muted);font-style:italic}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;margin:4px 0}
.legend span::before{content:"";display:inline-block;width:12px;height:3px;margin-right:5px;
vertical-align:middle;background:var(--c)}
svg.chart{max-width:100%;height:auto;display:block}
svg .grid{stroke:#eaeef2}svg .axis{stroke:#8c959f}
svg .yl{font-size:10px;fill:var(--muted);text-anchor:end;dominant-baseline:middle}
svg .xl{font-size:10px;fill:var(--muted);text-anchor:middle}svg .ct{font-size:12px;font-weight:600}
svg .marker line{stroke:var(--bad);stroke-dasharray:4 3}
svg .ml{font-size:10px;fill:var(--bad);paint-order:stroke;stroke:#fff;stroke-width:3px}
.graphs{display:flex;flex-wrap:wrap;gap:16px}
.graphs figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:6px}
.graphs figcaption{font-size:12px;color:var(--muted);max-width:300px}
svg.graph .edge{stroke:#8c959f;stroke-opacity:.55}svg.graph .acct{fill:#0072B2}
svg.graph .tmpl{fill:#D55E00}
details summary{cursor:pointer}details ul{margin:4px 0 4px 18px;padding:0}
.pill{display:inline-block;border-radius:10px;padding:0 7px;font-size:11px;background:var(--soft);
border:1px solid var(--line)}.pill.bad{color:var(--bad);border-color:var(--bad)}
input[type=search]{width:320px;padding:4px 8px;border:1px solid var(--line);border-radius:4px}
.note{color:var(--muted);font-size:12px}
"""

_JS = """
(function(){
  var box=document.getElementById('acct-filter');
  var rows=document.querySelectorAll('#accounts tbody tr');
  var shown=document.getElementById('acct-shown');
  if(!box||!shown){return;}
  box.addEventListener('input',function(){
    var q=box.value.toLowerCase(),n=0;
    for(var i=0;i<rows.length;i++){
      var hit=rows[i].getAttribute('data-search').indexOf(q)>=0;
      rows[i].style.display=hit?'':'none'; if(hit){n++;}
    }
    shown.textContent=String(n);
  });
})();
"""


def _e(value: object) -> str:
    return esc(value)


def _num(value: object) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "\u2013"


def _ts(value: float | None) -> str:
    if value is None:
        return "\u2013"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))


def _figure_value(value: Any, name: str) -> str:
    if name.endswith("(%)") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.1f}%"
    if isinstance(value, float) and 0.0 <= value <= 1.0:
        return f"{value:.3f}"
    return _num(value)


def _cards(figures: Mapping[str, Any]) -> str:
    parts = ['<div class="cards" id="figures">']
    for name, value in figures.items():
        parts.append(
            f'<div class="card"><div class="v">{_e(_figure_value(value, name))}</div>'
            f'<div class="k">{_e(name)}</div></div>'
        )
    parts.append("</div>")
    return "".join(parts)


def _table(
    table_id: str, headers: Sequence[tuple[str, bool]], rows: Iterable[Sequence[str]], *, raw: bool = False
) -> str:
    """``headers`` = (label, numeric); cells are escaped unless ``raw`` (then the caller escaped them)."""
    out = [f'<table id="{_e(table_id)}"><thead><tr>']
    for label, numeric in headers:
        out.append(f'<th class="n">{_e(label)}</th>' if numeric else f"<th>{_e(label)}</th>")
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for (_, numeric), cell in zip(headers, row, strict=False):
            text = cell if raw else _e(cell)
            out.append(f'<td class="n">{text}</td>' if numeric else f"<td>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _populations(data: ReportData) -> str:
    pops = data.get("populations", [])
    if not pops:
        return ""
    rows = [
        [
            p["name"],
            _num(p["requests"]),
            _num(p["served"]),
            _num(p["throttled"]),
            _num(p["blocked"]),
            _pct(p["served"], p["requests"]),
        ]
        for p in pops
    ]
    headers = [
        ("population", False),
        ("requests", True),
        ("served", True),
        ("throttled", True),
        ("blocked", True),
        ("served share", True),
    ]
    return "<h2>Populations</h2>" + _table("populations", headers, rows)


def _series_colors(data: ReportData) -> dict[str, str]:
    names: list[str] = [p["name"] for p in data.get("populations", [])]
    tl = data.get("timeline")
    if tl is not None:
        names.extend(n for n in tl["series"] if n not in names)
    return {name: color_for(i) for i, name in enumerate(names)}


def _timeline(data: ReportData) -> str:
    tl = data.get("timeline")
    if tl is None or not tl["series"]:
        return ""
    colors = _series_colors(data)
    markers: list[tuple[float, str]] = []
    for c in data.get("clusters", []):
        caught = c.get("caught_at")
        if caught is not None:
            markers.append((caught, c.get("label") or c["id"]))
    legend = "".join(
        f'<span style="--c:{colors.get(name, "#000")}">{_e(name)}</span>' for name in tl["series"]
    )
    minutes = tl["bucket_seconds"] / 60
    every = f"{minutes:g} min" if minutes < 120 else f"{minutes / 60:g} h"
    groups = tl.get("groups") or {"all requests": list(tl["series"])}
    charts = []
    for group, names in groups.items():
        series = {n: tl["series"][n] for n in names if n in tl["series"]}
        if series:
            charts.append(_chart(series, tl, colors, markers, f"{group}: requests per {every}", 240))
    charts.append(
        _chart(tl["refused"], tl, colors, markers, f"refused (throttled + blocked) per {every}", 200)
    )
    return (
        "<h2>Traffic over time</h2>"
        '<p class="note">Requests per time bucket by population (UTC); red dashed lines mark the moment '
        "each flagged cluster was caught.</p>"
        f'<div class="legend">{legend}</div>' + "".join(charts)
    )


def _chart(
    series: Mapping[str, list[int]],
    tl: Timeline,
    colors: Mapping[str, str],
    markers: list[tuple[float, str]],
    title: str,
    height: int,
) -> str:
    return timeline_svg(
        series,
        start=tl["start"],
        bucket_seconds=tl["bucket_seconds"],
        markers=markers,
        colors=colors,
        title=title,
        height=height,
    )


def _cluster_edges(
    cluster: ClusterRow, templates: Mapping[str, TemplateRow], accounts: Mapping[str, AccountRow]
) -> dict[tuple[str, str], int]:
    members = set(cluster["accounts"])
    edges: dict[tuple[str, str], int] = {}
    for tid in cluster.get("templates", []):
        row = templates.get(tid)
        for account, n in (row.get("account_requests", {}) if row else {}).items():
            if account in members:
                edges[(account, tid)] = n
    for account in cluster["accounts"]:
        acct = accounts.get(account)
        for tid, n in (acct.get("templates", {}) if acct else {}).items():
            edges.setdefault((account, tid), n)
    return edges


def _verdict(action: str | None) -> str:
    if not action:
        return ""
    cls = "pill" if action == "allow" else "pill bad"
    return f'<span class="{cls}">{_e(action)}</span>'


def _clusters(data: ReportData, *, max_rows: int, max_graphs: int, max_nodes: int) -> str:
    clusters = data.get("clusters", [])
    if not clusters:
        return "<h2>Clusters</h2><p>No cluster of linked accounts was found.</p>"
    rows = []
    for c in clusters[:max_rows]:
        reasons = ", ".join(c.get("reasons", []))
        rows.append(
            [
                _e(c["id"]),
                _e(c.get("label", "")),
                _verdict(c.get("action")),
                _e(_num(len(c["accounts"]))),
                _e(_num(c.get("requests"))),
                _e(_num(c.get("score"))),
                _e(_ts(c.get("caught_at"))),
                "".join(f"<code>{_e(t)}</code> " for t in c.get("templates", [])[:6]),
                _e(reasons),
            ]
        )
    headers = [
        ("cluster", False),
        ("label", False),
        ("verdict", False),
        ("accounts", True),
        ("requests", True),
        ("score", True),
        ("caught at (UTC)", False),
        ("templates", False),
        ("evidence", False),
    ]
    out = ["<h2>Clusters</h2>"]
    if len(clusters) > max_rows:
        out.append(f'<p class="note">Showing the first {max_rows} clusters of {len(clusters)}.</p>')
    out.append(_table("clusters", headers, rows, raw=True))
    evidence = [c for c in clusters[:max_rows] if c.get("evidence")]
    if evidence:
        out.append("<h3>Evidence</h3>")
        for c in evidence:
            items = "".join(
                f"<li><b>{_e(k)}</b>: {_e(_num(v) if not isinstance(v, (list, dict)) else v)}</li>"
                for k, v in c.get("evidence", {}).items()
            )
            out.append(
                f"<details><summary>cluster <code>{_e(c['id'])}</code></summary><ul>{items}</ul></details>"
            )
    templates = {t["id"]: t for t in data.get("templates", [])}
    accounts = {a["id"]: a for a in data.get("accounts", [])}
    largest = sorted(
        clusters, key=lambda c: (c.get("action", "allow") == "allow", -len(c["accounts"]), c["id"])
    )[:max_graphs]
    out.append(
        "<h3>Account\u2013template graph of the largest clusters</h3>"
        '<p class="note">Flagged clusters first, then by size.</p><div class="graphs">'
    )
    for c in largest:
        edges = _cluster_edges(c, templates, accounts)
        members = c["accounts"][:max_nodes]
        tids = list(dict.fromkeys([*c.get("templates", []), *(t for (a, t) in edges if a in members)]))
        tids = tids[: max(3, max_nodes // 8)]
        shown = {k: v for k, v in edges.items() if k[0] in members and k[1] in tids}
        more = len(c["accounts"]) - len(members)
        caption = f"cluster {c['id']}: {len(c['accounts'])} accounts, {len(tids)} templates"
        if more > 0:
            caption += f" ({more} more accounts not drawn)"
        out.append(
            f"<figure>{graph_svg(c['id'], members, tids, shown)}<figcaption>{_e(caption)}. Blue: accounts; "
            "orange: templates.</figcaption></figure>"
        )
    out.append("</div>")
    return "".join(out)


def _templates(data: ReportData, *, max_rows: int) -> str:
    templates = data.get("templates", [])
    if not templates:
        return ""
    ordered = templates  # in the order given: the producer knows what matters most
    rows = [
        [
            _e(t["id"]),
            f"<code>{_e(t.get('fingerprint', ''))}</code>",
            _e(_num(t.get("accounts"))),
            _e(_num(t.get("requests"))),
            _e(f"{t['concentration']:.2f}" if "concentration" in t else "\u2013"),
            _e(t.get("cluster") or ""),
            f'<span class="sample">{_e(redact(t.get("sample", "")))}</span>',
        ]
        for t in ordered[:max_rows]
    ]
    headers = [
        ("template", False),
        ("fingerprint", False),
        ("accounts", True),
        ("requests", True),
        ("concentration", True),
        ("cluster", False),
        ("sample (redacted)", False),
    ]
    note = ""
    if len(ordered) > max_rows:
        note = f'<p class="note">Showing the first {max_rows} templates of {len(ordered)}.</p>'
    return "<h2>Templates</h2>" + note + _table("templates", headers, rows, raw=True)


def _account_detail(a: AccountRow) -> str:
    items = [
        f"<li>first seen {_e(_ts(a.get('first_ts')))}, last seen {_e(_ts(a.get('last_ts')))} UTC</li>",
    ]
    if a.get("first_refused_after") is not None:
        items.append(f"<li>first refused after {_e(_num(a.get('first_refused_after')))} requests</li>")
    mix = sorted(a.get("templates", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    if mix:
        shown = ", ".join(f"<code>{_e(t)}</code> \u00d7{_e(_num(n))}" for t, n in mix[:10])
        items.append(f"<li>templates: {shown}</li>")
    for reason in a.get("reasons", []):
        items.append(f"<li>{_e(reason)}</li>")
    return f"<details><summary>{_e(a['id'])}</summary><ul>{''.join(items)}</ul></details>"


def _accounts(data: ReportData, *, max_rows: int) -> str:
    accounts = data.get("accounts", [])
    if not accounts:
        return ""
    ordered = sorted(
        accounts,
        key=lambda a: (
            a.get("cluster") is None,
            -(a.get("throttled", 0) + a.get("blocked", 0)),
            -a.get("requests", 0),
            a["id"],
        ),
    )[:max_rows]
    out = [
        "<h2>Accounts</h2>",
        '<p><input type="search" id="acct-filter" placeholder="filter by account, population or cluster" '
        f'aria-label="filter accounts"> <span class="note"><span id="acct-shown">{len(ordered)}</span> of '
        f"{len(accounts)} accounts shown (clustered and refused first)</span></p>",
        '<table id="accounts"><thead><tr><th>account</th><th>population</th><th>cluster</th>'
        '<th class="n">requests</th><th class="n">served</th><th class="n">throttled</th>'
        '<th class="n">blocked</th></tr></thead><tbody>',
    ]
    for a in ordered:
        search = " ".join([a["id"], a.get("population", ""), a.get("cluster") or ""]).lower()
        cluster = a.get("cluster")
        pill = f'<span class="pill bad">{_e(cluster)}</span>' if cluster else ""
        out.append(
            f'<tr data-search="{_e(search)}"><td class="mono">{_account_detail(a)}</td>'
            f"<td>{_e(a.get('population', ''))}</td><td>{pill}</td>"
            f'<td class="n">{_e(_num(a.get("requests")))}</td>'
            f'<td class="n">{_e(_num(a.get("served")))}</td>'
            f'<td class="n">{_e(_num(a.get("throttled")))}</td>'
            f'<td class="n">{_e(_num(a.get("blocked")))}</td>'
            "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def render_html(
    data: ReportData | Mapping[str, Any],
    *,
    max_clusters: int = 200,
    max_graphs: int = 3,
    max_graph_accounts: int = 48,
    max_templates: int = 200,
    max_accounts: int = 1000,
) -> str:
    """Render report ``data`` (see ``ReportData``) as one self-contained HTML document.

    Tables are capped (``max_clusters``, ``max_templates``, ``max_accounts``) so a report of a large log
    stays small enough to open; what is left out is said on the page.
    """
    report = validate_report(data)
    title = report["title"]
    meta = []
    if "generated_at" in report:
        meta.append(f"generated {report['generated_at']}")
    for key, value in report.get("source", {}).items():
        meta.append(f"{key}: {value}")
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<div class="meta">{_e(_DOT.join(meta))}</div>',
        _cards(report.get("figures", {})),
        _populations(report),
        _timeline(report),
        _clusters(report, max_rows=max_clusters, max_graphs=max_graphs, max_nodes=max_graph_accounts),
        _templates(report, max_rows=max_templates),
        _accounts(report, max_rows=max_accounts),
    ]
    notes = report.get("notes", [])
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing may be fetched: a report opened from a mail attachment must not call home.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        + "".join(body)
        + f"<script>{_JS}</script></body></html>\n"
    )
