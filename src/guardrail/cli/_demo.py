"""``guardrail demo``: a short, self-contained demonstration (for now: prompt fingerprints).

Shows that cheap evasions (zero-width characters, look-alike letters, case and spacing, fresh ids) do not
change a prompt's fingerprint, that a different prompt stays far away, and how streaming template
assignment groups the variants. Prints fingerprints and similarities only; nothing is stored.
"""

from __future__ import annotations

import argparse
from typing import Any

from guardrail.fingerprint import Fingerprinter, TemplateIndex

ORIGINAL = (
    "You are a meticulous tutor. Think step by step and write out your full reasoning before the answer. "
    "Task 1042: a train leaves at 3 pm at 80 km/h; a second leaves an hour later at 110 km/h. When does the "
    "second catch up?"
)

VARIANTS: list[tuple[str, str]] = [
    ("original", ORIGINAL),
    ("zero-width noise", "\u200b".join(ORIGINAL[:60]) + ORIGINAL[60:].replace(" ", " \u200d\u2060")),
    ("look-alike letters", ORIGINAL.replace("a", "\u0430").replace("e", "\u0435").replace("o", "\u03bf")),
    ("case and spacing", "  ".join(ORIGINAL.upper().split(" "))),
    ("new task id", ORIGINAL.replace("1042", "77310")),
    ("fill changed", ORIGINAL.split("Task")[0] + "Task 5: prove that the square root of 2 is irrational."),
    (
        "different prompt",
        "Can you suggest a three-day itinerary for Lisbon for someone who loves food and architecture?",
    ),
]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="show prompt fingerprints resisting cheap evasion, and template assignment"
    )
    parser.add_argument("--threshold", type=float, default=0.5, help="template similarity threshold (0-1)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    threshold: float = getattr(args, "threshold", 0.5)
    if not 0.0 < threshold < 1.0:
        print(f"error: --threshold must be between 0 and 1, got {threshold}")
        return 2
    fingerprinter = Fingerprinter()
    templates = TemplateIndex(threshold=threshold, capacity=1000)
    fingerprints = fingerprinter.fingerprint_many(text for _, text in VARIANTS)
    base = fingerprints[0]
    print("guardrail demo: prompt fingerprints (MinHash, 128 values, 5-byte shingles of normalised text)\n")
    base_segments = set(fingerprinter.segments(ORIGINAL))
    print(f"{'variant':<20} {'similarity':>10}  {'shared lines':>12}  {'template':<22} {'new':<5}")
    for (name, text), fp in zip(VARIANTS, fingerprints, strict=True):
        match = templates.assign(fp)
        new = "yes" if match.new else "no"
        shared = len(base_segments.intersection(fingerprinter.segments(text)))
        lines = f"{shared}/{len(base_segments)}"
        print(f"{name:<20} {base.similarity(fp):>10.2f}  {lines:>12}  {match.template_id:<22} {new:<5}")
    print(f"\n{len(templates)} templates from {len(VARIANTS)} prompts (threshold {threshold}).")
    print("similarity: estimated Jaccard similarity to the original's shingles (1.00 = identical);")
    print("shared lines: the original's normalised, id-masked sentences found again (the wrapper of a")
    print("template recurs even when its fill changes).")
    return 0
