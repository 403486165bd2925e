"""``guardrail demo``: the whole defence at work on simulated traffic, in about a minute, with no services.

The toy model app runs in-process behind the real ``Guardrail`` middleware; simulated traffic (honest
populations with their look-alikes, and four campaign styles) is replayed through it over ASGI with a
progress bar; then a summary is printed and a self-contained HTML report is written. Every figure comes
from the run (see ``_demo_report``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import sys
import webbrowser
from pathlib import Path
from typing import Any, TextIO

from guardrail._types import ASGIApp
from guardrail.cli._demo_app import load_model_app
from guardrail.cli._demo_report import build_report
from guardrail.cli._demo_run import close_run, replay
from guardrail.engine import Policy
from guardrail.limiter import Limit, StorageError
from guardrail.limiter._uri import display_uri, scrub_uri
from guardrail.report import ReportData, render_html, summary_text
from guardrail.simulate import Simulation, simulate

__all__ = ["DEFAULT_CLUSTER_BUDGET", "DEFAULT_REPORT", "DEFAULT_SCALE", "DEFAULT_SEED", "register", "run"]

#: About 25,000 requests over three simulated days: 20 s on two idle cores, about a minute on busy ones.
DEFAULT_SCALE = 0.5
#: A flagged cluster's shared budget in the demo, in estimated tokens per minute. The library default
#: (``Policy.cluster_limit``: 1,000 tokens/min, burst 4,000, about one busy honest account) is sized for
#: real campaigns of 150k to 28.8M exchanges; a simulated campaign sends about a thousand requests in three
#: days, 1/50 or less of the smallest real one, so the demo scales the budget down by 25 to let it bite as
#: it would on real volumes. ``--cluster-budget 1000`` replays with the library default.
DEFAULT_CLUSTER_BUDGET = 40.0
#: Burst of the demo's cluster bucket: above the largest single request's estimated cost, so a throttled
#: cluster still gets a request through now and then instead of none at all.
DEMO_CLUSTER_BURST = 4000.0
DEFAULT_SEED = 7
DEFAULT_REPORT = "guardrail-demo-report.html"


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and 0.0 < value <= 1000.0):
        raise argparse.ArgumentTypeError(f"scale must be in (0, 1000], got {text}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _storage(text: str) -> str:
    if "://" not in text:
        raise argparse.ArgumentTypeError(f"not a storage URI (memory:// or redis://host:port): {text!r}")
    return text


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="replay simulated traffic (honest users and distillation campaigns) through guardrail",
        description=(
            "Start the toy model app behind the guardrail middleware in-process, replay simulated traffic "
            "through it, print what guardrail did and write a self-contained HTML report."
        ),
    )
    parser.add_argument(
        "--scale", type=_scale, default=DEFAULT_SCALE, help=f"traffic volume (default {DEFAULT_SCALE})"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"simulation seed (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--storage",
        type=_storage,
        default="memory://",
        help="state store: memory:// (default) or redis://host:port/db",
    )
    parser.add_argument(
        "--cluster-budget",
        type=_positive,
        default=DEFAULT_CLUSTER_BUDGET,
        metavar="TOKENS_PER_MIN",
        help=f"a flagged cluster's shared budget (default {DEFAULT_CLUSTER_BUDGET:g})",
    )
    parser.add_argument(
        "--out", type=Path, default=Path(DEFAULT_REPORT), help=f"HTML report path ({DEFAULT_REPORT})"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the report data as JSON here")
    parser.add_argument("--open", action="store_true", help="open the report in a browser when done")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


async def _replay_and_report(
    sim: Simulation, app: ASGIApp, description: str, storage: str, policy: Policy, progress: TextIO
) -> ReportData:
    """Replay, build the report while the store is still open, then drop the run's state (one event loop:
    the async Redis clients belong to it)."""
    run = await replay(sim, app, storage=storage, guard_options={"policy": policy}, progress_stream=progress)
    try:
        return build_report(run, app_description=description, storage=display_uri(storage))
    finally:
        await close_run(run)


def run(args: argparse.Namespace) -> int:
    scale: float = args.scale
    storage: str = args.storage
    out: Path = args.out
    sim = simulate(scale=scale, seed=args.seed)
    totals = sim.labels["totals"]
    app, description = load_model_app()
    print(
        f"guardrail demo: {totals['requests']:,} simulated requests from {totals['accounts']:,} accounts "
        f"({totals['campaign_accounts']:,} in distillation campaigns) over 3 days, "
        f"replayed through Guardrail + {description}, state in {display_uri(storage)}, "
        "flagged clusters share "
        f"{args.cluster_budget:g} tokens/min each",
        flush=True,
    )
    progress: TextIO = io.StringIO() if args.no_progress else sys.stderr
    policy = Policy(cluster_limit=Limit(rate=args.cluster_budget / 60.0, burst=DEMO_CLUSTER_BURST))
    try:
        data = asyncio.run(_replay_and_report(sim, app, description, storage, policy, progress))
    except (StorageError, OSError, ValueError) as exc:  # ConnectionError is an OSError
        print(
            f"error: the demo could not run on {display_uri(storage)}: {scrub_uri(str(exc), storage)}",
            file=sys.stderr,
        )
        return 1
    data.setdefault("source", {})["cluster budget (tokens/min)"] = args.cluster_budget
    print()
    print(summary_text(data))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_html(data), encoding="utf-8")
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write the report: {exc}", file=sys.stderr)
        return 1
    uri = out.resolve().as_uri()
    print(f"\nHTML report: {out.resolve()}")
    if args.open:
        webbrowser.open(uri)
    return 0
