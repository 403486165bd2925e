"""Regression tests from an adversarial review of the HTTP edge: each test is one way it broke.

Raw ASGI harnesses drive the middleware message by message where a framework would hide the edge case;
Starlette's TestClient and werkzeug's environs where the real framework matters.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from typing import Any

import anyio
import pytest
from adapters_support import AsyncScriptedGuard, ScriptedGuard, read_all
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.test import EnvironBuilder

from guardrail.adapters import Guardrail, GuardrailEvent, GuardrailWSGI
from guardrail.adapters._body import BodyStatus, declared_length, parse_length

pytestmark = pytest.mark.anyio

CHAT = "/v1/chat/completions"
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Explain tides."}]}).encode()


def scope_for(
    path: str = CHAT, *, method: str = "POST", headers: list[tuple[bytes, bytes]] | None = None
) -> Any:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", b"Bearer sk-raw-secret-key-123"), *(headers or [])],
        "client": ("203.0.113.5", 5000),
        "server": ("127.0.0.1", 8000),
    }


class Client:
    """Scripted receive, recorded send; the app records every message it received."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = list(messages)
        self.sent: list[dict[str, Any]] = []
        self.app_received: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.messages:
            return self.messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            self.app_received.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok", "more_body": False})

    @property
    def status(self) -> int | None:
        return self.sent[0]["status"] if self.sent else None

    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])


def one(body: bytes) -> list[dict[str, Any]]:
    return [{"type": "http.request", "body": body, "more_body": False}]


# -- 1. a constant response-start message must not be mutated (it leaked one account's quota to the next)


def test_constant_start_message_is_not_mutated_across_requests() -> None:
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json")],
    }
    original = list(start["headers"])

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(start)  # a module-level constant, as some hand-written ASGI apps do
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    client = TestClient(Guardrail(app, guard=AsyncScriptedGuard(), account_rpm=10))
    first = client.post(CHAT, content=BODY, headers={"authorization": "Bearer alice"})
    second = client.post(CHAT, content=BODY, headers={"authorization": "Bearer bob"})
    assert start["headers"] == original
    assert first.headers["x-ratelimit-remaining-requests"] == "9"
    assert second.headers["x-ratelimit-remaining-requests"] == "9"  # bob's own figure, not alice's


# -- 2. a trailing slash must not be an uninspected twin of an LLM route


def test_trailing_slash_is_inspected() -> None:
    async def echo(request: Request) -> Response:
        return JSONResponse({"len": len(await request.body())})

    guard = AsyncScriptedGuard()
    app = Starlette(routes=[Route(CHAT + "/", echo, methods=["POST"]), Route(CHAT, echo, methods=["POST"])])
    app.add_middleware(Guardrail, guard=guard)
    client = TestClient(app)
    assert client.post(CHAT + "/", content=BODY, headers={"authorization": "Bearer k"}).status_code == 200
    assert client.post(CHAT + "//", content=BODY, headers={"authorization": "Bearer k"}).status_code in (
        200,
        404,
    )
    assert [f.path for f in guard.seen][:1] == [CHAT + "/"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT"])
async def test_non_post_methods_pass_uninspected(method: str) -> None:
    guard = AsyncScriptedGuard()
    c = Client(one(b""))
    await Guardrail(c.app, guard=guard)(scope_for(method=method), c.receive, c.send)
    assert c.status == 200 and guard.seen == []


# -- 3. Content-Length values that used to raise (int() of 5000 digits) or are otherwise odd


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"9" * 5000, 10**18),  # int() refuses past 4300 digits: was a ValueError, a 500
        (b"0" * 40 + b"12", 12),
        (b" 12 ", 12),
        (b"-1", None),
        (b"+12", None),
        (b"1e3", None),
        (b"12, 12", None),
        (b"", None),
        (b"\xb2", None),  # latin-1 superscript two: str.isdigit() says yes, int() says no
        ("\u0661\u0662".encode(), None),  # Arabic-Indic digits
    ],
)
def test_parse_length(value: bytes, expected: int | None) -> None:
    assert parse_length(value) == expected
    assert parse_length(value.decode("latin-1")) == expected


async def test_absurd_and_conflicting_content_lengths_never_raise() -> None:
    for headers, status in [
        ([(b"content-length", b"9" * 5000)], 413),
        ([(b"content-length", b"5"), (b"content-length", b"6")], 400),
        ([(b"content-length", b"\xb2")], 400),
        ([(b"content-length", b"-3")], 400),
    ]:
        c = Client(one(BODY))
        await Guardrail(c.app, guard=AsyncScriptedGuard())(scope_for(headers=headers), c.receive, c.send)
        assert c.status == status, headers
    assert declared_length([(b"content-length", b"7"), (b"content-length", b" 7")]) == 7
    assert declared_length([(b"content-length", b"x")]) is BodyStatus.BAD_LENGTH


@pytest.mark.parametrize("declared", [b"1", b"100000"])
async def test_content_length_lies_are_replayed_as_received(declared: bytes) -> None:
    # The server enforces the framing; whatever it delivers reaches the app byte for byte, once.
    c = Client([{"type": "http.request", "body": BODY[:10], "more_body": True}, *one(BODY[10:])])
    await Guardrail(c.app, guard=AsyncScriptedGuard())(
        scope_for(headers=[(b"content-length", declared)]), c.receive, c.send
    )
    assert c.status == 200
    assert c.app_received == [{"type": "http.request", "body": BODY, "more_body": False}]


async def test_after_the_replay_the_app_sees_the_real_disconnect() -> None:
    c = Client(one(BODY))
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(await receive())
        seen.append(await receive())  # e.g. a streaming endpoint watching for the client leaving

    await Guardrail(app, guard=AsyncScriptedGuard())(scope_for(), c.receive, c.send)
    assert seen == [{"type": "http.request", "body": BODY, "more_body": False}, {"type": "http.disconnect"}]


async def test_invalid_utf8_and_huge_headers() -> None:
    guard = AsyncScriptedGuard()
    headers = [(b"x-junk-%d" % i, b"\xff\xfe" * 100) for i in range(500)]
    headers += [(b"x-forwarded-for", b"\xff, 1.2.3.4"), (b"x-api-key", b"\xc3\x28")]
    c = Client(one(b"\xff\xfe{\x00"))
    scope = scope_for(headers=headers)
    scope["headers"] = scope["headers"][1:]  # no bearer: the x-api-key (invalid UTF-8) is the account
    await Guardrail(c.app, guard=guard, trusted_proxies=["203.0.113.0/24"])(scope, c.receive, c.send)
    assert c.status == 200
    assert guard.seen[0].account == b"\xc3\x28".decode("latin-1") and guard.seen[0].ip == "1.2.3.4"


# -- 4. an engine that hangs must not hold the request; one that raises must not log the raw key


class HangingGuard:
    def __init__(self, *, hang_check: bool) -> None:
        self.hang_check = hang_check
        self.inner = AsyncScriptedGuard()

    async def check(self, facts: Any) -> Any:
        if self.hang_check:
            await asyncio.sleep(3600)
        return await self.inner.check(facts)

    async def settle(self, decision: Any, tokens: int) -> None:
        await asyncio.sleep(3600)


async def test_hanging_engine_fails_open_within_the_check_timeout() -> None:
    events: list[GuardrailEvent] = []
    for hang_check in (True, False):  # a stuck check, then a stuck settle after the response
        c = Client(one(BODY))
        mw = Guardrail(
            c.app, guard=HangingGuard(hang_check=hang_check), check_timeout=0.05, on_event=events.append
        )
        with anyio.fail_after(5):
            await mw(scope_for(), c.receive, c.send)
        assert c.status == 200 and c.app_received[0]["body"] == BODY
    assert events[0].outcome == "error" and "TimeoutError" in (events[0].error or "")
    assert events[1].outcome == "allowed"


async def test_an_outside_cancellation_during_the_check_still_propagates() -> None:
    c = Client(one(BODY))
    mw = Guardrail(c.app, guard=HangingGuard(hang_check=True), check_timeout=60)
    with anyio.move_on_after(0.05) as scope:
        await mw(scope_for(), c.receive, c.send)
    assert scope.cancelled_caught and c.sent == []


class LeakyGuard:
    async def check(self, facts: Any) -> Any:
        # an exception quoting the raw credential (RequestFacts' own repr hides it, a guard's message may not)
        raise RuntimeError(f"store rejected account={facts.account!r} {facts!r}")

    async def settle(self, decision: Any, tokens: int) -> None:
        pass


def test_engine_errors_never_log_the_raw_api_key(caplog: pytest.LogCaptureFixture) -> None:
    events: list[GuardrailEvent] = []
    c = Client(one(BODY))
    mw = Guardrail(c.app, guard=LeakyGuard(), on_event=events.append)
    with caplog.at_level(logging.DEBUG, logger="guardrail"):
        asyncio.run(mw(scope_for(), c.receive, c.send))
    assert c.status == 200
    logged = "\n".join(r.getMessage() + str(getattr(r, "guardrail", "")) for r in caplog.records)
    assert "store rejected" in logged and "<redacted>" in logged
    assert "sk-raw-secret-key-123" not in logged
    assert "sk-raw-secret-key-123" not in repr([e.as_dict() for e in events])


def test_wsgi_engine_errors_never_log_the_raw_api_key(caplog: pytest.LogCaptureFixture) -> None:
    class Leaky:
        def check(self, facts: Any) -> Any:
            raise RuntimeError(f"store rejected {facts!r}")

        def settle(self, decision: Any, tokens: int) -> None:
            pass

    env = EnvironBuilder(
        path=CHAT, method="POST", data=BODY, headers={"authorization": "Bearer sk-raw-secret-key-123"}
    ).get_environ()
    with caplog.at_level(logging.DEBUG, logger="guardrail"):
        status = call_wsgi(GuardrailWSGI(ok_wsgi, guard=Leaky()), env)[0]
    assert status.startswith("200")
    assert "sk-raw-secret-key-123" not in "\n".join(r.getMessage() for r in caplog.records)


# -- 5. secrecy: nothing about detection in a response unless a debug option asks for it


def test_default_responses_carry_no_engine_figures() -> None:
    async def echo(request: Request) -> Response:
        await request.body()
        return JSONResponse({"ok": True})

    def app(**options: Any) -> TestClient:
        a = Starlette(routes=[Route(CHAT, echo, methods=["POST"])])
        a.add_middleware(Guardrail, guard=AsyncScriptedGuard(rpm=2, blocked=frozenset({"bad"})), **options)
        return TestClient(a)

    client = app()
    hdr = {"authorization": "Bearer flood"}
    allowed = client.post(CHAT, content=BODY, headers=hdr)
    assert not [k for k in allowed.headers if "ratelimit" in k]  # the engine's buckets stay private
    client.post(CHAT, content=BODY, headers=hdr)
    throttled = client.post(CHAT, content=BODY, headers=hdr)
    assert throttled.status_code == 429
    assert set(throttled.headers) == {
        "content-type",
        "content-length",
        "retry-after",
        "retry-after-ms",
        "x-should-retry",
    }
    blocked = client.post(CHAT, content=BODY, headers={"authorization": "Bearer bad"})
    assert set(blocked.headers) == {"content-type", "content-length", "x-should-retry"}
    for r in (throttled, blocked):
        assert "0.97" not in r.text and "budget" not in r.text and "score" not in r.text
    # The documented debug switch shows them.
    assert (
        "x-ratelimit-limit-tokens"
        in app(expose_engine_limits=True).post(CHAT, content=BODY, headers=hdr).headers
    )


def test_with_a_quota_an_engine_throttle_looks_like_a_quota_throttle() -> None:
    """Every answer carries the quota's headers: a 429 without them would tell a flagged account that
    detection, not its quota, refused it. The engine's 429 wears the quota's headers, spent."""

    async def echo(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True})

    def app(rpm: float, engine_rpm: int) -> TestClient:
        a = Starlette(routes=[Route(CHAT, echo, methods=["POST"])])
        a.add_middleware(Guardrail, guard=AsyncScriptedGuard(rpm=engine_rpm), account_rpm=rpm)
        return TestClient(a)

    hdr = {"authorization": "Bearer flood"}
    by_engine = app(rpm=100, engine_rpm=1)
    assert by_engine.post(CHAT, content=BODY, headers=hdr).headers["ratelimit-policy"] == '"requests";q=100'
    engine_429 = by_engine.post(CHAT, content=BODY, headers=hdr)
    by_quota = app(rpm=1, engine_rpm=100)
    by_quota.post(CHAT, content=BODY, headers=hdr)
    quota_429 = by_quota.post(CHAT, content=BODY, headers=hdr)
    assert engine_429.status_code == quota_429.status_code == 429
    assert set(engine_429.headers) == set(quota_429.headers)
    assert engine_429.json().keys() == quota_429.json().keys()
    assert engine_429.headers["x-ratelimit-remaining-requests"] == "0"
    assert engine_429.headers["x-ratelimit-reset-requests"] == "1m0s"  # a spent quota's whole refill
    assert engine_429.headers["ratelimit-policy"] == '"requests";q=100'
    # ... and a spent quota's wait (one more request of 100 a minute: 0.6 s), not the engine bucket's
    # minute, which no 100-a-minute quota would ever ask for
    assert engine_429.headers["retry-after-ms"] == "600" and engine_429.headers["retry-after"] == "1"


def test_a_quota_429_waits_as_the_quota_would_when_an_engine_bucket_refuses_too() -> None:
    """The quota and the engine's account bucket refuse in one limiter call: the decision's wait is the
    longest of the two (the engine bucket's hours), the 429 shows the quota's (at most 30 s at 2/min)."""
    from guardrail.engine import AsyncGuard, Policy
    from guardrail.limiter import Limit

    async def echo(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True})

    guard = AsyncGuard("memory://", policy=Policy(account_limit=Limit(rate=1 / 60, burst=1300)))
    a = Starlette(routes=[Route(CHAT, echo, methods=["POST"])])
    a.add_middleware(Guardrail, guard=guard, account_rpm=2)
    big = json.dumps({"model": "m", "max_tokens": 600, "messages": [{"role": "user", "content": "hi " * 50}]})
    with TestClient(a) as client:
        hdr = {"authorization": "Bearer both-refuse"}
        answers = [client.post(CHAT, content=big, headers=hdr) for _ in range(3)]
    refused = [r for r in answers if r.status_code == 429]
    assert refused, [r.status_code for r in answers]
    for r in refused:
        assert int(r.headers["retry-after"]) <= 30 and r.headers["ratelimit-policy"] == '"requests";q=2'


# -- 6. one middleware serving several event loops (threads): each loop's deadlines fire on its own


def test_watchdog_serves_several_loops_at_once() -> None:
    mw = Guardrail(Client([]).app, guard=AsyncScriptedGuard(), body_timeout=0.1)
    statuses: list[int | None] = []

    class Stalled(Client):
        async def receive(self) -> dict[str, Any]:
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

    def run() -> None:
        c = Stalled([])
        asyncio.run(asyncio.wait_for(mw(scope_for(), c.receive, c.send), 10))
        statuses.append(c.status)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert statuses == [408, 408, 408]


# -- 7. WSGI: odd CONTENT_LENGTH and inputs that raise non-OSError exceptions


def ok_wsgi(environ: Any, start_response: Any) -> Any:
    environ["wsgi.input"].read()
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"ok"]


def call_wsgi(mw: Any, environ: Any) -> tuple[str, bytes]:
    captured: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        captured.append(status)
        return lambda data: None

    result = mw(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return captured[-1], body


@pytest.mark.parametrize(
    ("length", "status"), [("\xb2", "400"), ("9" * 5000, "413"), ("-1", "400"), ("", "200")]
)
def test_wsgi_odd_content_length(length: str, status: str) -> None:
    env = EnvironBuilder(
        path=CHAT, method="POST", data=BODY, headers={"authorization": "Bearer k"}
    ).get_environ()
    env["CONTENT_LENGTH"] = length
    assert call_wsgi(GuardrailWSGI(ok_wsgi, guard=ScriptedGuard()), env)[0].startswith(status)


def test_wsgi_input_raising_a_framework_error_is_a_400() -> None:
    class ClientGone(Exception):  # werkzeug's ClientDisconnected / gunicorn's ParseException are not OSError
        pass

    class Broken(io.RawIOBase):
        def read(self, n: int = -1) -> bytes:
            raise ClientGone("gone")

    env = EnvironBuilder(
        path=CHAT, method="POST", data=BODY, headers={"authorization": "Bearer k"}
    ).get_environ()
    env["wsgi.input"] = Broken()
    assert call_wsgi(GuardrailWSGI(ok_wsgi, guard=ScriptedGuard()), env)[0].startswith("400")


# -- 8. the reverse proxy: an uninspected route's body is streamed (no cap applies there), not buffered


async def test_proxy_streams_uninspected_bodies_and_drops_a_departed_client() -> None:
    from guardrail.cli._proxy import ProxyApp

    seen: list[tuple[str | None, bytes]] = []

    async def handler(request: Any) -> Any:
        import httpx

        seen.append((request.headers.get("content-length"), await request.aread()))

        async def answer() -> Any:
            yield b"done"

        return httpx.Response(200, content=answer())

    import httpx

    inner = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    proxy = ProxyApp("http://upstream", client=inner)
    parts = [b"a" * 1000, b"b" * 1000, b"c"]
    c = Client([{"type": "http.request", "body": p, "more_body": i < 2} for i, p in enumerate(parts)])
    scope = scope_for("/v1/embeddings", headers=[(b"content-length", b"2001")])
    await proxy(scope, c.receive, c.send)
    assert c.status == 200 and seen == [("2001", b"".join(parts))]
    # A client that leaves mid-body: nothing is sent upstream, nothing answered.
    gone = Client([{"type": "http.request", "body": b"x", "more_body": True}])
    await proxy(scope_for("/v1/embeddings"), gone.receive, gone.send)
    assert gone.sent == [] and len(seen) == 1
    await inner.aclose()


# -- 9. a real uvicorn on 127.0.0.1: streaming unbuffered, raw-socket framing attacks, encoded paths


class _Served:
    """A uvicorn server in a thread (its own event loop) around an app; stopped on exit."""

    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Served:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def raw(self, request: bytes) -> bytes:
        import socket

        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                piece = s.recv(65536)
                if not piece:
                    break
                data += piece
            return data


def test_real_uvicorn_streaming_and_framing() -> None:
    import httpx

    release = threading.Event()
    guard = AsyncScriptedGuard()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_all(receive)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b'data: {"n":1}\n\n', "more_body": True})
        for _ in range(500):  # the client must see the first event before this one is released
            if release.is_set():
                break
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b'data: {"usage":{"completion_tokens":3}}\n\n'})

    with _Served(Guardrail(app, guard=guard)) as served:
        url = f"http://127.0.0.1:{served.port}"
        with (
            httpx.Client(timeout=10) as client,
            client.stream("POST", url + CHAT, content=BODY, headers={"authorization": "Bearer s"}) as r,
        ):
            chunks = r.iter_raw()
            first = next(chunks)
            assert first.startswith(b'data: {"n":1}') and not release.is_set()  # arrived before the end
            release.set()
            assert b"usage" in b"".join(chunks)
        # Framing attacks are the server's to refuse (never a 500 from us); an encoded path is inspected.
        head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n".encode("latin-1")
        for extra in (
            b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"Content-Length: -5\r\n\r\n",
            b"Content-Length: abc\r\n\r\n",
        ):
            status = served.raw(head + extra).split(b" ", 2)[1]
            assert status[:1] in (b"2", b"4"), (extra, status)  # CL + TE: uvicorn reads it chunked
        release.set()
        before = len(guard.seen)
        r2 = httpx.post(url + "/v1/chat%2Fcompletions", content=BODY, headers={"authorization": "Bearer p"})
        assert r2.status_code == 200 and len(guard.seen) == before + 1
    assert guard.settled[0] == ("s", 3)


# -- 10. logging a refusal whose evidence cannot be deep-copied (asdict) must not become a 500


def test_uncopyable_evidence_is_logged_without_failing(caplog: pytest.LogCaptureFixture) -> None:
    import dataclasses

    class Odd(AsyncScriptedGuard):
        async def check(self, facts: Any) -> Any:
            decision = await super().check(facts)
            return dataclasses.replace(decision, evidence={"lock": threading.Lock()})

    c = Client(one(BODY))
    mw = Guardrail(c.app, guard=Odd(blocked=frozenset({"sk-raw-secret-key-123"})))
    with caplog.at_level(logging.INFO, logger="guardrail.adapters"):
        asyncio.run(mw(scope_for(), c.receive, c.send))
    assert c.status == 403
    assert any("blocked" in r.getMessage() for r in caplog.records)


# -- 11. observe-only refuses nothing, body checks included


async def test_observe_only_passes_oversize_and_stalled_bodies() -> None:
    events: list[Any] = []
    big = Client([{"type": "http.request", "body": b"x" * 100, "more_body": False}])
    mw = Guardrail(
        big.app, guard=AsyncScriptedGuard(), max_body_bytes=10, observe_only=True, on_event=events.append
    )
    await mw(scope_for(headers=[(b"content-length", b"100")]), big.receive, big.send)
    assert big.status == 200 and b"".join(m.get("body", b"") for m in big.app_received) == b"x" * 100
    bad = Client(one(BODY))
    await mw(scope_for(headers=[(b"content-length", b"12, 13")]), bad.receive, bad.send)
    assert bad.status == 200
    # recorded as the refusals enforcing would send, so a rollout can count them
    assert [(e.outcome, e.status) for e in events] == [("observed", 413), ("observed", 400)]
    assert "would be refused with 413" in events[0].reasons[-1]

    class Stalling(Client):
        async def receive(self) -> dict[str, Any]:
            if self.messages:
                return self.messages.pop(0)
            await asyncio.sleep(0.3)  # the rest arrives after the body deadline
            return {"type": "http.request", "body": b"rest", "more_body": False}

    slow = Stalling([{"type": "http.request", "body": b"head", "more_body": True}])
    events.clear()
    mw = Guardrail(
        slow.app, guard=AsyncScriptedGuard(), body_timeout=0.05, observe_only=True, on_event=events.append
    )
    await mw(scope_for(), slow.receive, slow.send)
    assert slow.status == 200 and b"".join(m.get("body", b"") for m in slow.app_received) == b"headrest"
    assert [(e.outcome, e.status) for e in events] == [("observed", 408)]
    # a stalled body gets 408 whatever on_oversize says: observe-only records it so with "pass" too
    events.clear()
    stalled = Stalling([{"type": "http.request", "body": b"head", "more_body": True}])
    mw = Guardrail(
        stalled.app, guard=AsyncScriptedGuard(), body_timeout=0.05, observe_only=True, on_oversize="pass",
        on_event=events.append,
    )  # fmt: skip
    await mw(scope_for(), stalled.receive, stalled.send)
    assert stalled.status == 200 and [(e.outcome, e.status) for e in events] == [("observed", 408)]
    # with on_oversize="pass" an unread body is passed uninspected whatever the mode
    events.clear()
    again = Client([{"type": "http.request", "body": b"x" * 100, "more_body": False}])
    passing = Guardrail(
        again.app, guard=AsyncScriptedGuard(), max_body_bytes=10, on_oversize="pass", observe_only=True,
        on_event=events.append,
    )  # fmt: skip
    await passing(scope_for(headers=[(b"content-length", b"100")]), again.receive, again.send)
    assert [(e.outcome, e.status) for e in events] == [("passed_uninspected", None)]


# -- 12. a rotating credential in a header the app does not read must not buy a fresh budget


async def test_rotating_decoy_credentials_do_not_change_the_account() -> None:
    guard = AsyncScriptedGuard()
    for i in range(3):
        c = Client(one(BODY))
        headers = [(b"x-api-key", b"ant-real"), (b"authorization", b"Bearer decoy-%d" % i)]
        scope = scope_for("/v1/messages", headers=headers)
        scope["headers"] = headers
        await Guardrail(c.app, guard=guard)(scope, c.receive, c.send)
        c = Client(one(BODY))
        scope = scope_for(headers=[(b"authorization", b"Bearer decoy-%d" % i)])
        scope["headers"] = [(b"authorization", b"Basic cmVhbA=="), (b"authorization", b"Bearer decoy-%d" % i)]
        await Guardrail(c.app, guard=guard)(scope, c.receive, c.send)
    assert {f.account for f in guard.seen} == {"ant-real", "Basic cmVhbA=="}


def test_identify_errors_never_log_credentials(caplog: pytest.LogCaptureFixture) -> None:
    def identify(view: Any) -> str:
        raise ValueError(f"no subject in {view!r}")

    c = Client(one(BODY))
    with caplog.at_level(logging.DEBUG, logger="guardrail"):
        asyncio.run(
            Guardrail(c.app, guard=AsyncScriptedGuard(), identify=identify)(scope_for(), c.receive, c.send)
        )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "no subject" in logged and "sk-raw-secret-key-123" not in logged


def test_identify_errors_never_log_a_custom_token_or_the_address(caplog: pytest.LogCaptureFixture) -> None:
    """An app's own token header is as secret as the standard ones, and the client's address is
    personal data: an identify callable that quotes them in its error gets them masked."""

    def identify(view: Any) -> str:
        token = dict(view.headers)["x-user-token"]
        raise ValueError(f"bad token {token} from {view.client} for {view.query}")

    c = Client(one(BODY))
    scope = scope_for()
    scope["headers"] = [*scope["headers"], (b"x-user-token", b"tok-very-private-77")]
    scope["query_string"] = b"session=sess-private-88"
    scope["client"] = ("203.0.113.77", 5000)
    with caplog.at_level(logging.DEBUG, logger="guardrail"):
        asyncio.run(Guardrail(c.app, guard=AsyncScriptedGuard(), identify=identify)(scope, c.receive, c.send))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "bad token" in logged and c.status == 200
    for private in ("tok-very-private-77", "203.0.113.77", "sess-private-88"):
        assert private not in logged


def test_a_short_header_value_inside_a_key_does_not_break_its_masking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Masked longest first: ``python`` (an SDK's header) inside the key must not cut the key apart."""

    def identify(view: Any) -> str:
        raise ValueError(f"bad {dict(view.headers)['authorization']}")

    c = Client(one(BODY))
    scope = scope_for()
    scope["headers"] = [(b"x-stainless-lang", b"python"), (b"authorization", b"Bearer sk-SECRETpythonTAIL9")]
    with caplog.at_level(logging.DEBUG, logger="guardrail"):
        asyncio.run(Guardrail(c.app, guard=AsyncScriptedGuard(), identify=identify)(scope, c.receive, c.send))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "bad" in logged and "SECRET" not in logged and "TAIL9" not in logged


async def test_proxy_refuses_targets_that_would_name_another_host() -> None:
    import httpx

    from guardrail.cli._proxy import ProxyApp

    seen: list[str] = []

    async def handler(request: Any) -> Any:
        seen.append(str(request.url))

        async def answer() -> Any:
            yield b"ok"

        return httpx.Response(200, content=answer())

    inner = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    proxy = ProxyApp("http://llm", client=inner)
    # h11 hands uvicorn any non-blank request target: these would have made the URL http://llm.evil.com/x
    for target in (b".evil.com/x", b"http://evil.com/v1/x", b"evil.com:80/x"):
        c = Client(one(b""))
        scope = scope_for("/ignored")
        scope["raw_path"], scope["path"] = target, target.decode()
        await proxy(scope, c.receive, c.send)
        assert c.status == 400, target
    c = Client(one(b""))
    scope = scope_for("//evil.com/x")
    await proxy(scope, c.receive, c.send)  # an origin-form path stays on the upstream host (canonical)
    assert c.status == 200 and seen == ["http://llm/evil.com/x"]
    await inner.aclose()


# -- 13. body-read edge cases of the watchdog and of servers whose receive() raises


async def test_refused_unread_body_leaves_no_watch_behind() -> None:
    c = Client(one(BODY))
    mw = Guardrail(c.app, guard=AsyncScriptedGuard(), max_body_bytes=5, on_oversize="pass", body_timeout=0.05)
    slow_app_done = False

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal slow_app_done
        await asyncio.sleep(0.3)  # well past body_timeout: a stale read watch would cancel us here
        await c.app(scope, receive, send)
        slow_app_done = True

    mw.app = slow_app
    await mw(scope_for(headers=[(b"content-length", str(len(BODY)).encode())]), c.receive, c.send)
    assert slow_app_done and c.status == 200
    assert not any(lw.reads for lw in mw._watchdog._loops.values())
    # A refused one (413 before a byte is read) must not leave its watch (and its task) registered.
    refused = Client(one(BODY))
    mw = Guardrail(refused.app, guard=AsyncScriptedGuard(), max_body_bytes=5)
    await mw(scope_for(headers=[(b"content-length", str(len(BODY)).encode())]), refused.receive, refused.send)
    assert refused.status == 413
    assert not any(lw.reads for lw in mw._watchdog._loops.values())


async def test_receive_raising_is_a_disconnect_not_a_crash() -> None:
    class Raising(Client):
        async def receive(self) -> dict[str, Any]:
            raise OSError("connection reset")

    c = Raising([])
    await Guardrail(c.app, guard=AsyncScriptedGuard())(scope_for(), c.receive, c.send)
    assert c.sent == [] and c.app_received == []
