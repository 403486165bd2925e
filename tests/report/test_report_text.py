"""Text summary, tables and the progress bar."""

from __future__ import annotations

import io

import pytest
from _sample import HOSTILE, SECRET_TAIL, sample_report
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.report import Progress, format_figure, format_table, summary_text


def test_summary_shows_figures_populations_and_clusters() -> None:
    text = summary_text(sample_report())
    assert "precision" in text and "1.000" in text and "0.500" in text
    assert "campaign:hydra" in text and "55.8%" in text  # 360 / 645 served
    assert "Clusters found: 1 (1 flagged)" in text
    assert "c1 (hydra" in text and "6 accounts, score 0.930 -> throttle" in text
    assert "      rare template shared by 6 accounts\n      flat hourly traffic" in text
    assert "evidence:" not in text  # reasons are shown; the raw evidence numbers are in the HTML
    assert SECRET_TAIL not in text  # samples are not part of the text summary


def test_summary_of_a_minimal_report() -> None:
    assert summary_text({"title": "t"}).splitlines() == ["t", "=", "", "Clusters found: 0 (0 flagged)"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "n/a"),
        (True, "yes"),
        (1234567, "1,234,567"),
        (0.25, "0.250"),
        (12.345, "12.3"),
        (4321.5, "4,322"),
    ],
)
def test_format_figure(value: object, shown: str) -> None:
    assert format_figure(value) == shown


def test_percent_figures_are_named_so() -> None:
    assert format_figure(0.2, "honest requests refused (%)") == "0.2%"
    assert format_figure(54.46, "served (%)") == "54.5%"
    assert format_figure(None, "served (%)") == "n/a"


def test_table_aligns_numbers_right() -> None:
    table = format_table(["name", "n"], [["a", 5], ["bbb", 1234]])
    assert table.splitlines() == ["  name      n", "  ----  -----", "  a         5", "  bbb   1,234"]


def test_progress_on_a_pipe_prints_only_the_final_line() -> None:
    ticks = iter([0.0, 2.0])
    out = io.StringIO()
    with Progress(100, label="replay", stream=out, clock=lambda: next(ticks)) as bar:
        for _ in range(10):
            bar.update(10, throttled=3)
    assert out.getvalue() == f"replay [{'#' * 28}] 100.0% 100/100 req  50 req/s  2s  throttled 3\n"


def test_progress_on_a_terminal_redraws_in_place() -> None:
    now = [0.0]
    out = io.StringIO()
    bar = Progress(4, stream=out, live=True, fps=1.0, width=4, clock=lambda: now[0])
    for _ in range(4):
        now[0] += 0.6
        bar.update()
    bar.close()
    bar.close()
    frames = out.getvalue().split("\r")[1:]
    assert len(frames) == 3  # t=0.6 drawn, 1.2 skipped, 1.8 drawn, 2.4 skipped, then the final line
    assert frames[0].startswith("[#...]  25.0% 1/4 req") and "eta" in frames[0]
    assert frames[-1].endswith("\n") and frames[-1].startswith("[####] 100.0% 4/4")


def test_progress_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="total"):
        Progress(-1)
    with pytest.raises(ValueError, match="width"):
        Progress(1, width=0)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(min_value=0, max_value=10_000), st.lists(st.integers(min_value=0, max_value=500), max_size=20)
)
def test_progress_line_is_always_well_formed(total: int, steps: list[int]) -> None:
    bar = Progress(total, stream=io.StringIO(), width=10, clock=lambda: 1.0)
    for n in steps:
        bar.update(n)
        line = bar.line()
        assert line.startswith("[") and line[11] == "]" and "%" in line
        assert float(line[13:18]) <= 100.0


def test_evidence_is_shown_when_there_are_no_reasons() -> None:
    data = sample_report()
    del data["clusters"][0]["reasons"]
    assert "evidence: shared_templates=1, concentration=0.970" in summary_text(data)


def test_hostile_strings_in_text_are_shown_as_is() -> None:
    assert HOSTILE in summary_text(sample_report())  # a terminal is not HTML: nothing to escape
