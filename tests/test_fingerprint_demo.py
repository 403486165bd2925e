"""The temporary ``guardrail demo`` prints the fingerprint demonstration and exits 0."""

from __future__ import annotations

import pytest

from guardrail.cli import main


def test_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "look-alike letters" in out and "templates from" in out


def test_demo_rejects_bad_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--threshold", "2"]) == 2
