"""The demo's run: simulated traffic replayed over ASGI through the real middleware, then the figures.

Each simulated request becomes a raw ASGI call (scope, body, client address, the account's API key in the
provider's header) into ``Guardrail`` wrapped around the model app, one at a time in log order. The guard
is told each request's simulated time (``RequestFacts.ts``), so three simulated days replay in seconds
with the same decisions ``guardrail analyze`` would take on the same log. Every figure of the summary is
computed here from what the middleware answered and what the engine found, compared with the
simulation's labels; nothing is a constant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from guardrail._types import ASGIApp, Message, Receive, Scope, Send
from guardrail.adapters import Guardrail
from guardrail.engine import AsyncGuard, Decision, RequestFacts
from guardrail.limiter import Limiter
from guardrail.limiter._uri import display_uri
from guardrail.report import JsonEvents, Progress
from guardrail.report._tally import Tally
from guardrail.simulate import CAMPAIGN_STYLES, HONEST_POPULATIONS, Simulation

__all__ = ["DemoRun", "replay"]

DEMO_SECRET = b"guardrail-demo-secret"
_REFUSED = {429: "throttle", 403: "block"}
_LIMITING = ("throttle", "block")


class _ClockedGuard:
    """The demo's guard: stamps each request with its simulated time and times the engine's work.

    The middleware builds ``RequestFacts`` without a timestamp (live traffic: now); the demo replays a log,
    so the facts get the log's time, exactly as ``guardrail analyze`` passes them.
    """

    def __init__(self, inner: AsyncGuard) -> None:
        self.inner = inner
        self.now = 0.0
        self.last: Decision | None = None

    async def check(self, facts: RequestFacts) -> Decision:
        self.last = await self.inner.check(dataclasses.replace(facts, ts=self.now))
        return self.last

    async def settle(self, decision: Decision, output_tokens: int) -> None:
        await self.inner.settle(decision, output_tokens)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _TimedApp:
    """Wraps the model app to measure time spent inside it, so the middleware's own share is the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.ns = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter_ns()
        try:
            await self.app(scope, receive, send)
        finally:
            self.ns += time.perf_counter_ns() - t0


def _headers(path: str, account: str) -> list[tuple[bytes, bytes]]:
    key = account.encode()
    if path.endswith("/messages"):
        auth = (b"x-api-key", key)
    elif ":generateContent" in path or ":streamGenerateContent" in path:
        auth = (b"x-goog-api-key", key)
    else:
        auth = (b"authorization", b"Bearer " + key)
    return [(b"host", b"demo.local"), (b"content-type", b"application/json"), auth]


async def _call(app: ASGIApp, record: Mapping[str, Any]) -> int:
    """One request as a raw ASGI call; returns the response status."""
    body = json.dumps(record["body"], separators=(",", ":")).encode()
    path: str = record["path"]
    headers = _headers(path, record["account"])
    headers.append((b"content-length", str(len(body)).encode()))
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": (record.get("ip") or "127.0.0.1", 443),
        "server": ("demo.local", 443),
    }
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    status = 0

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


@dataclass
class DemoRun:
    """Everything measured during one replay."""

    sim: Simulation
    guard: AsyncGuard
    tally: Tally
    statuses: Counter[int] = field(default_factory=Counter)
    added_ms: list[float] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0
    last_ts: float = 0.0
    #: account -> requests it had sent before its first request governed by a flagged cluster's verdict
    limited_after: dict[str, int] = field(default_factory=dict)
    sent: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def _build_guard(storage: str, events: JsonEvents, options: Mapping[str, Any]) -> AsyncGuard:
    """The demo's engine. On Redis, state and buckets get a namespace of their own for this run (removed
    afterwards by ``close_run``), so a demo never mixes with a deployment's or another run's state."""
    if storage.split("://", 1)[0].lower() == "memory":
        return AsyncGuard(storage, secret=DEMO_SECRET, keep_samples=True, on_event=events, **options)
    try:
        from guardrail.engine.redis_store import RedisEngineStore
    except ImportError as exc:
        raise ValueError(
            f"{display_uri(storage)} needs the redis package "
            f"(pip install redis: guardrail's 'redis' extra): {exc}"
        ) from exc

    run_id = uuid.uuid4().hex[:12]
    store = RedisEngineStore(storage, prefix=f"guardrail-demo-{run_id}")
    limiter = Limiter(storage, prefix=f"gr:lim:demo-{run_id}:")
    return AsyncGuard(
        store, limiter=limiter, secret=DEMO_SECRET, keep_samples=True, on_event=events, **options
    )


async def close_run(run: DemoRun) -> None:
    """Forget the run's engine state (on Redis: delete its namespace) and close the connections."""
    await run.guard.store.aclear()
    await run.guard.aclose()


def population_order() -> tuple[str, ...]:
    return (*HONEST_POPULATIONS, *CAMPAIGN_STYLES)


async def replay(
    sim: Simulation,
    model_app: ASGIApp,
    *,
    storage: str = "memory://",
    guard_options: Mapping[str, Any] | None = None,
    progress_stream: TextIO | None = None,
    live_progress: bool | None = None,
    bucket_seconds: float = 3600.0,
    limit: int | None = None,
    records: Callable[[], Iterator[Mapping[str, Any]]] | None = None,
) -> DemoRun:
    """Replay ``sim`` through ``Guardrail(model_app)`` and tally what happened.

    ``limit`` stops after that many requests (tests); ``records`` overrides the record source.
    """
    labels = sim.labels
    accounts = labels["accounts"]
    events = JsonEvents(secret=DEMO_SECRET, logger="guardrail.demo.events")
    seen: list[dict[str, Any]] = []
    events.hook = seen.append
    inner = _build_guard(storage, events, guard_options or {})
    # Fail fast on an unreachable store: the middleware would fail open on every request instead.
    await inner.store.atable()
    guard = _ClockedGuard(inner)
    timed = _TimedApp(model_app)
    app = Guardrail(timed, guard=guard, secret=DEMO_SECRET)  # type: ignore[arg-type]
    tally = Tally(
        start=float(labels["window"]["start"]),
        bucket_seconds=bucket_seconds,
        population_of=lambda a: str(accounts.get(a, {}).get("population", "unlabelled")),
    )
    run = DemoRun(sim=sim, guard=inner, tally=tally, events=seen)
    total = int(labels["totals"]["requests"])
    if limit is not None:
        total = min(total, limit)
    started = time.perf_counter()
    source = records() if records is not None else sim.records()
    with Progress(total, label="replay", stream=progress_stream, live=live_progress) as bar:
        for i, record in enumerate(source):
            if limit is not None and i >= limit:
                break
            ts = float(record["ts"])
            account = str(record["account"])
            guard.now = ts
            guard.last = None
            run.last_ts = ts
            inside_before = timed.ns
            t0 = time.perf_counter_ns()
            status = await _call(app, record)
            elapsed = time.perf_counter_ns() - t0
            run.added_ms.append((elapsed - (timed.ns - inside_before)) / 1e6)
            run.statuses[status] += 1
            action = _REFUSED.get(status, "allow")
            tally.add(ts=ts, account=account, action=action)
            decided = guard.last
            if (
                decided is not None
                and account not in run.limited_after
                and decided.evidence.get("cluster_action") in _LIMITING
            ):
                run.limited_after[account] = run.sent[account]
            run.sent[account] += 1
            bar.update(1, throttled=run.statuses[429], blocked=run.statuses[403])
    await inner.recluster(run.last_ts)
    run.wall_seconds = time.perf_counter() - started
    return run


def median_or_none(values: list[int] | list[float]) -> float | int | None:
    """The median, as an int when it is a whole number (a count of requests reads better so)."""
    if not values:
        return None
    m = float(statistics.median(values))
    return int(m) if m.is_integer() else m


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]
