"""Detection benchmark: the engine against the detection bars, and against a MinHash-LSH baseline.

Run: ``.venv/bin/python benchmarks/detection.py`` (default scale; ``--seeds 0 1 2`` for several
simulations; ``--throughput-requests 1000000`` for the bounded-memory throughput run of ``guardrail
analyze``; ``--skip-throughput`` to leave it out). Every figure is measured in the same run on the same
machine, so ratios between the engine and the baseline are meaningful even on a busy machine; absolute
requests per second are not portable.

Baseline: datasketch ``MinHash`` (128 permutations, word 3-gram shingles of the normalised system text plus
latest user turn) with ``MinHashLSH(threshold=0.5)`` assigning each request to a template (the first
indexed request it matches, else a new template), union-find over accounts that share a template, and every
component of 3 or more accounts flagged. It is what "cluster prompts by MinHash and link the accounts" gives
without looking at who shares a template and how.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from guardrail.engine import Guard
from guardrail.engine._evaluate import evaluate
from guardrail.engine._features import prompt_of
from guardrail.engine._linkage import UnionFind
from guardrail.fingerprint.normalize import normalize
from guardrail.simulate import simulate


def _scores(flagged: set[str], stats: Mapping[str, int], labels: Mapping[str, Any]) -> dict[str, Any]:
    per_style: Counter[str] = Counter()
    hit: Counter[str] = Counter()
    honest = fp = tp = 0
    honest_flagged: Counter[str] = Counter()
    for account, info in labels["accounts"].items():
        if not stats.get(account):
            continue
        if info["campaign"]:
            per_style[info["style"]] += 1
            hit[info["style"]] += account in flagged
            tp += account in flagged
        else:
            honest += 1
            if account in flagged:
                fp += 1
                honest_flagged[info["population"]] += 1
    return {
        "recall": {s: round(hit[s] / per_style[s], 4) for s in sorted(per_style)},
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "false_positive_rate": round(fp / honest, 5) if honest else 0.0,
        "honest_flagged": dict(honest_flagged),
    }


def baseline(records: Iterable[Mapping[str, Any]], labels: Mapping[str, Any]) -> dict[str, Any]:
    """datasketch MinHashLSH + union-find (see the module docstring)."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    template_of: dict[int, int] = {}
    uf = UnionFind()
    stats: Counter[str] = Counter()
    n = 0
    start = time.perf_counter()
    for rec in records:
        n += 1
        account = str(rec["account"])
        stats[account] += 1
        prompt = prompt_of(rec.get("path") or "/v1/chat/completions", rec.get("body"), None)
        if prompt is None:
            continue
        words = normalize(f"{prompt.system}\n{prompt.user}").split()
        grams = {" ".join(words[i : i + 3]).encode() for i in range(max(1, len(words) - 2))}
        m = MinHash(num_perm=128)
        m.update_batch(list(grams))
        found = lsh.query(m)
        if found:
            template = template_of[min(found)]
        else:
            template = n
            template_of[n] = n
            lsh.insert(n, m)
        uf.union(("a", account), ("t", template))
    elapsed = time.perf_counter() - start
    flagged: set[str] = set()
    for nodes in uf.groups().values():
        accounts = [str(x[1]) for x in nodes if isinstance(x, tuple) and x[0] == "a"]
        if len(accounts) >= 3:
            flagged.update(accounts)
    out = _scores(flagged, stats, labels)
    out["requests_per_second"] = round(n / elapsed, 1)
    out["templates"] = len(template_of)
    return out


def engine(records: list[Mapping[str, Any]], labels: Mapping[str, Any]) -> dict[str, Any]:
    guard = Guard(keep_samples=True)
    start = time.perf_counter()
    ev = evaluate(guard, records, labels)
    elapsed = time.perf_counter() - start
    out = ev.as_dict()
    out["requests_per_second"] = round(len(records) / elapsed, 1)
    out["clusters"] = [
        {"accounts": len(c.accounts), "score": round(c.score, 3), "evidence": list(c.evidence)}
        for c in guard.clusters
        if c.score >= guard.policy.throttle_score
    ]
    return out


def _write_log(path: Path, target: int, seed: int) -> tuple[int, float]:
    """A log of about ``target`` requests from the simulator at a proportional scale."""
    scale = max(0.05, target / 50_000)
    n = 0
    chars = 0
    with path.open("w", encoding="utf-8") as fh:
        for rec in simulate(scale=scale, seed=seed).records():
            line = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
            fh.write(line + "\n")
            n += 1
            chars += len(line)
            if n >= target:
                break
    return n, chars / max(1, n)


def throughput(target: int, seed: int, jobs: list[int]) -> dict[str, Any]:
    """``guardrail analyze`` on a log of ``target`` requests: requests/s and peak RSS, per ``--jobs``."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.jsonl"
        n, avg = _write_log(log, target, seed)
        out["requests"] = n
        out["average_line_bytes"] = round(avg)
        for j in jobs:
            code = (
                "import argparse, resource, sys, time\n"
                "from guardrail.cli import _analyze\n"
                "p = argparse.ArgumentParser(); s = p.add_subparsers(); _analyze.register(s)\n"
                f"a = p.parse_args(['analyze', {str(log)!r}, '--format', 'json', '-q', '-o', '/dev/null',"
                f" '--jobs', '{j}'])\n"
                "t = time.perf_counter(); a.handler(a); el = time.perf_counter() - t\n"
                "r = resource.getrusage\n"
                "me, kids = r(resource.RUSAGE_SELF), r(resource.RUSAGE_CHILDREN)\n"
                "print(el, me.ru_maxrss, me.ru_utime + me.ru_stime,\n"
                "      kids.ru_utime + kids.ru_stime, kids.ru_maxrss)\n"
            )
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            elapsed, rss_kb, main_cpu, worker_cpu, worker_rss = res.stdout.split()
            cpus = os.cpu_count() or 1
            # What the machine could do if nothing else ran on it: the main process needs main_cpu on one
            # core, the whole pipeline needs main_cpu + worker_cpu over all cores.
            idle_seconds = max(float(main_cpu), (float(main_cpu) + float(worker_cpu)) / cpus)
            out[f"jobs={j}"] = {
                "seconds": round(float(elapsed), 1),
                "requests_per_second": round(n / float(elapsed), 1),
                "cpu_seconds_main": round(float(main_cpu), 1),
                "cpu_seconds_workers": round(float(worker_cpu), 1),
                "requests_per_second_if_idle": round(n / idle_seconds, 1),
                "peak_rss_mb_main": round(int(rss_kb) / 1024, 1),
                "peak_rss_mb_worker": round(int(worker_rss) / 1024, 1),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--throughput-requests", type=int, default=200_000)
    parser.add_argument("--jobs", type=int, nargs="+", default=[0, 1, os.cpu_count() or 1])
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--only-throughput", action="store_true")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"seeds": {}}
    for seed in [] if args.only_throughput else args.seeds:
        sim = simulate(scale=args.scale, seed=seed)
        records = list(sim.records())
        row: dict[str, Any] = {"requests": len(records), "accounts": sim.labels["totals"]["accounts"]}
        row["engine"] = engine(records, sim.labels)
        if not args.skip_baseline:
            row["baseline_minhash_lsh"] = baseline(records, sim.labels)
        results["seeds"][str(seed)] = row
        print(json.dumps({str(seed): row}, indent=1), flush=True)
    engines = [r["engine"] for r in results["seeds"].values()]
    if len(engines) > 1:
        results["worst"] = {
            "recall": {s: min(e["recall"][s] for e in engines) for s in engines[0]["recall"]},
            "precision": min(e["precision"] for e in engines),
            "false_positive_rate": max(e["false_positive_rate"] for e in engines),
            "median_requests_to_throttle": statistics.median(
                e["median_requests_to_throttle"]
                for e in engines
                if e["median_requests_to_throttle"] is not None
            ),
        }
        print(json.dumps({"worst": results["worst"]}, indent=1), flush=True)
    if not args.skip_throughput:
        results["throughput"] = throughput(args.throughput_requests, args.seeds[0], sorted(set(args.jobs)))
        print(json.dumps({"throughput": results["throughput"]}, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
