"""``guardrail analyze``: text and JSON output, gzip input, malformed lines, and agreement with the online
path (the same log through ``Guard.check`` in order flags the same accounts)."""

from __future__ import annotations

import argparse
import gzip
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from guardrail.cli import _analyze
from guardrail.engine import Guard, RequestFacts, analysis_report
from guardrail.engine._replay import LogError, parse_line, parse_ts
from guardrail.report._schema import validate_report

from ._synth import traffic


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guardrail")
    sub = parser.add_subparsers(dest="command")
    _analyze.register(sub)
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(["analyze", *argv])
    code: int = args.handler(args)
    return code


def _write_log(path: Path, recs: list[dict[str, Any]], *, gz: bool = False, bad: bool = True) -> None:
    lines = []
    for i, rec in enumerate(recs):
        rec = dict(rec)
        if i % 3 == 0:  # RFC 3339 timestamps on some lines
            rec["ts"] = datetime.fromtimestamp(rec["ts"], tz=timezone.utc).isoformat().replace("+00:00", "Z")
        lines.append(json.dumps(rec))
        if bad and i == 5:
            lines.append("{this is not json")
            lines.append(json.dumps({"ts": 1.0}))
            lines.append("")
    text = "\n".join(lines) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict[str, Any]], set[str]]:
    recs, bad = traffic(seed=11)
    d = tmp_path_factory.mktemp("logs")
    plain, gz = d / "log.jsonl", d / "log.jsonl.gz"
    _write_log(plain, recs)
    _write_log(gz, recs, gz=True)
    return plain, gz, recs, bad


def test_json_output_flags_the_campaign(log: Any, capsys: pytest.CaptureFixture[str]) -> None:
    plain, _, _, bad = log
    assert _run([str(plain), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert set(report["flagged_accounts"]) == bad
    assert report["clusters"] and {"accounts", "score", "evidence"} <= set(report["clusters"][0])
    validate_report(report)  # the HTML report can render it
    assert report["figures"]["malformed_lines"] == 2
    assert "line 7: invalid JSON" in err and "line 8: missing or empty 'account'" in err
    for t in report["templates"]:
        assert "Problem" not in t.get("sample", "") or "\u2588" in t.get("sample", "")


def test_gzip_input_gives_the_same_report(log: Any, capsys: pytest.CaptureFixture[str]) -> None:
    plain, gz, _, _ = log
    _run([str(plain), "--format", "json", "-q"])
    a = json.loads(capsys.readouterr().out)
    _run([str(gz), "--format", "json", "-q"])
    b = json.loads(capsys.readouterr().out)
    assert a["flagged_accounts"] == b["flagged_accounts"]
    assert [c["accounts"] for c in a["clusters"]] == [c["accounts"] for c in b["clusters"]]


def test_worker_processes_give_the_same_report(log: Any, capsys: pytest.CaptureFixture[str]) -> None:
    plain, _, _, _ = log
    _run([str(plain), "--format", "json", "-q", "--jobs", "0"])
    a = json.loads(capsys.readouterr().out)
    _run([str(plain), "--format", "json", "-q", "--jobs", "2"])
    b = json.loads(capsys.readouterr().out)
    assert a["flagged_accounts"] == b["flagged_accounts"]
    assert a["clusters"] == b["clusters"]


def test_text_output(log: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plain, _, _, _ = log
    assert _run([str(plain), "-q"]) == 0
    out = capsys.readouterr().out
    assert "Flagged clusters" in out and "score" in out and "camp-" in out
    target = tmp_path / "r.json"
    assert _run([str(plain), "-q", "--format", "json", "-o", str(target), "--hashed-ids"]) == 0
    report = json.loads(target.read_text())
    assert report["flagged_accounts"] and not any(a.startswith("camp-") for a in report["flagged_accounts"])


def test_html_output_is_the_self_contained_report(
    log: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plain, _, _, bad = log
    out_path = tmp_path / "report.html"
    assert _run([str(plain), "--format", "html", "-q", "-o", str(out_path)]) == 0
    html = out_path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") or html.lower().startswith("<!doctype html>")
    assert "<svg" in html and "<table" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing fetched from a network
    assert "https://" not in html
    assert any(account in html for account in bad)  # the flagged accounts are listed


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run([str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot open" in capsys.readouterr().err


def test_online_and_offline_agree(log: Any, capsys: pytest.CaptureFixture[str]) -> None:
    plain, _, recs, _ = log
    _run([str(plain), "--format", "json", "-q"])
    offline = json.loads(capsys.readouterr().out)
    guard = Guard(keep_samples=True)
    for rec in recs:
        guard.check(
            RequestFacts(
                account=rec["account"], ip=rec["ip"], path=rec["path"], body=rec["body"], ts=float(rec["ts"])
            )
        )
    guard.recluster(max(float(r["ts"]) for r in recs))
    online = analysis_report(guard, raw_ids=True)
    assert online["flagged_accounts"] == offline["flagged_accounts"]


def test_parse_line_and_ts() -> None:
    assert parse_ts(10) == 10.0 and parse_ts("12.5") == 12.5
    assert parse_ts("2026-01-01T00:00:00Z") == parse_ts("2026-01-01T00:00:00+00:00")
    facts = parse_line(json.dumps({"ts": 1, "account": "a", "prompt": "hello world"}))
    assert facts.prompt is not None and facts.prompt.user == "hello world"
    facts = parse_line(json.dumps({"ts": 1, "account": 7, "body": '{"prompt": "x"}'}))
    assert facts.account == "7" and isinstance(facts.body, bytes)
    for bad in (
        "[]",
        '{"account": "a", "prompt": "x"}',
        '{"ts": "yesterday", "account": "a", "prompt": "x"}',
        '{"ts": 1, "account": "a"}',
        '{"ts": 1, "account": "a", "body": 5}',
        '{"ts": true, "account": "a"}',
    ):
        with pytest.raises(LogError):
            parse_line(bad)
