"""``guardrail simulate``: argument parsing, files written, summary printed, errors reported."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from guardrail.cli import _simulate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guardrail")
    _simulate.register(parser.add_subparsers(dest="command"))
    return parser


def test_simulate_writes_log_and_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim"
    args = _parser().parse_args(["simulate", "--out", str(out), "--scale", "0.01", "--seed", "3"])
    assert args.handler(args) == 0
    labels = json.loads((out / "labels.json").read_text(encoding="utf-8"))
    lines = (out / "log.jsonl").read_text(encoding="utf-8").splitlines()
    assert labels["seed"] == 3 and labels["scale"] == 0.01
    assert len(lines) == labels["totals"]["requests"]
    first = json.loads(lines[0])
    assert set(first) == {"ts", "account", "ip", "path", "body"}
    printed = capsys.readouterr().out
    assert "hydra" in printed and "organic" in printed and "total" in printed and str(out) in printed


def test_simulate_defaults() -> None:
    args = _parser().parse_args(["simulate", "--out", "x"])
    assert args.scale == 1.0 and args.seed == 0 and args.handler is _simulate.run


@pytest.mark.parametrize("scale", ["0", "-1", "nan", "inf", "abc", "5000"])
def test_bad_scale_is_a_usage_error(scale: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["simulate", "--out", "x", "--scale", scale])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "scale" in err or "number" in err


def test_missing_out_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["simulate"])


def test_unwritable_out_reports_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    args = _parser().parse_args(["simulate", "--out", str(blocker / "sub"), "--scale", "0.01"])
    assert args.handler(args) == 1
    assert "cannot write" in capsys.readouterr().err
