"""``explain_account`` / ``guardrail explain``: the server-side answer to "why was this key throttled?"."""

from __future__ import annotations

import argparse
import json

import pytest

from guardrail.cli import _explain
from guardrail.engine import Guard, RequestFacts
from guardrail.report._explain import explain_account, explain_text
from guardrail.simulate import simulate

SECRET = b"explain-test-secret"


@pytest.fixture(scope="module")
def replayed() -> tuple[Guard, dict[str, dict[str, object]]]:
    # A small replay whose flagged clusters have characteristic parts (templates the table names).
    sim = simulate(scale=0.02, seed=3)
    guard = Guard(secret=SECRET)
    for r in sim.records():
        guard.check(
            RequestFacts(account=r["account"], ip=r["ip"], path=r["path"], body=r["body"], ts=r["ts"])
        )
    return guard, sim.labels["accounts"]


def test_a_flagged_account_is_explained_by_its_cluster(
    replayed: tuple[Guard, dict[str, dict[str, object]]],
) -> None:
    guard, labels = replayed
    table = guard.store.table()
    flagged = [
        a
        for a in labels
        if (cid := table.assignment.get(guard.account_id(a))) is not None
        and table.clusters[cid].action != "allow"
        and cid in table.parts.values()
    ]
    assert flagged, "the replay should flag a cluster"
    account = flagged[0]
    result = explain_account(guard.store, account, secret=SECRET)
    cid = table.assignment[guard.account_id(account)]
    assert result["account"] == guard.account_id(account) and account not in json.dumps(result)
    assert result["verdict"] == table.clusters[cid].action
    assert result["cluster"]["id"] == cid and result["cluster"]["evidence"]
    assert result["reasons"][0].startswith(f"member of cluster {cid}")
    assert result["profile"]["requests"] >= 1
    assert any(t["flagged_cluster"] == cid for t in result["templates"])
    text = explain_text(result)
    assert f"verdict: {result['verdict']}" in text and "UTC" in text
    # The same answer from the hash itself.
    assert explain_account(guard.store, guard.account_id(account))["cluster"] == result["cluster"]


def test_an_honest_and_an_unknown_account(replayed: tuple[Guard, dict[str, dict[str, object]]]) -> None:
    guard, labels = replayed
    table = guard.store.table()
    honest = next(
        a for a, i in labels.items() if not i["campaign"] and guard.account_id(a) not in table.assignment
    )
    result = explain_account(guard.store, honest, secret=SECRET)
    assert result["verdict"] == "allow" and result["cluster"] is None and result["known"]
    assert "not in any flagged cluster" in result["reasons"][0]
    unknown = explain_account(guard.store, "sk-never-seen", secret=SECRET)
    assert not unknown["known"] and "has not seen this account" in unknown["reasons"][0]
    wrong_secret = explain_account(guard.store, honest, secret=b"another")
    assert not wrong_secret["known"]


def test_bad_account_is_a_clear_error(replayed: tuple[Guard, dict[str, dict[str, object]]]) -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        explain_account(replayed[0].store, "")


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="guardrail")
    _explain.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["explain", *argv])
    code: int = args.handler(args)
    return code


def test_cli_needs_a_shared_store(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GUARDRAIL_STORAGE", raising=False)
    assert _cli(["sk-1"]) == 2
    assert "no store" in capsys.readouterr().err
    assert _cli(["sk-1", "--storage", "memory://"]) == 2
    assert "lives inside the serving process" in capsys.readouterr().err
    assert _cli(["sk-1", "--storage", "nosuch://x"]) == 1
    assert "error:" in capsys.readouterr().err


def test_the_engine_analysis_report_renders_as_html_and_text(
    replayed: tuple[Guard, dict[str, dict[str, object]]],
) -> None:
    """``guardrail analyze --format html`` is ``render_html(analysis_report(guard))``: one structure."""
    from guardrail.engine import analysis_report
    from guardrail.report import render_html, summary_text, validate_report

    guard, _ = replayed
    report = analysis_report(guard, title="analysis of a log")
    validate_report(report)
    page = render_html(report)
    assert page.count("<tr>") >= len(report["clusters"])
    for c in report["clusters"]:
        assert c["id"] in page
    text = summary_text(report)
    flagged = sum(1 for c in report["clusters"] if c["action"] != "allow")
    assert f"Clusters found: {len(report['clusters'])} ({flagged} flagged)" in text


@pytest.mark.redis
def test_cli_explains_from_redis(
    redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    from guardrail.engine.redis_store import RedisEngineStore

    prefix = f"explain-test-{uuid.uuid4().hex[:8]}"
    store = RedisEngineStore(redis_url, prefix=prefix)
    guard = Guard(store, limiter="memory://", secret=SECRET)
    try:
        records = list(simulate(scale=0.02, seed=5).records())[:300]
        for r in records:
            guard.check(
                RequestFacts(account=r["account"], ip=r["ip"], path=r["path"], body=r["body"], ts=r["ts"])
            )
        account = records[0]["account"]
        monkeypatch.setenv("GUARDRAIL_SECRET", SECRET.decode())
        assert _cli([account, "--storage", redis_url, "--prefix", prefix, "--format", "json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown == json.loads(json.dumps(explain_account(store, account, secret=SECRET)))
        assert shown["known"] and shown["profile"]["requests"] >= 1
        assert account not in json.dumps(shown)
    finally:
        store.clear()
        guard.close()


def test_elicitation_is_the_mean_over_scored_requests(
    replayed: tuple[Guard, dict[str, dict[str, object]]],
) -> None:
    """The profile's elicitation reads as the engine's linkage reads it: sum / scored requests."""
    guard, labels = replayed
    by_id = {p.account: p for p in guard.store.profiles()}
    for account in labels:
        profile = by_id.get(guard.account_id(account))
        if profile is None:
            continue
        shown = explain_account(guard.store, account, secret=SECRET)["profile"]["elicitation"]
        expected = profile.elicitation_sum / profile.elicitation_n if profile.elicitation_n else 0.0
        assert shown == pytest.approx(expected, abs=1e-3)
