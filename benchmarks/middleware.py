"""The middleware's cost: a bare Starlette endpoint vs the same endpoint behind ``Guardrail``, same run.

    python benchmarks/middleware.py [--requests 4000] [--seconds 4] [--json out.json] [--no-http] [--no-redis]

Traffic: realistic ~2 KB chat bodies, 200 API keys, all honest: each key an application with its own
system prompt, each request an end user's own question (a refusal over HTTP fails the run).
1. In process: each request driven straight through the ASGI app (no sockets): bare; "middleware" (the
   adapter with a guard that allows instantly: the adapter's own cost); "guarded" (the real engine on the
   memory store). Interleaved rounds so a noisy neighbour hurts all alike. Reports throughput ratios
   (target >= 0.8) and added p50 / p99 latency (target p99 <= 1 ms), p99 both wall-clock and as this
   thread's CPU time (on a shared machine, wall-clock p99 mostly measures the scheduler's preemptions).
2. Over real uvicorn (one worker each, loopback) with ``wrk`` (Debian package) when installed, else an
   httpx async load loop: requests/s ratio and added p99 at saturation (16 connections; p99 there is
   mostly the queue); then, with wrk, the three servers at one paced load (2 connections, 40% of the
   guarded server's best throughput), where p99 is each request's own latency.
3. Redis round trips on the hot path: a private redis-server on a free port; round trips counted on the
   client's connection (and ``INFO commandstats`` deltas) divided by requests, for the limiter alone on
   Redis and for the engine's state on Redis too, each with and without the ``account_rpm`` quota; the
   quota carried in the engine's own limiter call (``check(..., extra=...)``) and, for comparison in the
   same run, the two-call path duck-typed guards take; and with the engine charging a plain per-account
   bucket on every request (``Policy(account_limit=...)``), where the one call saves a round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "adapters"))  # shared launchers: adapters_support

from adapters_support import free_port, start_redis_server  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from guardrail.adapters import Guardrail  # noqa: E402
from guardrail.engine import AsyncGuard, Policy  # noqa: E402
from guardrail.limiter import Limit  # noqa: E402

# Honest traffic: 200 applications, one API key each. An application sends its own system prompt with every
# request (the same one each time) and a user turn that is its end user's own question. Nothing is shared
# across accounts but common words, so no account looks like part of a campaign: the benchmark measures
# the cost of inspecting honest requests, and checks that none of them is refused.
_WORDS = (
    "the a an of to in for on with about from by as at and or but if when while because so than then "
    "customer order invoice account payment refund delivery package address password login error screen "
    "report chart table column value total monthly weekly yesterday today tomorrow please could would "
    "should explain describe compare summarise translate rewrite improve check review draft email letter "
    "meeting schedule project budget team manager client supplier contract policy warranty return shipping "
    "tracking number price discount plan subscription upgrade downgrade cancel renew support ticket issue "
    "problem question answer example detail reason step option choice difference between after before "
    "during without within across several many few more less most least better worse simple clear short "
    "long quick slow new old recent previous next last first second third final draft version update "
    "change fix bug feature request release note guide manual setting profile notification message chat "
    "phone app website browser download upload file folder document spreadsheet image photo video audio "
    "recipe travel hotel flight train ticket weather garden kitchen school homework essay history science"
).split()
_PERSONAS = [
    "a friendly support assistant for an online shop",
    "a writing helper for a small marketing agency",
    "a travel planning assistant for a booking site",
    "an internal helpdesk bot for an accounting firm",
    "a tutor that helps students with homework",
    "a cooking assistant for a recipe website",
    "a project assistant for a construction company",
    "an onboarding guide for a banking app",
]


def _sentences(rng: random.Random, words: int) -> str:
    out: list[str] = []
    while words > 0:
        n = min(words, rng.randint(8, 18))
        words -= n
        sentence = " ".join(rng.choice(_WORDS) for _ in range(n))
        out.append(sentence[0].upper() + sentence[1:] + rng.choice([".", ".", "?", "!"]))
    return " ".join(out)


def system_prompt(account: int) -> str:
    """Application ``account``'s own system prompt (about 1 KB), the same on each of its requests."""
    rng = random.Random(f"system-{account}")
    return f"You are {_PERSONAS[account % len(_PERSONAS)]} (deployment {account}). " + _sentences(rng, 170)


KEYS = [f"sk-bench-{i:04d}" for i in range(200)]
REPLY = {
    "id": "x",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 500, "completion_tokens": 2},
}


def body(i: int) -> bytes:
    """Request ``i``: account ``i % 200``'s system prompt and an end user's own question (~2 KB in all)."""
    rng = random.Random(f"user-{i}")
    data = {
        "model": "m",
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": system_prompt(i % len(KEYS))},
            {"role": "user", "content": _sentences(rng, 100)},
        ],
    }
    return json.dumps(data).encode()


async def endpoint(request: Request) -> Response:
    await request.body()
    return JSONResponse(REPLY)


class NullGuard:
    """Allows everything instantly: isolates the middleware's own cost from the engine's."""

    async def check(self, facts: Any) -> Any:
        from guardrail.engine import Action, Decision

        return Decision(Action.ALLOW, Action.ALLOW, 0.0, None, None, None, (), {}, None)

    async def settle(self, decision: Any, output_tokens: int) -> None:
        return None


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/v1/chat/completions", endpoint, methods=["POST"])])


def guarded_app(**options: Any) -> Starlette:
    app = bare_app()
    app.add_middleware(Guardrail, **options)
    return app


def create_bare() -> Starlette:
    """uvicorn factory (``--factory benchmarks.middleware:create_bare``)."""
    return bare_app()


def create_middleware_only() -> Starlette:
    """The adapter with a guard that allows instantly: its own cost over HTTP."""
    return guarded_app(guard=NullGuard())


def create_guarded() -> Starlette:
    options: dict[str, Any] = {}
    limiter = os.environ.get("BENCH_LIMITER")
    if limiter:
        options["guard"] = AsyncGuard("memory://", limiter=limiter)
    else:
        options["storage"] = "memory://"
    if os.environ.get("BENCH_RPM"):
        options["account_rpm"] = float(os.environ["BENCH_RPM"])
    return guarded_app(**options)


# -- 1. in process ---------------------------------------------------------------------------------


async def _drive(app: Any, raw: bytes, key: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            (b"authorization", f"Bearer {key}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def in_process(n: int, rounds: int) -> dict[str, float]:
    bodies = [body(i) for i in range(n)]
    apps = {
        "bare": bare_app(),
        "middleware": guarded_app(guard=NullGuard()),
        "guarded": guarded_app(storage="memory://"),
    }
    for i in range(200):  # warm every app (imports, caches, the engine's first allocations)
        for app in apps.values():
            await _drive(app, bodies[i], KEYS[i % len(KEYS)])
    lat: dict[str, list[float]] = {name: [] for name in apps}
    cpu: dict[str, list[float]] = {name: [] for name in apps}
    wall: dict[str, float] = dict.fromkeys(apps, 0.0)
    per_round = n // rounds
    for r in range(rounds):
        names = list(apps) if r % 2 == 0 else list(reversed(apps))
        for name in names:
            app = apps[name]
            start = time.perf_counter()
            for i in range(r * per_round, (r + 1) * per_round):
                t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                status = await _drive(app, bodies[i], KEYS[i % len(KEYS)])
                cpu[name].append((time.thread_time_ns() - c0) / 1e6)
                lat[name].append((time.perf_counter_ns() - t0) / 1e6)
                if status != 200:
                    raise RuntimeError(f"{name} answered {status}")
            wall[name] += time.perf_counter() - start
    count = per_round * rounds
    out: dict[str, float] = {"requests": count}
    for name in apps:
        out[f"{name}_rps"] = count / wall[name]
        out[f"{name}_p50_ms"] = statistics.median(lat[name])
        out[f"{name}_p99_ms"] = pct(lat[name], 0.99)
        out[f"{name}_cpu_p99_ms"] = pct(cpu[name], 0.99)
    for name in ("middleware", "guarded"):
        out[f"{name}_throughput_ratio"] = wall["bare"] / wall[name]
        out[f"{name}_added_p50_ms"] = out[f"{name}_p50_ms"] - out["bare_p50_ms"]
        out[f"{name}_added_p99_ms"] = out[f"{name}_p99_ms"] - out["bare_p99_ms"]
        out[f"{name}_added_cpu_p99_ms"] = out[f"{name}_cpu_p99_ms"] - out["bare_cpu_p99_ms"]
    return out


# -- 2. over real uvicorn --------------------------------------------------------------------------


class Uvicorn:
    def __init__(self, factory: str, env: dict[str, str] | None = None) -> None:
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.post(
                    self.url + "/v1/chat/completions",
                    content=body(0),
                    timeout=1,
                    headers={"authorization": f"Bearer {KEYS[0]}"},  # body(0) is KEYS[0]'s
                )
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{factory} did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)


_WRK_SCRIPT = """
local bodies = {}
%s
local n = 0
wrk.method = "POST"
request = function()
  n = n + 1
  local i = n %% #bodies + 1
  local key = "Bearer sk-bench-" .. string.format("%%04d", (i - 1) %% 200)
  return wrk.format("POST", "/v1/chat/completions",
    {["Content-Type"] = "application/json", ["Authorization"] = key}, bodies[i])
end
local pace = %d
if pace > 0 then
  delay = function() return pace end
end
"""


def _wrk(url: str, seconds: float, connections: int, pace_ms: int = 0) -> tuple[float, float]:
    """Requests/s and p99 (ms) from wrk; ``pace_ms`` > 0 waits that long between a connection's requests
    (a paced load below saturation, where p99 measures the server's added latency, not its queue)."""
    lines = "\n".join(f"bodies[{i + 1}] = {json.dumps(body(i).decode())}" for i in range(256))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_WRK_SCRIPT % (lines, pace_ms))
        script = f.name
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "-s",
                script,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    rps = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))
    p99_line = next(line for line in out.splitlines() if line.strip().startswith("99%"))
    refused = [line for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line]
    if refused:  # the traffic is honest: a refusal or a failure would measure something else
        raise RuntimeError(f"{url} refused or failed honest requests: {refused[0].strip()}")
    return rps, _ms(p99_line.split()[1])


def _ms(text: str) -> float:
    for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    raise ValueError(text)


async def _httpx_load(url: str, seconds: float, connections: int) -> tuple[float, float]:
    import httpx

    lat: list[float] = []
    bodies = [body(i) for i in range(256)]
    end = time.perf_counter() + seconds
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=connections)) as client:

        async def worker(w: int) -> None:
            i = w
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                r = await client.post(
                    url + "/v1/chat/completions",
                    content=bodies[i % 256],
                    headers={"authorization": f"Bearer {KEYS[i % 256 % len(KEYS)]}"},
                )
                if r.status_code != 200:
                    raise RuntimeError(f"{url} answered {r.status_code} to an honest request")
                lat.append((time.perf_counter() - t0) * 1e3)
                i += connections

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(connections)))
        elapsed = time.perf_counter() - start
    return len(lat) / elapsed, pct(lat, 0.99)


def over_http(seconds: float, connections: int, rounds: int) -> dict[str, Any]:
    tool = "wrk" if shutil.which("wrk") else "httpx"
    factories = {
        "bare": "benchmarks.middleware:create_bare",
        "middleware": "benchmarks.middleware:create_middleware_only",
        "guarded": "benchmarks.middleware:create_guarded",
    }
    servers = {name: Uvicorn(factory) for name, factory in factories.items()}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    try:
        for r in range(rounds):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for name in order:
                url = servers[name].url
                if tool == "wrk":
                    results[name].append(_wrk(url, seconds, connections))
                else:
                    results[name].append(asyncio.run(_httpx_load(url, seconds, connections)))
        paced: dict[str, Any] = {}
        if tool == "wrk":  # 40% of the guarded server's best throughput, offered to all three
            paced = _paced(servers, seconds, rounds, 0.4 * max(x[0] for x in results["guarded"]))
    finally:
        for server in servers.values():
            server.stop()
    out: dict[str, Any] = {"load_generator": tool, "connections": connections, "seconds_per_run": seconds}
    for name in servers:  # for each contender, the best of its rounds for each figure (rounds may differ)
        out[f"{name}_rps"] = max(x[0] for x in results[name])
        out[f"{name}_p99_ms"] = min(x[1] for x in results[name])
    for name in ("middleware", "guarded"):
        out[f"{name}_throughput_ratio"] = out[f"{name}_rps"] / out["bare_rps"]
        out[f"{name}_added_p99_ms"] = out[f"{name}_p99_ms"] - out["bare_p99_ms"]
    out["runs"] = results
    out.update(paced)
    return out


def _paced(servers: dict[str, Uvicorn], seconds: float, rounds: int, rate: float) -> dict[str, Any]:
    """The same three servers at one offered load, below the guarded one's saturation: p50 and p99 there
    are the latency each layer adds to a request, where at saturation they mostly measure the queue."""
    connections = 2  # few in flight: each request's own latency, little queueing behind another
    pace = max(1, round(connections / rate * 1000))
    lat: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    for r in range(rounds):
        order = list(servers) if r % 2 == 0 else list(reversed(servers))
        for name in order:
            lat[name].append(_wrk(servers[name].url, seconds, connections, pace_ms=pace))
    out: dict[str, Any] = {"paced_connections": connections, "paced_delay_ms": pace}
    for name in servers:  # median of the rounds: one noisy round must not decide a p99
        out[f"paced_{name}_rps"] = statistics.median(x[0] for x in lat[name])
        out[f"paced_{name}_p99_ms"] = statistics.median(x[1] for x in lat[name])
    for name in ("middleware", "guarded"):
        out[f"paced_{name}_added_p99_ms"] = out[f"paced_{name}_p99_ms"] - out["paced_bare_p99_ms"]
    out["paced_runs"] = lat
    return out


# -- 3. Redis round trips --------------------------------------------------------------------------


class RoundTrips:
    """Counts what the client really sends: each ``send_packed_command`` is one request on the wire (a
    pipeline sends once), i.e. one round trip. Commands run inside a Lua script (which ``INFO
    commandstats`` also counts) are not round trips and are not counted here."""

    def __init__(self) -> None:
        from redis.asyncio.connection import AbstractConnection

        self.count = 0
        self._cls = AbstractConnection
        self._orig = AbstractConnection.send_packed_command
        counter = self

        async def counting(conn: Any, command: Any, check_health: bool = True) -> None:
            counter.count += 1
            await counter._orig(conn, command, check_health)

        AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]

    def restore(self) -> None:
        self._cls.send_packed_command = self._orig  # type: ignore[method-assign]


def _commandstats(port: int) -> dict[str, int]:
    import redis

    client = redis.Redis(port=port)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def _middleware(app: Any) -> Guardrail:
    """The ``Guardrail`` instance inside a built Starlette app."""
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    layer = app.middleware_stack
    while not isinstance(layer, Guardrail):
        layer = layer.app
    return layer


async def _count_round_trips(
    port: int,
    n: int,
    rpm: float | None,
    engine_on_redis: bool,
    *,
    one_call: bool = True,
    account_limit: bool = False,
) -> dict[str, float]:
    """``one_call=False`` forces the two-call quota path (the engine's call, then the quota's own), the
    one duck-typed guards take, for a same-run comparison; ``account_limit`` gives the engine a plain
    (never-refusing) per-account bucket, so its own limiter call is made on every request."""
    uri = f"redis://127.0.0.1:{port}/0"
    kwargs: dict[str, Any] = {}
    if account_limit:
        kwargs["policy"] = Policy(account_limit=Limit(rate=1e9, burst=1e12))
    guard = AsyncGuard(uri, **kwargs) if engine_on_redis else AsyncGuard("memory://", limiter=uri, **kwargs)
    options: dict[str, Any] = {"guard": guard}
    if rpm is not None:
        options["account_rpm"] = rpm
    app = guarded_app(**options)
    middleware = _middleware(app)
    middleware.core.quota_in_check = one_call and middleware.core.quota_in_check
    for i in range(20):  # script loading (SCRIPT LOAD / EVAL fallback) happens once, outside the count
        await _drive(app, body(i), KEYS[i % 200])
    before = _commandstats(port)
    trips = RoundTrips()
    try:
        for i in range(n):
            status = await _drive(app, body(i), KEYS[i % 200])
            if status != 200:
                raise RuntimeError(f"status {status}")
    finally:
        trips.restore()
    after = _commandstats(port)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after if k != "info"}
    return {
        "round_trips_per_request": trips.count / n,
        "top_level_commands_per_request": (delta.get("evalsha", 0) + delta.get("eval", 0)) / n,
        "commands_incl_inside_scripts_per_request": sum(delta.values()) / n,
    }


def redis_round_trips(n: int) -> dict[str, Any] | None:
    if shutil.which("redis-server") is None:
        return None
    port = free_port()
    proc = start_redis_server(port)
    try:
        limiter_only = asyncio.run(_count_round_trips(port, n, None, False))
        limiter_quota = asyncio.run(_count_round_trips(port, n, 1e9, False))
        engine = asyncio.run(_count_round_trips(port, n, None, True))
        engine_quota = asyncio.run(_count_round_trips(port, n, 1e9, True))
        engine_quota_two = asyncio.run(_count_round_trips(port, n, 1e9, True, one_call=False))
        charged = asyncio.run(_count_round_trips(port, n, None, True, account_limit=True))
        charged_quota = asyncio.run(_count_round_trips(port, n, 1e9, True, account_limit=True))
        charged_quota_two = asyncio.run(
            _count_round_trips(port, n, 1e9, True, one_call=False, account_limit=True)
        )
    finally:
        proc.kill()
        proc.wait(timeout=5)
    return {
        "requests": n,
        "limiter_on_redis": limiter_only,
        "limiter_on_redis_with_account_rpm": limiter_quota,
        "engine_and_limiter_on_redis": engine,
        "engine_and_limiter_on_redis_with_account_rpm": engine_quota,
        "engine_and_limiter_on_redis_with_account_rpm_two_calls": engine_quota_two,
        "engine_with_account_limit": charged,
        "engine_with_account_limit_and_account_rpm": charged_quota,
        "engine_with_account_limit_and_account_rpm_two_calls": charged_quota_two,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--http-rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    report: dict[str, Any] = {"body_bytes": statistics.mean(len(body(i)) for i in range(256))}
    report["in_process"] = asyncio.run(in_process(args.requests, args.rounds))
    print("in process  ", json.dumps({k: round(v, 4) for k, v in report["in_process"].items()}))
    if not args.no_http:
        report["uvicorn"] = over_http(args.seconds, args.connections, args.http_rounds)
        print(
            "uvicorn     ",
            json.dumps(
                {
                    k: (round(v, 4) if isinstance(v, float) else v)
                    for k, v in report["uvicorn"].items()
                    if k != "runs"
                }
            ),
        )
    if not args.no_redis:
        report["redis"] = redis_round_trips(500)
        print("redis       ", json.dumps(report["redis"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
