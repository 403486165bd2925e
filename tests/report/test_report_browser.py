"""The HTML report opened from disk in a real headless Chromium: no console errors, charts and tables drawn.

Skips with a reason when no Chromium is installed, except under CI (``GUARDRAIL_REQUIRE_REDIS=1`` or
``CI`` set), where a missing browser is a failure: ``.ci/run`` installs Debian's ``chromium``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _headless import Browser, find_chromium
from _sample import sample_report

from guardrail.report import render_html


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        reason = "no chromium on PATH (apt-get install -y chromium)"
        if os.environ.get("CI") or os.environ.get("GUARDRAIL_REQUIRE_REDIS") == "1":
            pytest.fail(f"{reason}, but CI requires the browser test to run")
        pytest.skip(reason)
    with Browser(executable) as b:
        yield b


_LAYOUT = """(() => {
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return [Math.round(r.width), Math.round(r.height)];
  };
  const rows = (id) => document.querySelectorAll('#' + id + ' tbody tr').length;
  return {
    title: document.title,
    charts: [...document.querySelectorAll('svg.chart')].map(box),
    lines: [...document.querySelectorAll('svg.chart polyline.series')].map((p) => p.getTotalLength() > 0),
    graphs: [...document.querySelectorAll('svg.graph')].map(box),
    nodes: document.querySelectorAll('svg.graph circle.acct').length,
    edges: document.querySelectorAll('svg.graph line.edge').length,
    rows: {populations: rows('populations'), clusters: rows('clusters'), templates: rows('templates'),
           accounts: rows('accounts')},
    cards: document.querySelectorAll('#figures .card').length,
    scripts: document.scripts.length,
  };
})()"""

_FILTER = """(() => {
  const box = document.getElementById('acct-filter');
  box.value = 'organic';
  box.dispatchEvent(new Event('input'));
  const rows = [...document.querySelectorAll('#accounts tbody tr')];
  const visible = rows.filter((r) => r.style.display !== 'none');
  return [visible.length, document.getElementById('acct-shown').textContent];
})()"""


def test_report_renders_in_chromium(browser: Browser, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(render_html(sample_report()), encoding="utf-8")
    browser.open(path)
    layout = browser.evaluate(_LAYOUT)
    assert browser.errors() == []
    assert layout["title"].startswith("guardrail report <script>")  # escaped text, shown as text
    assert len(layout["charts"]) == 3 and all(w > 300 and h > 100 for w, h in layout["charts"])
    assert layout["lines"] == [True] * 4
    assert len(layout["graphs"]) == 1 and all(w > 100 and h > 100 for w, h in layout["graphs"])
    assert layout["nodes"] == 6 and layout["edges"] == 6
    assert layout["rows"] == {"populations": 2, "clusters": 1, "templates": 2, "accounts": 12}
    assert layout["cards"] == 4
    assert layout["scripts"] == 1
    assert browser.evaluate(_FILTER) == [6, "6"]
    assert browser.errors() == []


def test_harness_sees_script_errors(browser: Browser, tmp_path: Path) -> None:
    """The check above means something: a page with a broken script is caught."""
    path = tmp_path / "broken.html"
    path.write_text("<html><body><script>console.error('bad'); missingFunction();</script></body></html>")
    browser.open(path)
    errors = browser.errors()
    assert any("bad" in e for e in errors)
    assert any("missingFunction" in e for e in errors)
