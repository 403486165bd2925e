"""Online and offline agree: one simulated log replayed through the middleware in process (the engine's
clock following the log) and through ``guardrail analyze LOG --format json`` flags the same accounts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from guardrail.adapters import Guardrail
from guardrail.cli import _analyze
from guardrail.engine import AsyncGuard, analysis_report
from guardrail.simulate import simulate

pytestmark = pytest.mark.anyio

SECRET = b"agreement-test-secret"


def analyze(argv: list[str]) -> int:
    """``guardrail analyze ...`` through the subcommand module (whether or not the CLI lists it yet)."""
    parser = argparse.ArgumentParser(prog="guardrail")
    _analyze.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


class LogClock:
    """The engine's clock, moved by the replay to each record's timestamp."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _send(app: Any, record: dict[str, Any]) -> int:
    raw = json.dumps(record["body"]).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": record["path"].split("?", 1)[0],
        "raw_path": record["path"].encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            (b"authorization", f"Bearer {record['account']}".encode()),
        ],
        "client": (record["ip"], 40000),
        "server": ("127.0.0.1", 8000),
    }
    status = 0
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def model(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    body = b'{"usage":{"completion_tokens":100}}'
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


@pytest.mark.slow
async def test_middleware_replay_and_guardrail_analyze_flag_the_same_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GUARDRAIL_SECRET", SECRET.decode())
    sim = simulate(scale=0.02, seed=3)
    log, _ = sim.write(tmp_path)
    records = list(sim.records())

    assert analyze(["analyze", str(log), "--format", "json", "--hashed-ids", "--quiet"]) == 0
    expected = json.loads(capsys.readouterr().out)["flagged_accounts"]

    clock = LogClock()
    online = AsyncGuard("memory://", clock=clock, recluster_interval=3600)  # secret from GUARDRAIL_SECRET
    app = Guardrail(model, guard=online)
    statuses = []
    for r in records:
        clock.now = r["ts"]
        statuses.append(await _send(app, r))
    await online.recluster(records[-1]["ts"])
    got = analysis_report(online)["flagged_accounts"]
    await online.aclose()

    campaign = {online.account_id(a) for a, v in sim.labels["accounts"].items() if v["campaign"]}
    assert expected, "the offline analysis should flag the simulated campaign"
    assert set(expected) <= campaign  # no honest account flagged
    assert got == expected
    assert set(statuses) <= {200, 429, 403}
