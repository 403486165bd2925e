"""``guardrail demo`` at a tiny scale: its figures come from the run, its report shows what it found.

One module-scoped run (about 3,000 requests) feeds every assertion; a second seed shows the figures move
with the traffic instead of being constants.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import statistics
from pathlib import Path
from typing import Any

import pytest
from _headless import Browser, find_chromium

from guardrail.cli import main
from guardrail.simulate import simulate

SCALE = 0.02


def _run_demo(out_dir: Path, seed: int) -> tuple[int, str, dict[str, Any], str]:
    html = out_dir / f"report-{seed}.html"
    data = out_dir / f"report-{seed}.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            [
                "demo",
                "--scale",
                str(SCALE),
                "--seed",
                str(seed),
                "--out",
                str(html),
                "--json",
                str(data),
                "--no-progress",
            ]
        )
    return code, stdout.getvalue(), json.loads(data.read_text()), html.read_text()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict[str, Any], str]:
    return _run_demo(tmp_path_factory.mktemp("demo"), seed=3)


def test_demo_succeeds_and_prints_the_report_path(demo: tuple[int, str, dict[str, Any], str]) -> None:
    code, out, _, _ = demo
    assert code == 0
    path = Path(out.strip().splitlines()[-1].removeprefix("HTML report: "))
    assert path.is_file() and path.name == "report-3.html"
    first = out.splitlines()[0]
    assert re.match(r"guardrail demo: [\d,]+ simulated requests from [\d,]+ accounts", first)
    assert "state in memory://" in first
    try:
        import fastapi  # noqa: F401
    except ImportError:
        assert "built-in stand-in model" in first
    else:
        assert "integrations/fastapi_app.py" in first  # the real integration app, from a checkout


def test_every_request_is_accounted_for(demo: tuple[int, str, dict[str, Any], str]) -> None:
    _, _, data, _ = demo
    labels = simulate(scale=SCALE, seed=3).labels
    figures = data["figures"]
    assert figures["requests replayed"] == labels["totals"]["requests"]
    assert sum(p["requests"] for p in data["populations"]) == labels["totals"]["requests"]
    for p in data["populations"]:
        assert p["requests"] == p["served"] + p["throttled"] + p["blocked"]
        assert p["requests"] == labels["populations"][p["name"]]["requests"]
        assert sum(data["timeline"]["series"][p["name"]]) == p["requests"]
    assert sum(a["requests"] for a in data["accounts"]) == labels["totals"]["requests"]


def test_detection_figures_match_the_clusters_and_the_labels(
    demo: tuple[int, str, dict[str, Any], str],
) -> None:
    _, _, data, _ = demo
    labels = simulate(scale=SCALE, seed=3).labels["accounts"]
    flagged = {a for c in data["clusters"] if c["action"] != "allow" for a in c["accounts"]}
    campaign = {a for a, info in labels.items() if info["campaign"]}
    hits = len(flagged & campaign)
    figures = data["figures"]
    assert flagged, "the demo should flag at least one campaign cluster"
    assert figures["detection precision (accounts)"] == pytest.approx(hits / len(flagged))
    assert figures["detection recall (accounts)"] == pytest.approx(hits / len(campaign))
    campaign_names = {i["population"] for i in labels.values() if i["campaign"]}
    campaign_pops = [p for p in data["populations"] if p["name"] in campaign_names]
    served = sum(p["served"] for p in campaign_pops) / sum(p["requests"] for p in campaign_pops)
    assert figures["campaign volume served (%)"] == pytest.approx(round(100 * served, 1))
    limited = [
        int(r.split(" after ")[1].split()[0])
        for a in data["accounts"]
        if labels[a["id"]]["campaign"]
        for r in a["reasons"]
        if r.startswith("under a cluster's limit after")
    ]
    assert figures["campaign accounts throttled"] == f"{len(limited)} of {len(campaign)}"
    if limited:
        assert figures["median requests before a campaign account was throttled"] == statistics.median(
            limited
        )
    for c in data["clusters"]:
        truth = [labels[a]["population"] for a in c["accounts"]]
        name, count = c["label"].split()
        assert count == f"{truth.count(name)}/{len(truth)}"
        assert truth.count(name) == max(truth.count(t) for t in truth)


def test_latency_is_measured(demo: tuple[int, str, dict[str, Any], str]) -> None:
    figures = demo[2]["figures"]
    assert 0 < figures["added latency p50 (ms)"] <= figures["added latency p99 (ms)"]
    assert figures["replay wall time (s)"] > 0


def test_summary_shows_the_figures_and_every_population(demo: tuple[int, str, dict[str, Any], str]) -> None:
    _, out, data, _ = demo
    assert "detection precision (accounts)" in out and "added latency p50 (ms)" in out
    for p in data["populations"]:
        assert any(line.split()[:2] == [p["name"], f"{p['requests']:,}"] for line in out.splitlines())
    flagged = sum(1 for c in data["clusters"] if c["action"] != "allow")
    assert f"Clusters found: {len(data['clusters'])} ({flagged} flagged)" in out


def test_report_shows_clusters_templates_and_accounts_without_prompts(
    demo: tuple[int, str, dict[str, Any], str],
) -> None:
    _, _, data, page = demo
    assert page.count("<tr data-search=") == len(data["accounts"])
    assert '<table id="templates">' in page and page.count('class="graph"') >= 1
    for c in data["clusters"]:
        assert f"<td>{c['id']}</td>" in page
    record = next(iter(simulate(scale=SCALE, seed=3).records()))
    text = json.dumps(record["body"])
    tail = " ".join(text.split()[-8:])
    assert tail not in page


def test_figures_follow_the_traffic(tmp_path: Path, demo: tuple[int, str, dict[str, Any], str]) -> None:
    code, _, other, _ = _run_demo(tmp_path, seed=4)
    assert code == 0
    assert other["figures"]["requests replayed"] == simulate(scale=SCALE, seed=4).labels["totals"]["requests"]
    assert other["figures"]["requests replayed"] != demo[2]["figures"]["requests replayed"]


def test_demo_report_in_chromium(demo: tuple[int, str, dict[str, Any], str], tmp_path: Path) -> None:
    executable = find_chromium()
    if executable is None:
        if os.environ.get("CI") or os.environ.get("GUARDRAIL_REQUIRE_REDIS") == "1":
            pytest.fail("no chromium on PATH, but CI requires the browser test to run")
        pytest.skip("no chromium on PATH (apt-get install -y chromium)")
    path = tmp_path / "demo.html"
    path.write_text(demo[3], encoding="utf-8")
    with Browser(executable) as browser:
        browser.open(path)
        shown = browser.evaluate(
            "[document.querySelectorAll('svg.chart polyline.series').length,"
            " document.querySelectorAll('svg.graph').length,"
            " document.querySelectorAll('#accounts tbody tr').length,"
            " Math.round(document.querySelector('svg.chart').getBoundingClientRect().width)]"
        )
        assert browser.errors() == []
    n_pops = len(demo[2]["populations"])
    assert (
        shown[0] == 2 * n_pops and shown[1] >= 1 and shown[2] == len(demo[2]["accounts"]) and shown[3] > 300
    )


def test_bad_arguments_are_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--scale", "0"])
    assert exc.value.code == 2
    assert "scale must be in (0, 1000]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--storage", "localhost:6379"])
    assert "not a storage URI" in capsys.readouterr().err


@pytest.mark.redis
def test_demo_runs_on_redis_and_cleans_up(redis_url: str) -> None:
    """``--storage redis://``: the same replay with state in Redis, under a namespace removed afterwards."""
    import asyncio

    import redis

    from guardrail.cli._demo_app import stand_in_app
    from guardrail.cli._demo_report import build_report
    from guardrail.cli._demo_run import close_run, replay

    sim = simulate(scale=SCALE, seed=3)

    async def go() -> tuple[dict[str, Any], str]:
        run = await replay(sim, stand_in_app, storage=redis_url, limit=400, progress_stream=io.StringIO())
        prefix = run.guard.store.prefix
        try:
            return dict(build_report(run, app_description="stand-in", storage=redis_url)), prefix
        finally:
            await close_run(run)

    data, prefix = asyncio.run(go())
    assert data["figures"]["requests replayed"] == 400
    assert sum(p["requests"] for p in data["populations"]) == 400
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match="{" + prefix + "}*")) == []
    finally:
        client.close()


def test_unusable_storage_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "guardrail.engine.redis_store", raising=False)
    args = ["demo", "--scale", "0.02", "--storage", "redis://127.0.0.1:6379/0", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "r.html")]) == 1
    assert "pip install redis" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
