"""Prometheus metrics: names, labels and values; a clear no-op without prometheus_client."""

from __future__ import annotations

import logging
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.report import Metrics

prometheus_client = pytest.importorskip("prometheus_client")


def _metrics() -> tuple[Metrics, object]:
    registry = prometheus_client.CollectorRegistry()
    return Metrics(registry=registry), registry


def _value(registry: object, name: str, labels: dict[str, str] | None = None) -> float | None:
    return registry.get_sample_value(name, labels or {})  # type: ignore[attr-defined,no-any-return]


def test_every_metric_is_exported_under_its_documented_name() -> None:
    _, registry = _metrics()
    text = prometheus_client.generate_latest(registry).decode()  # type: ignore[arg-type]
    for name, kind in [
        ("guardrail_decisions_total", "counter"),
        ("guardrail_bucket_refusals_total", "counter"),
        ("guardrail_clusters", "gauge"),
        ("guardrail_clustered_accounts", "gauge"),
        ("guardrail_largest_cluster_accounts", "gauge"),
        ("guardrail_templates_tracked", "gauge"),
        ("guardrail_inspection_seconds", "histogram"),
        ("guardrail_store_errors_total", "counter"),
    ]:
        assert f"# TYPE {name} {kind}" in text, name


def test_decisions_by_action_and_route() -> None:
    m, r = _metrics()
    for _ in range(3):
        m.observe_decision(action="allow", route="/v1/chat/completions", seconds=0.0004)
    m.observe_decision(
        action="throttle", route="/v1/messages", seconds=0.002, refused_by=["cluster", "account"]
    )
    m.observe_decision(action="block", route="/v1/messages", refused_by=["weird"])
    assert _value(r, "guardrail_decisions_total", {"action": "allow", "route": "/v1/chat/completions"}) == 3
    assert _value(r, "guardrail_decisions_total", {"action": "throttle", "route": "/v1/messages"}) == 1
    assert _value(r, "guardrail_bucket_refusals_total", {"bucket": "cluster"}) == 1
    assert _value(r, "guardrail_bucket_refusals_total", {"bucket": "account"}) == 1
    assert _value(r, "guardrail_bucket_refusals_total", {"bucket": "other"}) == 1
    assert _value(r, "guardrail_inspection_seconds_count") == 4
    assert _value(r, "guardrail_inspection_seconds_bucket", {"le": "0.0005"}) == 3
    assert _value(r, "guardrail_inspection_seconds_sum") == pytest.approx(0.0032)


def test_routes_are_bounded() -> None:
    registry = prometheus_client.CollectorRegistry()
    m = Metrics(registry=registry, max_routes=2)
    for path in ("/a", "/b", "/c", "/d"):
        m.observe_decision(action="allow", route=path)
    assert _value(registry, "guardrail_decisions_total", {"action": "allow", "route": "other"}) == 2


def test_clusters_templates_and_store_errors() -> None:
    m, r = _metrics()
    m.set_clusters([2, 3, 7, 150, 1])
    assert _value(r, "guardrail_clusters", {"size": "2-4"}) == 2
    assert _value(r, "guardrail_clusters", {"size": "5-19"}) == 1
    assert _value(r, "guardrail_clusters", {"size": "100-999"}) == 1
    assert _value(r, "guardrail_clusters", {"size": "1000+"}) == 0
    assert _value(r, "guardrail_clustered_accounts") == 162
    assert _value(r, "guardrail_largest_cluster_accounts") == 150
    m.set_clusters([])
    assert _value(r, "guardrail_clusters", {"size": "2-4"}) == 0
    assert _value(r, "guardrail_largest_cluster_accounts") == 0
    m.set_templates(42)
    assert _value(r, "guardrail_templates_tracked") == 42
    m.store_error()
    m.store_error("redis")
    assert _value(r, "guardrail_store_errors_total", {"store": "redis"}) == 2


def test_on_event_reads_adapter_events() -> None:
    m, r = _metrics()
    m.on_event({"outcome": "allowed", "action": "allow", "would_action": "allow", "path": "/v1/messages"})
    m.on_event(
        {
            "outcome": "throttled",
            "action": "throttle",
            "would_action": "throttle",
            "path": "/v1/messages",
            "evidence": {"refused_by": "template"},
        }
    )
    m.on_event({"outcome": "too_large", "action": None, "path": "/v1/messages"})
    m.on_event({"outcome": "error", "action": None, "path": "/v1/messages"})
    assert _value(r, "guardrail_decisions_total", {"action": "allow", "route": "/v1/messages"}) == 1
    assert _value(r, "guardrail_decisions_total", {"action": "throttle", "route": "/v1/messages"}) == 1
    assert _value(r, "guardrail_bucket_refusals_total", {"bucket": "template"}) == 1
    assert _value(r, "guardrail_store_errors_total", {"store": "unknown"}) == 1


def test_without_prometheus_client_metrics_are_a_logged_no_op(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with caplog.at_level(logging.WARNING, logger="guardrail.metrics"):
        m = Metrics()
    assert not m.enabled
    assert len(caplog.records) == 1 and "'prometheus' extra" in caplog.records[0].getMessage()
    m.observe_decision(action="allow", route="/x", seconds=0.1, refused_by=["account"])
    m.set_clusters([3])
    m.set_templates(1)
    m.store_error()
    m.on_event({"outcome": "throttled", "action": "throttle", "path": "/x"})


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_routes"):
        Metrics(registry=prometheus_client.CollectorRegistry(), max_routes=0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5000), max_size=30))
def test_cluster_gauges_add_up(sizes: list[int]) -> None:
    m, r = _metrics()
    m.set_clusters(sizes)
    real = [s for s in sizes if s >= 2]
    bands = ["2-4", "5-19", "20-99", "100-999", "1000+"]
    assert sum(_value(r, "guardrail_clusters", {"size": b}) or 0 for b in bands) == len(real)
    assert _value(r, "guardrail_clustered_accounts") == sum(real)
    assert _value(r, "guardrail_largest_cluster_accounts") == max(real, default=0)


def test_metrics_behind_the_real_middleware() -> None:
    """``instrument`` + ``on_event`` on ``Guardrail``: decisions, refusals and latency are counted."""
    import asyncio

    import httpx

    from guardrail.adapters import Guardrail
    from guardrail.cli._demo_app import stand_in_app
    from guardrail.engine import AsyncGuard, Policy
    from guardrail.limiter import Limit

    m, r = _metrics()
    # Each request costs 8 tokens up front; the reply settles it to 43: the second one no longer fits.
    guard = AsyncGuard(policy=Policy(account_limit=Limit(rate=0.001, burst=50.0)))
    app = Guardrail(stand_in_app, guard=m.instrument(guard), on_event=m.on_event)
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hello there"}]}

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            statuses = []
            for _ in range(3):
                resp = await client.post(
                    "/v1/chat/completions", json=body, headers={"authorization": "Bearer k1"}
                )
                statuses.append(resp.status_code)
            return statuses

    assert asyncio.run(go()) == [200, 429, 429]
    route = {"route": "/v1/chat/completions"}
    assert _value(r, "guardrail_decisions_total", {"action": "allow", **route}) == 1
    assert _value(r, "guardrail_decisions_total", {"action": "throttle", **route}) == 2
    assert _value(r, "guardrail_bucket_refusals_total", {"bucket": "account"}) == 2
    assert _value(r, "guardrail_inspection_seconds_count") == 3
    assert m.instrument(guard).store is guard.store  # other attributes pass through


def test_instrumented_guard_counts_errors() -> None:
    from guardrail.engine import Guard, RequestFacts

    m, r = _metrics()
    timed = m.instrument(Guard())
    with pytest.raises(TypeError):
        timed.check("not facts")
    assert _value(r, "guardrail_store_errors_total", {"store": "memory"}) == 1
    timed.check(RequestFacts(account="a", body={"messages": [{"role": "user", "content": "hi"}]}))
    assert _value(r, "guardrail_inspection_seconds_count") == 2
    with pytest.raises(TypeError, match="needs a Guard"):
        m.instrument(object())


def test_observe_guard_reads_the_clusters() -> None:
    from guardrail.engine import Guard, RequestFacts
    from guardrail.simulate import simulate

    m, r = _metrics()
    guard = Guard()
    for rec in simulate(scale=0.02, seed=1).records():
        guard.check(
            RequestFacts(
                account=rec["account"], ip=rec["ip"], path=rec["path"], body=rec["body"], ts=rec["ts"]
            )
        )
    m.observe_guard(guard)
    sizes = [len(c.accounts) for c in guard.clusters]
    assert sizes, "the replay should link some accounts"
    assert _value(r, "guardrail_clustered_accounts") == sum(sizes)
    assert _value(r, "guardrail_largest_cluster_accounts") == max(sizes)
