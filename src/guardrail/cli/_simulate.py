"""``guardrail simulate``: write labelled synthetic traffic (``log.jsonl`` + ``labels.json``) to a folder."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from guardrail.simulate import MAX_SCALE, simulate


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or not 0.0 < value <= MAX_SCALE:
        raise argparse.ArgumentTypeError(f"scale must be in (0, {MAX_SCALE:g}], got {text}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``simulate`` subcommand to ``subparsers`` (an ``argparse`` sub-parsers action)."""
    parser = subparsers.add_parser(
        "simulate",
        help="write labelled synthetic traffic (honest populations and distillation campaigns)",
        description="Write DIR/log.jsonl (one request a line, time ordered) and DIR/labels.json "
        "(population and campaign label of every account). Scale 1 is about 50,000 requests from about "
        "3,400 accounts over three simulated days.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument(
        "--scale", type=_scale, default=1.0, help="multiplies accounts and volume (default 1.0)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Generate and write the simulation; print a summary per population. Returns the exit code."""
    started = time.perf_counter()
    sim = simulate(scale=args.scale, seed=args.seed)
    try:
        log_path, labels_path = sim.write(args.out)
    except OSError as exc:
        print(f"guardrail simulate: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    labels = sim.labels
    print(f"{'population':<26}{'campaign':>9}{'accounts':>10}{'requests':>10}")
    for name, counts in labels["populations"].items():
        flag = "yes" if counts["campaign"] else "no"
        print(f"{name:<26}{flag:>9}{counts['accounts']:>10,}{counts['requests']:>10,}")
    totals = labels["totals"]
    print(f"{'total':<26}{'':>9}{totals['accounts']:>10,}{totals['requests']:>10,}")
    rate = totals["requests"] / elapsed if elapsed > 0 else float("inf")
    print(f"wrote {log_path} and {labels_path} in {elapsed:.1f} s ({rate:,.0f} requests/s)")
    return 0
