"""``guardrail analyze LOG.jsonl``: replay a request log through the engine on the log's own clock.

Streams in bounded memory (the engine's state is bounded; the log is read line by line, plain or gzip),
shows progress on stderr when it is a terminal, reports a malformed line with its number and goes on.
``--format json`` prints one object with ``flagged_accounts`` and ``clusters`` (each with ``accounts``,
``score`` and ``evidence``), plus ``templates`` and ``figures``; ``--format html`` renders the same
structure as the self-contained report ``guardrail demo`` writes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import IO, Any

__all__ = ["register", "run"]

_MAX_REPORTED_ERRORS = 20


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="replay a request log (JSON lines, optionally gzip) and report linked accounts",
        description=(
            "Replay a request log through the detection engine with the log's own clock and report the "
            "clusters of accounts that behave as one distillation campaign. Each line is a JSON object with "
            "'ts' (epoch seconds or RFC 3339), 'account', optional 'ip' and 'path', and 'body' (the request "
            "JSON) or 'prompt' (text)."
        ),
    )
    parser.add_argument("log", help="path to the log (.jsonl or .jsonl.gz; '-' for stdin)")
    parser.add_argument(
        "--format",
        choices=("text", "json", "html"),
        default="text",
        help="output format (html: the self-contained report of `guardrail demo`)",
    )
    parser.add_argument("--output", "-o", default="-", help="write the report here (default: stdout)")
    parser.add_argument("--top", type=int, default=20, help="clusters shown in text output (default 20)")
    parser.add_argument(
        "--hashed-ids", action="store_true", help="report keyed hashes instead of the log's account ids"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress or malformed-line messages")
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=-1,
        help="worker processes that parse and fingerprint lines while this process keeps the engine state "
        "(default: one per CPU, up to 4; 0 = everything in this process). The result does not depend on it.",
    )
    parser.set_defaults(handler=run)


class _Progress:
    """One carriage-return line on stderr, at most twice a second, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.start = time.monotonic()
        self.last = 0.0

    def update(self, n: int, bad: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        rate = n / max(1e-9, now - self.start)
        sys.stderr.write(f"\r{n:,} requests ({rate:,.0f}/s), {bad} malformed")
        sys.stderr.flush()

    def clear(self) -> None:
        """Erase the progress line so that a message starts on a clean line."""
        if self.enabled and self.last:
            sys.stderr.write("\r\033[K")

    def done(self) -> None:
        if self.enabled and self.last:
            sys.stderr.write("\n")


def run(args: argparse.Namespace) -> int:
    from guardrail.engine import Guard, analysis_report
    from guardrail.engine._replay import BadLine, open_log, prepared_stream

    try:
        stream = open_log(args.log)
    except OSError as err:
        print(f"guardrail analyze: cannot open {args.log}: {err.strerror or err}", file=sys.stderr)
        return 2
    guard = Guard("memory://", keep_samples=True)
    progress = _Progress(not args.quiet)
    requests = bad = refused = 0
    last_ts: float | None = None
    started = time.monotonic()
    cpus = os.cpu_count() or 1
    jobs = args.jobs if args.jobs >= 0 else (min(4, cpus) if cpus >= 2 else 0)
    core = guard.core
    try:
        with stream:
            for number, raw, item in prepared_stream(stream, core.secret, core.policy, jobs):
                if isinstance(item, BadLine):
                    bad += 1
                    if not args.quiet and bad <= _MAX_REPORTED_ERRORS:
                        progress.clear()
                        print(f"guardrail analyze: line {number}: {item.reason}", file=sys.stderr)
                    continue
                core.adopt(raw, item.obs.account)
                decision = guard.check_prepared(item)
                requests += 1
                refused += not decision.allowed
                ts = item.obs.ts
                if last_ts is None or ts > last_ts:
                    last_ts = ts
                if requests % 1024 == 0:
                    progress.update(requests, bad)
    except (OSError, EOFError) as err:
        progress.done()
        print(f"guardrail analyze: error reading {args.log}: {err}", file=sys.stderr)
        return 2
    progress.done()
    if bad > _MAX_REPORTED_ERRORS and not args.quiet:
        print(
            f"guardrail analyze: {bad - _MAX_REPORTED_ERRORS} more malformed lines not shown", file=sys.stderr
        )
    if requests:
        guard.recluster(last_ts if last_ts is not None else 0.0)
    elapsed = time.monotonic() - started
    report = analysis_report(
        guard,
        title=f"guardrail analysis of {args.log}",
        raw_ids=not args.hashed_ids,
        source={"kind": "log", "path": args.log},
    )
    report["figures"].update(
        {"requests": requests, "malformed_lines": bad, "refused": refused, "seconds": round(elapsed, 3)}
    )
    try:
        out: IO[str] = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
    except OSError as err:
        print(f"guardrail analyze: cannot write {args.output}: {err.strerror or err}", file=sys.stderr)
        return 2
    try:
        if args.format == "json":
            json.dump(report, out, indent=1, sort_keys=False)
            out.write("\n")
        elif args.format == "html":
            from guardrail.report import render_html

            out.write(render_html(report))
        else:
            out.write(render_text(report, top=args.top))
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def render_text(report: dict[str, Any], *, top: int = 20) -> str:
    """The report as plain text for a terminal."""
    fig = report.get("figures", {})
    lines = [report.get("title", "guardrail analysis"), ""]
    lines.append(
        f"{fig.get('requests', 0):,} requests, {fig.get('malformed_lines', 0)} malformed lines, "
        f"{fig.get('clusters', 0)} clusters, {fig.get('flagged_clusters', 0)} flagged, "
        f"{fig.get('flagged_accounts', 0)} accounts flagged"
    )
    flagged = [c for c in report.get("clusters", []) if c.get("action") != "allow"]
    others = [c for c in report.get("clusters", []) if c.get("action") == "allow"]
    for title, rows in (("Flagged clusters", flagged), ("Other linked groups (not flagged)", others)):
        if not rows:
            continue
        lines += ["", title]
        for c in rows[:top]:
            accounts = c["accounts"]
            shown = ", ".join(accounts[:5]) + (f", ... (+{len(accounts) - 5})" if len(accounts) > 5 else "")
            lines.append(f"  {c['id'][:13]}  score {c['score']:.2f}  {c['action']}  accounts: {shown}")
            for reason in c.get("reasons", []):
                lines.append(f"      - {reason}")
        if len(rows) > top:
            lines.append(f"  ... {len(rows) - top} more")
    templates = [t for t in report.get("templates", []) if t.get("sample")]
    if templates:
        lines += ["", "Templates (redacted samples)"]
        for t in templates[:top]:
            lines.append(
                f"  {t['id'][:12]}  {t.get('accounts', '?')} accounts  {t.get('requests', '?')} requests  "
                f"{t['sample']}"
            )
    return "\n".join(lines) + "\n"
