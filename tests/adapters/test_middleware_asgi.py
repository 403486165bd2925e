"""``Guardrail`` (ASGI) behaviour, against real Starlette apps and a raw ASGI harness for the edge cases."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import zlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from adapters_support import AsyncScriptedGuard
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from guardrail.adapters import Guardrail, GuardrailEvent

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"
BODY = {"model": "m", "messages": [{"role": "user", "content": "Explain tides to me, please."}]}


async def echo(request: Request) -> Response:
    raw = await request.body()
    return JSONResponse(
        {"sha": hashlib.sha256(raw).hexdigest(), "len": len(raw), "usage": {"completion_tokens": 7}},
        status_code=200,
    )


async def stream(request: Request) -> Response:
    await request.body()

    async def events() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f'data: {{"i":{i}}}\n\n'.encode()
        yield b'data: {"choices":[],"usage":{"completion_tokens":42}}\n\n'
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def bad(request: Request) -> Response:
    try:
        json.loads(await request.body())
    except ValueError:
        return JSONResponse({"error": {"message": "invalid json"}}, status_code=400)
    return PlainTextResponse("ok")


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def make_app(guard: Any, **options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route(CHAT, echo, methods=["POST"]),
            Route("/v1/messages", echo, methods=["POST"]),
            Route("/v1/responses", bad, methods=["POST"]),
            Route("/stream/v1/chat/completions", stream, methods=["POST"]),
            Route("/health", health, methods=["GET", "POST"]),
            WebSocketRoute("/ws", ws),
        ]
    )
    app.add_middleware(Guardrail, guard=guard, **options)
    return app


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


# -- pass-through ----------------------------------------------------------------------------------


def test_other_routes_lifespan_and_websockets_pass_untouched() -> None:
    guard = AsyncScriptedGuard(rpm=1)
    with TestClient(make_app(guard)) as client:  # lifespan runs through the middleware
        for _ in range(3):
            assert client.get("/health").text == "ok"
            assert client.post("/health", content=b"x").text == "ok"
        with client.websocket_connect("/ws") as socket:
            assert socket.receive_text() == "hello"
    assert guard.seen == []


def test_honest_request_is_replayed_exactly_with_headers() -> None:
    guard = AsyncScriptedGuard(rpm=60)
    client = TestClient(make_app(guard, expose_engine_limits=True))
    raw = json.dumps(BODY).encode()
    r = client.post(CHAT, content=raw, headers=auth("sk-honest"))
    assert r.status_code == 200
    assert r.json()["sha"] == hashlib.sha256(raw).hexdigest()
    assert r.headers["ratelimit-policy"] == '"tokens";q=60'
    assert r.headers["ratelimit"].startswith('"tokens";r=59;t=')
    assert r.headers["x-ratelimit-remaining-tokens"] == "59"
    (facts,) = guard.seen
    assert facts.account == "sk-honest" and facts.body == raw and facts.path == CHAT
    assert guard.settled == [("sk-honest", 7)]  # settled from the JSON usage


async def test_chunked_body_is_replayed_once_in_order() -> None:
    guard = AsyncScriptedGuard()
    app = make_app(guard)
    parts = [b'{"model":"m",', b'"messages":[{"role":"user",', b'"content":"hi"}]}']

    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.post(CHAT, content=body(), headers=auth("k"))
    joined = b"".join(parts)
    assert r.json() == {
        "sha": hashlib.sha256(joined).hexdigest(),
        "len": len(joined),
        "usage": {"completion_tokens": 7},
    }
    assert guard.seen[0].body == b"".join(parts)


# -- refusals --------------------------------------------------------------------------------------


def test_flood_gets_429_in_the_provider_shape() -> None:
    events: list[GuardrailEvent] = []
    guard = AsyncScriptedGuard(rpm=2)
    client = TestClient(make_app(guard, on_event=events.append, expose_engine_limits=True))
    codes = [client.post(CHAT, json=BODY, headers=auth("flood")).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]
    r = client.post(CHAT, json=BODY, headers=auth("flood"))
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert int(r.headers["retry-after"]) >= 1 and int(r.headers["retry-after-ms"]) >= 1
    assert r.headers["ratelimit"].startswith('"tokens";r=0')
    assert "x-ratelimit-limit-tokens" in r.headers
    a = client.post("/v1/messages", json=BODY, headers={"x-api-key": "flood"})
    assert a.status_code == 429
    assert a.json()["type"] == "error" and a.json()["error"]["type"] == "rate_limit_error"
    # Another key is unaffected.
    assert client.post(CHAT, json=BODY, headers=auth("other")).status_code == 200
    assert [e.outcome for e in events].count("throttled") == 4
    assert events[-1].outcome == "allowed" and events[-1].account != "other"  # hashed
    # Nothing from the evidence reaches the client.
    assert "0.97" not in r.text and "budget" not in r.text


def test_block_is_403_not_retried_and_app_not_called() -> None:
    guard = AsyncScriptedGuard(blocked=frozenset({"bad"}))
    client = TestClient(make_app(guard))
    r = client.post(CHAT, json=BODY, headers=auth("bad"))
    assert r.status_code == 403
    assert r.headers["x-should-retry"] == "false"
    assert r.json()["error"]["message"] == "Blocked."
    assert "sha" not in r.text
    assert guard.settled == []


def test_observe_only_never_refuses_but_records(caplog: pytest.LogCaptureFixture) -> None:
    events: list[GuardrailEvent] = []
    guard = AsyncScriptedGuard(rpm=1, blocked=frozenset({"bad"}))
    client = TestClient(make_app(guard, observe_only=True, on_event=events.append))
    with caplog.at_level(logging.INFO, logger="guardrail.adapters"):
        assert [client.post(CHAT, json=BODY, headers=auth("bad")).status_code for _ in range(3)] == [200] * 3
    assert [e.outcome for e in events] == ["observed"] * 3
    assert events[0].would_action == "block" and events[0].reasons
    # The plain log line alone says who (the keyed hash) and what would have been done.
    line = caplog.records[0].getMessage()
    assert f"account={events[0].account}" in line and "would=block" in line and events[0].reasons[0] in line


# -- failures inside guardrail ---------------------------------------------------------------------


def test_guard_failure_lets_requests_through_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    events: list[GuardrailEvent] = []
    guard = AsyncScriptedGuard(fail=True)
    client = TestClient(make_app(guard, on_event=events.append))
    with caplog.at_level(logging.WARNING, logger="guardrail.adapters"):
        r = client.post(CHAT, json=BODY, headers=auth("k"))
    assert r.status_code == 200 and r.json()["len"] > 0
    assert events[0].outcome == "error" and "ConnectionError" in (events[0].error or "")
    assert any("inspection failed" in rec.message for rec in caplog.records)


def test_hook_and_identify_failures_are_contained() -> None:
    def boom(_: object) -> None:
        raise RuntimeError("hook bug")

    def identify(_: object) -> str:
        raise RuntimeError("identify bug")

    guard = AsyncScriptedGuard()
    client = TestClient(make_app(guard, on_event=boom, identify=identify))
    assert client.post(CHAT, json=BODY, headers=auth("k")).status_code == 200
    assert guard.seen[0].account == "k"  # fell back to the API key


def test_app_error_settles_zero_and_headers_kept() -> None:
    guard = AsyncScriptedGuard()
    client = TestClient(make_app(guard))
    r = client.post("/v1/responses", content=b"{not json", headers=auth("k"))
    assert r.status_code == 400 and r.json() == {"error": {"message": "invalid json"}}  # the app's own answer
    assert guard.seen[0].body == b"{not json"  # still counted against the account
    assert guard.settled == [("k", 0)]


# -- identity --------------------------------------------------------------------------------------


def test_identity_sources() -> None:
    guard = AsyncScriptedGuard()
    client = TestClient(make_app(guard, identify=lambda v: v.header("x-user")))
    client.post(CHAT, json=BODY, headers={"x-user": "alice", **auth("shared-key")})
    client.post(CHAT, json=BODY, headers=auth("shared-key"))
    client.post("/v1/messages", json=BODY, headers={"x-api-key": "ant"})
    client.post(CHAT, json=BODY)
    assert [f.account for f in guard.seen] == ["alice", "shared-key", "ant", "ip:testclient"]


async def test_duplicate_authorization_uses_the_first() -> None:
    guard = AsyncScriptedGuard()
    h = Harness(_chunks(b"{}", 10))
    headers = [(b"authorization", b"Bearer first"), (b"authorization", b"Bearer second")]
    await Guardrail(h.app, guard=guard)(_scope(CHAT, headers=headers), h.receive, h.send)
    folded = [(b"authorization", b"Bearer first, Bearer second")]  # as a proxy or httpx folds them
    h = Harness(_chunks(b"{}", 10))
    await Guardrail(h.app, guard=guard)(_scope(CHAT, headers=folded), h.receive, h.send)
    assert [f.account for f in guard.seen] == ["first", "first"]


async def test_trusted_proxies() -> None:
    guard = AsyncScriptedGuard()
    inner = make_app(guard, trusted_proxies=["10.0.0.0/8"])
    xff = {"x-forwarded-for": "198.51.100.7, 10.0.0.9"}
    for peer in ("10.0.0.1", "203.0.113.5"):
        transport = httpx.ASGITransport(app=inner, client=(peer, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.post(CHAT, json=BODY, headers=xff)
    assert [f.ip for f in guard.seen] == ["198.51.100.7", "203.0.113.5"]
    assert [f.account for f in guard.seen] == ["ip:198.51.100.7", "ip:203.0.113.5"]


async def test_behind_a_proxy_on_a_unix_socket() -> None:
    # uvicorn --uds gives no client address: each keyless client is its own account once "unix" is
    # trusted, and all of them one "anonymous" account when it is not.
    for trusted, accounts in ((["unix"], ["ip:198.51.100.7", "ip:198.51.100.8"]), ([], ["anonymous"] * 2)):
        guard = AsyncScriptedGuard()
        inner = make_app(guard, trusted_proxies=trusted)

        async def unix(scope: Any, receive: Any, send: Any, inner: Any = inner) -> None:
            await inner({**scope, "client": None}, receive, send)

        transport = httpx.ASGITransport(app=unix)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for ip in ("198.51.100.7", "198.51.100.8"):
                await client.post(CHAT, json=BODY, headers={"x-forwarded-for": ip})
        assert [f.account for f in guard.seen] == accounts


# -- streaming and settlement ----------------------------------------------------------------------


async def test_streams_pass_chunk_by_chunk_and_settle_from_final_usage() -> None:
    guard = AsyncScriptedGuard()
    release = anyio.Event()
    first_seen = anyio.Event()

    async def slow_stream(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b'data: {"a":1}\n\n', "more_body": True})
        await release.wait()  # would deadlock if the middleware buffered the stream
        await send(
            {
                "type": "http.response.body",
                "body": b'data: {"usage":{"output_tokens":9}}\n\n',
                "more_body": True,
            }
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    mw = Guardrail(slow_stream, guard=guard, expose_engine_limits=True)
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not first_seen.is_set():
            first_seen.set()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": json.dumps(BODY).encode(), "more_body": False}

    scope = _scope(CHAT, auth_key="s")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(mw, scope, receive, send)
            await first_seen.wait()
            release.set()
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert bodies == [b'data: {"a":1}\n\n', b'data: {"usage":{"output_tokens":9}}\n\n', b""]
    assert guard.settled == [("s", 9)]
    start = sent[0]
    assert (b"content-type", b"text/event-stream") in start["headers"]
    assert any(k == b"ratelimit" for k, _ in start["headers"])


def test_streaming_through_starlette() -> None:
    guard = AsyncScriptedGuard()
    client = TestClient(make_app(guard))
    with client.stream("POST", "/stream/v1/chat/completions", json=BODY, headers=auth("k")) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and len(lines) == 7
    assert guard.settled == [("k", 42)]


# -- bodies: limits, stalls, disconnects -----------------------------------------------------------


def _scope(
    path: str, *, auth_key: str | None = None, headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    hs = list(headers or [])
    if auth_key:
        hs.append((b"authorization", f"Bearer {auth_key}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": hs,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


class Harness:
    """Drive a middleware with scripted receive messages; record what the app and the client saw."""

    def __init__(self, messages: list[dict[str, Any]], *, stall: bool = False) -> None:
        self.messages = list(messages)
        self.stall = stall
        self.sent: list[dict[str, Any]] = []
        self.app_body: bytes | None = None

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.app_body = body
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"app", "more_body": False})

    async def receive(self) -> dict[str, Any]:
        if self.messages:
            return self.messages.pop(0)
        if self.stall:
            await anyio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        return self.sent[0]["status"] if self.sent else None

    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


def _chunks(data: bytes, size: int) -> list[dict[str, Any]]:
    parts = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    return [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]


async def test_declared_oversize_is_refused_before_reading() -> None:
    h = Harness(_chunks(b"x" * 100, 10))
    mw = Guardrail(h.app, guard=AsyncScriptedGuard(), max_body_bytes=50)
    await mw(_scope(CHAT, auth_key="k", headers=[(b"content-length", b"100")]), h.receive, h.send)
    assert h.status == 413 and h.json()["error"]["code"] == "request_too_large"
    assert len(h.messages) == 10  # not a byte was read
    assert h.app_body is None


async def test_chunked_oversize_is_refused_and_anthropic_shaped() -> None:
    h = Harness(_chunks(b"x" * 100, 10))
    mw = Guardrail(h.app, guard=AsyncScriptedGuard(), max_body_bytes=50)
    await mw(_scope("/v1/messages", auth_key="k"), h.receive, h.send)
    assert h.status == 413 and h.json()["error"]["type"] == "request_too_large"


async def test_oversize_pass_gives_the_app_every_byte_and_still_counts() -> None:
    data = bytes(range(256)) * 4
    h = Harness(_chunks(data, 100))
    guard = AsyncScriptedGuard()
    events: list[GuardrailEvent] = []
    mw = Guardrail(h.app, guard=guard, max_body_bytes=300, on_oversize="pass", on_event=events.append)
    await mw(_scope(CHAT, auth_key="k"), h.receive, h.send)
    assert h.status == 200 and h.app_body == data
    assert guard.seen[0].body is None and events[0].outcome == "passed_uninspected"


async def test_stalled_client_gets_408() -> None:
    h = Harness([{"type": "http.request", "body": b"{", "more_body": True}], stall=True)
    mw = Guardrail(h.app, guard=AsyncScriptedGuard(), body_timeout=0.2)
    with anyio.fail_after(5):
        await mw(_scope(CHAT, auth_key="k"), h.receive, h.send)
    assert h.status == 408 and h.app_body is None


async def test_disconnect_mid_body_sends_nothing() -> None:
    h = Harness([{"type": "http.request", "body": b"{", "more_body": True}])
    guard = AsyncScriptedGuard()
    mw = Guardrail(h.app, guard=guard)
    await mw(_scope(CHAT, auth_key="k"), h.receive, h.send)
    assert h.sent == [] and h.app_body is None and guard.seen == []


async def test_conflicting_content_lengths_are_refused_or_passed() -> None:
    headers = [(b"content-length", b"2"), (b"content-length", b"3")]
    h = Harness(_chunks(b"{}", 10))
    await Guardrail(h.app, guard=AsyncScriptedGuard())(
        _scope(CHAT, auth_key="k", headers=headers), h.receive, h.send
    )
    assert h.status == 400
    h = Harness(_chunks(b"{}", 10))
    mw = Guardrail(h.app, guard=AsyncScriptedGuard(), on_oversize="pass")
    await mw(_scope(CHAT, auth_key="k", headers=headers), h.receive, h.send)
    assert h.status == 200 and h.app_body == b"{}"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe{\x00}\x00",  # UTF-16 with a BOM
        b"\xc3\x28 invalid utf-8",
        '{"messages":[{"role":"user","content":"caf\u00e9 \u202e \u200b"}]}'.encode(),
        b"[" * 50_000,
        b'{"messages": "not a list"}',
        b"\x00" * 1000,
    ],
)
async def test_odd_bodies_never_500(body: bytes) -> None:
    h = Harness(_chunks(body, 4096))
    guard = AsyncScriptedGuard()
    headers = [(b"content-type", b"text/plain; charset=\xe9"), (b"x-api-key", b"\xe9\xff")]
    await Guardrail(h.app, guard=guard)(_scope(CHAT, headers=headers), h.receive, h.send)
    assert h.status == 200 and h.app_body == body


# -- configuration ---------------------------------------------------------------------------------


def test_constructor_is_validated() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    with pytest.raises(TypeError):
        Guardrail(app, AsyncScriptedGuard())  # type: ignore[misc]
    with pytest.raises(ValueError, match="either guard"):
        Guardrail(app, guard=AsyncScriptedGuard(), storage="memory://")
    with pytest.raises(ValueError, match="guard must be"):
        Guardrail(app, guard=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_oversize"):
        Guardrail(app, guard=AsyncScriptedGuard(), on_oversize="drop")
    with pytest.raises(ValueError, match="max_body_bytes"):
        Guardrail(app, guard=AsyncScriptedGuard(), max_body_bytes=-1)
    with pytest.raises(ValueError, match="body_timeout"):
        Guardrail(app, guard=AsyncScriptedGuard(), body_timeout=0)
    with pytest.raises(ValueError, match="storage"):
        Guardrail(app, storage="nowhere")
    with pytest.raises(ValueError, match="account_rpm"):
        Guardrail(app, account_rpm=-5)
    with pytest.raises(ValueError, match="trusted proxy"):
        Guardrail(app, guard=AsyncScriptedGuard(), trusted_proxies=["not-an-ip"])


def test_built_from_options_throttles() -> None:
    app = Starlette(routes=[Route(CHAT, echo, methods=["POST"])])
    app.add_middleware(Guardrail, storage="memory://", account_rpm=2)
    client = TestClient(app)
    codes = [client.post(CHAT, json=BODY, headers=auth("k")).status_code for _ in range(6)]
    assert codes[0] == 200 and 429 in codes
    assert client.post(CHAT, json=BODY, headers=auth("someone-else")).status_code == 200


# -- the read deadline -----------------------------------------------------------------------------


async def test_read_deadline_with_and_without_the_watchdog() -> None:
    from guardrail.adapters._body import BodyStatus, Watchdog, read_body

    async def stalled() -> dict[str, Any]:
        await anyio.sleep(3600)
        return {}

    with anyio.fail_after(5):
        for watchdog in (Watchdog(0.1), None):
            read = await read_body(stalled, [], max_bytes=10, timeout=0.1, watchdog=watchdog)
            assert read.status is BodyStatus.TIMEOUT and read.more


async def test_an_outside_cancellation_is_not_mistaken_for_a_timeout() -> None:
    from guardrail.adapters._body import Watchdog, read_body

    async def stalled() -> dict[str, Any]:
        await anyio.sleep(3600)
        return {}

    watchdog = Watchdog(60.0)
    with anyio.move_on_after(0.1) as scope:
        await read_body(stalled, [], max_bytes=10, timeout=60.0, watchdog=watchdog)
    assert scope.cancelled_caught  # the server's cancellation propagated, not swallowed
    assert not any(lw.reads for lw in watchdog._loops.values())  # and the read was forgotten


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=8),
    cap=st.integers(min_value=0, max_value=4000),
)
def test_replay_is_exact_for_any_chunking(data: bytes, cuts: list[int], cap: int) -> None:
    """Whatever the chunking and the cap: the app sees every byte once, in order, or we answer 413."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {len(data)})
    messages, last = [], 0
    for i, point in enumerate(points):
        messages.append({"type": "http.request", "body": data[last:point], "more_body": i < len(points) - 1})
        last = point

    async def run() -> Harness:
        h = Harness(messages)
        mw = Guardrail(h.app, guard=AsyncScriptedGuard(), max_body_bytes=cap, on_oversize="refuse")
        await mw(_scope(CHAT, auth_key="k"), h.receive, h.send)
        return h

    h = anyio.run(run)
    if len(data) <= cap:
        assert h.status == 200 and h.app_body == data
    else:
        assert h.status == 413 and h.app_body is None


# -- compressed request bodies: the engine reads what an inflating app reads --------------------------


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


_PROMPT = json.dumps(
    {"model": "m", "messages": [{"role": "user", "content": "tell me about tides"}]}
).encode()


@pytest.mark.parametrize(
    ("coding", "packed"),
    [
        ("gzip", gzip.compress(_PROMPT)),
        ("deflate", zlib.compress(_PROMPT)),
        ("gzip, gzip", gzip.compress(gzip.compress(_PROMPT))),
        ("GZIP", gzip.compress(_PROMPT[:30]) + gzip.compress(_PROMPT[30:])),  # two members, as gzip allows
        ("x-gzip", gzip.compress(_PROMPT) + b"\0" * 64),  # trailing zero padding, as gzip readers allow
        ("deflate", gzip.compress(_PROMPT)),  # gzip data under the other name, as lenient inflaters read
        ("deflate", _raw_deflate(_PROMPT)),  # raw deflate, no zlib header
        ("identity, gzip", gzip.compress(_PROMPT)),
    ],
)
async def test_a_compressed_body_is_inspected_and_replayed_as_sent(coding: str, packed: bytes) -> None:
    h = Harness(_chunks(packed, 7))
    guard = AsyncScriptedGuard()
    events: list[GuardrailEvent] = []
    mw = Guardrail(h.app, guard=guard, on_event=events.append)
    await mw(_scope(CHAT, auth_key="k", headers=[(b"content-encoding", coding.encode())]), h.receive, h.send)
    assert h.status == 200 and h.app_body == packed  # the app gets the exact bytes
    assert guard.seen[0].body == _PROMPT and events[0].outcome == "allowed"


@pytest.mark.parametrize(("on_oversize", "observe"), [("refuse", False), ("pass", False), ("refuse", True)])
async def test_a_compression_bomb_costs_at_most_the_cap(on_oversize: str, observe: bool) -> None:
    bomb = gzip.compress(b"{" + b" " * (50 << 20) + b"}")  # 50 MB of JSON in ~50 KB
    h = Harness(_chunks(bomb, 8192))
    guard = AsyncScriptedGuard()
    events: list[GuardrailEvent] = []
    mw = Guardrail(
        h.app, guard=guard, max_body_bytes=1 << 20, on_oversize=on_oversize, observe_only=observe,
        on_event=events.append,
    )  # fmt: skip
    await mw(_scope(CHAT, auth_key="k", headers=[(b"content-encoding", b"gzip")]), h.receive, h.send)
    if on_oversize == "refuse" and not observe:
        assert h.status == 413 and h.app_body is None
        assert events[0].outcome == "too_large"
    else:
        assert h.status == 200 and h.app_body == bomb and guard.seen[0].body is None
        expected = ("observed", 413) if observe else ("passed_uninspected", None)
        assert (events[0].outcome, events[0].status) == expected


_UNREADABLE = [("br", b"\x8b\x02\x80{}\x03"), ("gzip", b"not gzip"), ("zstd, gzip", gzip.compress(_PROMPT))]


@pytest.mark.parametrize(("coding", "data"), _UNREADABLE)
async def test_a_coding_guardrail_cannot_undo_is_refused_with_415(coding: str, data: bytes) -> None:
    h = Harness([{"type": "http.request", "body": data, "more_body": False}])
    mw = Guardrail(h.app, guard=AsyncScriptedGuard())
    await mw(_scope(CHAT, auth_key="k", headers=[(b"content-encoding", coding.encode())]), h.receive, h.send)
    assert h.status == 415 and h.app_body is None
    headers = dict(h.sent[0]["headers"])
    assert headers[b"accept-encoding"] == b"gzip, deflate" and headers[b"x-should-retry"] == b"false"


@pytest.mark.parametrize("observe", [False, True])
@pytest.mark.parametrize(("coding", "data"), [*_UNREADABLE, ("br", _PROMPT)])
async def test_passed_the_engine_reads_such_a_body_as_it_came(
    coding: str, data: bytes, observe: bool
) -> None:
    """``on_oversize="pass"`` (or observe-only): the app gets the bytes, and the engine reads them as an app
    that does not inflate would (a plain prompt mislabelled ``br`` is still a prompt)."""
    h = Harness([{"type": "http.request", "body": data, "more_body": False}])
    guard = AsyncScriptedGuard()
    events: list[GuardrailEvent] = []
    options: dict[str, Any] = {"observe_only": True} if observe else {"on_oversize": "pass"}
    mw = Guardrail(h.app, guard=guard, on_event=events.append, **options)
    await mw(_scope(CHAT, auth_key="k", headers=[(b"content-encoding", coding.encode())]), h.receive, h.send)
    assert h.status == 200 and h.app_body == data and guard.seen[0].body == data
    expected = ("observed", 415) if observe else ("passed_uninspected", None)
    assert (events[0].outcome, events[0].status) == expected
    assert observe or "body coding not undone: read as it came" in events[0].reasons


async def test_a_large_coded_body_inflates_in_guardrails_own_threads() -> None:
    """Beyond the inline size the inflating runs in a worker thread of guardrail's own: the app's sync
    routes holding every thread of anyio's shared pool do not hold it up."""
    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "tides " * 40_000}]}).encode()
    packed = gzip.compress(big)
    release = anyio.Event()
    blocked = anyio.to_thread.current_default_thread_limiter().total_tokens
    h = Harness(_chunks(packed, 4096))
    guard = AsyncScriptedGuard()
    mw = Guardrail(h.app, guard=guard, max_body_bytes=1 << 21)
    async with anyio.create_task_group() as tg:
        for _ in range(int(blocked)):  # the app's threads, all busy
            tg.start_soon(anyio.to_thread.run_sync, anyio.from_thread.run, release.wait)
        await anyio.sleep(0.05)
        with anyio.fail_after(5):
            await mw(_scope(CHAT, auth_key="k", headers=[(b"content-encoding", b"gzip")]), h.receive, h.send)
        release.set()
    assert len(big) > (64 << 10) and h.status == 200 and guard.seen[0].body == big


@pytest.mark.parametrize("on_oversize", ["refuse", "pass"])
async def test_inflating_that_cannot_start_in_time_is_refused_or_decided_unread(on_oversize: str) -> None:
    """guardrail's inflating threads all taken (a burst of large coded bodies): after ``check_timeout`` the
    request is refused with 503 (retry soon) under ``refuse``, so no prompt passes unread; under ``pass`` it
    is decided without its prompt, the quota and the engine's buckets still applied (passing it on
    undecided would let a flood of bombs carry every other request past them)."""
    from guardrail.adapters import _asgi

    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "tides " * 40_000}]}).encode()
    packed = gzip.compress(big)
    limiter = _asgi._inflaters()
    holders = [object() for _ in range(int(limiter.total_tokens))]
    for holder in holders:
        await limiter.acquire_on_behalf_of(holder)
    events: list[GuardrailEvent] = []
    guard = AsyncScriptedGuard()
    harnesses = [Harness(_chunks(packed, 4096)) for _ in range(2)]

    async def app(scope: Any, receive: Any, send: Any) -> None:  # each request to its own harness
        await harnesses[len(statuses)].app(scope, receive, send)

    mw = Guardrail(
        app, guard=guard, max_body_bytes=1 << 21, check_timeout=0.2, on_event=events.append, account_rpm=1,
        on_oversize=on_oversize,
    )  # fmt: skip
    statuses: list[int | None] = []
    try:
        for h in harnesses:
            with anyio.fail_after(5):
                scope = _scope(CHAT, auth_key="k", headers=[(b"content-encoding", b"gzip")])
                await mw(scope, h.receive, h.send)
            statuses.append(h.status)
    finally:
        for holder in holders:
            limiter.release_on_behalf_of(holder)
    if on_oversize == "refuse":
        assert statuses == [503, 503] and guard.seen == [] and harnesses[0].app_body is None
        headers = dict(harnesses[0].sent[0]["headers"])
        assert headers[b"retry-after"] == b"1" and headers[b"x-should-retry"] == b"true"
        assert events[0].outcome == "busy" and events[0].status == 503
    else:
        assert statuses == [200, 429]  # the quota held
        assert [f.body for f in guard.seen] == [None, None]
        assert events[0].outcome == "passed_uninspected"
        assert "body not inflated in time: decided unread" in events[0].reasons


async def test_a_root_path_ending_in_a_slash_leaves_no_uninspected_twin() -> None:
    """The mount prefix is cut off the path as it came, then the rest read canonical (as WSGI reads
    PATH_INFO): ``/api//v1/chat/completions`` under ``root_path="/api/"`` is the app's chat route."""
    h = Harness([{"type": "http.request", "body": _PROMPT, "more_body": False}])
    guard = AsyncScriptedGuard()
    mw = Guardrail(h.app, guard=guard, routes={"/v1/chat/completions": "openai"})
    scope = _scope("/api//v1/chat/completions", auth_key="k")
    scope["root_path"] = "/api/"
    await mw(scope, h.receive, h.send)
    assert h.status == 200 and len(guard.seen) == 1 and guard.seen[0].body == _PROMPT


@pytest.mark.parametrize("observe", [False, True])
async def test_lowercase_methods_and_duplicate_query_keys(observe: bool) -> None:
    """h11 passes "post" on as sent (httpx upper-cases it for a proxy's upstream): inspected as a POST.
    Several different Gemini ``key`` values: a 400, since servers differ on which one they read
    (observe-only: counted by address and passed)."""
    guard = AsyncScriptedGuard()
    events: list[GuardrailEvent] = []
    h = Harness([{"type": "http.request", "body": _PROMPT, "more_body": False}])
    mw = Guardrail(h.app, guard=guard, on_event=events.append, observe_only=observe)
    scope = _scope(CHAT, auth_key="k")
    scope["method"] = "post"
    await mw(scope, h.receive, h.send)
    assert h.status == 200 and len(guard.seen) == 1
    h = Harness([{"type": "http.request", "body": _PROMPT, "more_body": False}])
    mw = Guardrail(h.app, guard=guard, on_event=events.append, observe_only=observe)
    scope = _scope("/v1beta/models/g:generateContent")
    scope["query_string"] = b"key=DECOY&key=REAL"
    await mw(scope, h.receive, h.send)
    if observe:  # counted by the client's address, one event: the one the request ends with
        assert h.status == 200 and guard.seen[-1].account.startswith("ip:")
        assert len(events) == 2 and events[-1].outcome == "allowed"
    else:
        assert h.status == 400 and h.app_body is None and events[-1].outcome == "bad_credentials"
        assert len(guard.seen) == 1


async def test_an_upper_case_azure_path_reads_api_key_first() -> None:
    """Routes match case-blind, so the Azure check does too: a rotating Bearer decoy beside the real
    ``api-key`` on /OPENAI/DEPLOYMENTS/... is not the account."""
    guard = AsyncScriptedGuard()
    for decoy in ("D1", "D2"):
        h = Harness([{"type": "http.request", "body": _PROMPT, "more_body": False}])
        scope = _scope("/OPENAI/DEPLOYMENTS/x/CHAT/COMPLETIONS")
        scope["headers"] = [(b"api-key", b"REAL"), (b"authorization", f"Bearer {decoy}".encode())]
        await Guardrail(h.app, guard=guard)(scope, h.receive, h.send)
    assert [f.account for f in guard.seen] == ["REAL", "REAL"]


async def test_an_ambiguous_request_behind_a_trusted_proxy_is_the_clients() -> None:
    events: list[GuardrailEvent] = []
    h = Harness([{"type": "http.request", "body": _PROMPT, "more_body": False}])
    mw = Guardrail(h.app, guard=AsyncScriptedGuard(), on_event=events.append, trusted_proxies=["0.0.0.0/0"])
    scope = _scope("/v1beta/models/g:generateContent")
    scope["query_string"] = b"key=a&key=b"
    scope["headers"] = [(b"x-forwarded-for", b"9.9.9.9")]
    await mw(scope, h.receive, h.send)
    from guardrail._hashing import hash_identifier

    assert h.status == 400 and events[0].ip == hash_identifier("9.9.9.9", mw.core.secret, namespace="ip")
