"""Structured JSON events: what is emitted, the JSON-lines format, and hashed identifiers only."""

from __future__ import annotations

import io
import json
import logging
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail._hashing import hash_identifier
from guardrail.report import EVENT_LOGGER, JsonEvents, JsonFormatter

SECRET = b"test-secret"


def _collect() -> tuple[JsonEvents, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    return JsonEvents(hook=seen.append, secret=SECRET), seen


def test_plain_allows_are_not_events() -> None:
    events, seen = _collect()
    events({"outcome": "allowed", "action": "allow", "would_action": "allow", "account": "a" * 32})
    events({"action": "allow"})
    assert seen == []


def test_refusals_and_observed_decisions_are_events() -> None:
    events, seen = _collect()
    digest = hash_identifier("key-1", SECRET, namespace="account")
    events({"outcome": "throttled", "action": "throttle", "account": digest, "reasons": ("cluster",)})
    events({"outcome": "observed", "action": "allow", "would_action": "block", "account": digest})
    assert [e["outcome"] for e in seen] == ["throttled", "observed"]
    assert all(e["event"] == "decision" and e["account"] == digest for e in seen)
    assert seen[0]["reasons"] == ["cluster"]


def test_raw_identifiers_are_hashed_before_they_leave() -> None:
    events, seen = _collect()
    events({"outcome": "blocked", "account": "sk-live-RAWKEY", "ip": "203.0.113.9"})
    events.cluster_changed(cluster="c1", change="formed", accounts=["sk-a", "sk-b"], score=0.9)
    dumped = json.dumps(seen)
    assert "RAWKEY" not in dumped and "203.0.113.9" not in dumped and "sk-a" not in dumped
    assert seen[0]["account"] == hash_identifier("sk-live-RAWKEY", SECRET, namespace="account")
    assert seen[1] == {
        "event": "cluster",
        "ts": seen[1]["ts"],
        "cluster": "c1",
        "change": "formed",
        "size": 2,
        "accounts": [hash_identifier(a, SECRET, namespace="account") for a in ("sk-a", "sk-b")],
        "score": 0.9,
        "templates": [],
        "reasons": [],
    }


def test_events_go_to_the_logger_as_json_lines() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger(EVENT_LOGGER)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        events = JsonEvents(secret=SECRET)
        events({"outcome": "throttled", "action": "throttle", "ts": 5.0, "evidence": {"x": math.inf}})
        events.cluster_changed(cluster="c9", change="grown", accounts=["a"], ts=6.0)
        log.info("plain message")
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["decision", "cluster", "log"]
    assert lines[0]["evidence"] == {"x": None}  # never invalid JSON
    assert lines[0]["level"] == "info" and lines[2]["message"] == "plain message"


def test_a_failing_hook_does_not_escape(caplog: pytest.LogCaptureFixture) -> None:
    def boom(event: dict[str, Any]) -> None:
        raise RuntimeError("hook bug")

    events = JsonEvents(hook=boom, secret=SECRET)
    with caplog.at_level(logging.ERROR, logger=EVENT_LOGGER):
        events({"outcome": "blocked"})
    assert "hook raised" in caplog.text


def test_adapter_event_objects_are_accepted() -> None:
    class Event:
        def as_dict(self) -> dict[str, Any]:
            return {"outcome": "blocked", "action": "block", "account": None, "path": "/v1/messages"}

    events, seen = _collect()
    events(Event())
    assert seen[0]["path"] == "/v1/messages" and seen[0]["account"] is None


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=40), st.lists(st.text(min_size=1, max_size=20), max_size=5))
def test_no_raw_identifier_survives(account: str, members: list[str]) -> None:
    events, seen = _collect()
    events({"outcome": "throttled", "account": account, "ip": account})
    events.cluster_changed(cluster="c", change="formed", accounts=members)
    for value in (seen[0]["account"], seen[0]["ip"], *seen[1]["accounts"]):
        assert len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def test_engine_events_become_decision_and_cluster_events() -> None:
    from guardrail.engine import Event

    events, seen = _collect()
    digest = hash_identifier("k", SECRET, namespace="account")
    events(Event("decision", 1.0, digest, "c1", "throttle", 0.9, {"retry_after": 2.0}))
    events(Event("cluster.flagged", 2.0, None, "c1", "throttle", 0.9, {"accounts": 4, "evidence": ["x"]}))
    events(Event("cluster.cleared", 3.0, None, "c1", "allow", 0.0, {}))
    assert [e["event"] for e in seen] == ["decision", "cluster", "cluster"]
    assert seen[0]["account"] == digest and seen[0]["outcome"] == "throttle"
    assert seen[1]["change"] == "flagged" and seen[1]["data"] == {"accounts": 4, "evidence": ["x"]}
    assert seen[2]["change"] == "cleared" and "kind" not in seen[2]
