"""Contracts a review found loose: guards and callables of the wrong kind refused up front, the guard's own
secret and namespace used for every hash and key, routes matched as the mounted app sees them, WSGI
refusals a strict server accepts, async event hooks run, Azure's ``api-key``, and no event loop or raw
API key kept beyond its use."""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.validate import validator

import pytest
from adapters_support import AsyncScriptedGuard, ScriptedGuard, chat_environ
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from guardrail.adapters import Guardrail, GuardrailEvent, GuardrailWSGI
from guardrail.engine import AsyncGuard, Guard
from guardrail.limiter import Limiter

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Explain how tides work."}]})


async def endpoint(request: Request) -> Response:
    await request.body()
    return JSONResponse({"ok": True})


def asgi(**options: Any) -> Starlette:
    app = Starlette(routes=[Route("/v1/chat/completions", endpoint, methods=["POST"])])
    app.add_middleware(Guardrail, **options)
    return app


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("content-type", "application/json")])
    return [b"{}"]


def post(client: TestClient, key: str, path: str = "/v1/chat/completions", **headers: str) -> int:
    h = {"authorization": f"Bearer {key}", "content-type": "application/json", **headers}
    return client.post(path, content=BODY, headers=h).status_code


# -- the wrong kind, refused at construction -----------------------------------------------------------


def test_asgi_refuses_a_sync_guard() -> None:
    with pytest.raises(ValueError, match="AsyncGuard"):
        Guardrail(endpoint, guard=Guard())
    Guardrail(endpoint, guard=AsyncScriptedGuard())  # a duck-typed async guard is fine


def test_asgi_takes_duck_typed_guards_of_either_kind() -> None:
    """A plain ``def check`` may delegate to an async guard (it returns an awaitable) or answer directly:
    both work, so neither is refused."""

    class Delegating:
        def __init__(self) -> None:
            self.inner = AsyncScriptedGuard(rpm=1)

        def check(self, facts: Any, **kw: Any) -> Any:
            return self.inner.check(facts, **kw)

        def settle(self, decision: Any, tokens: int) -> Any:
            return self.inner.settle(decision, tokens)

    for guard in (Delegating(), ScriptedGuard(rpm=1)):
        with TestClient(asgi(guard=guard)) as client:
            assert [post(client, "k") for _ in range(2)] == [200, 429]


def test_mocks_and_wrappers_are_given_the_benefit_of_the_doubt() -> None:
    from unittest.mock import MagicMock, Mock, create_autospec

    Guardrail(endpoint, guard=MagicMock(spec=AsyncGuard))
    GuardrailWSGI(wsgi_app, guard=create_autospec(Guard, instance=True))

    def identify(view: Any) -> str:
        return "u"

    Guardrail(endpoint, identify=Mock(spec=identify))
    GuardrailWSGI(wsgi_app, guard=ScriptedGuard(), on_event=MagicMock(spec=identify))


def test_wsgi_refuses_an_async_guard() -> None:
    with pytest.raises(ValueError, match="WSGI middleware needs a Guard"):
        GuardrailWSGI(wsgi_app, guard=AsyncGuard())
    with pytest.raises(ValueError, match="WSGI middleware needs a Guard"):
        GuardrailWSGI(wsgi_app, guard=AsyncScriptedGuard())
    GuardrailWSGI(wsgi_app, guard=ScriptedGuard())


def test_an_async_identify_is_refused() -> None:
    async def identify(view: Any) -> str:
        return "user-42"

    for build in (
        lambda: Guardrail(endpoint, identify=identify),
        lambda: GuardrailWSGI(wsgi_app, identify=identify),
    ):
        with pytest.raises(ValueError, match="identify must be a plain function"):
            build()


def test_wsgi_refuses_an_async_event_hook() -> None:
    async def hook(event: GuardrailEvent) -> None:
        return None

    with pytest.raises(ValueError, match="on_event must be a plain function"):
        GuardrailWSGI(wsgi_app, guard=ScriptedGuard(), on_event=hook)


def test_asgi_runs_an_async_event_hook() -> None:
    seen: list[str] = []

    async def hook(event: GuardrailEvent) -> None:
        await asyncio.sleep(0)
        seen.append(event.outcome)

    with TestClient(asgi(guard=AsyncScriptedGuard(rpm=1), on_event=hook)) as client:
        codes = [post(client, "k") for _ in range(3)]
    assert codes == [200, 429, 429]
    assert seen == ["allowed", "throttled", "throttled"]


# -- one secret, one namespace -------------------------------------------------------------------------


def test_events_hash_accounts_with_the_guards_secret() -> None:
    events: list[GuardrailEvent] = []
    guard = AsyncGuard(secret=b"g" * 32)
    with TestClient(asgi(guard=guard, on_event=events.append)) as client:
        assert post(client, "sk-alice") == 200
    assert events and events[0].account == guard.account_id("sk-alice")


def test_a_different_middleware_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="differs from the guard's own secret"):
        Guardrail(endpoint, guard=AsyncGuard(secret=b"g" * 32), secret=b"m" * 32)
    Guardrail(endpoint, guard=AsyncGuard(secret=b"g" * 32), secret=b"g" * 32)  # the same: fine


def test_the_request_quota_keys_use_the_engine_namespace() -> None:
    limiter = Limiter("memory://")  # one store, as one Redis would be for two deployments
    a = asgi(guard=AsyncGuard(limiter=limiter, namespace="a"), account_rpm=2)
    b = asgi(guard=AsyncGuard(limiter=limiter, namespace="b"), account_rpm=2)
    with TestClient(a) as ca, TestClient(b) as cb:
        assert [post(ca, "k") for _ in range(2)] == [200, 200]
        assert [post(cb, "k") for _ in range(2)] == [200, 200]  # a budget of its own
        assert post(ca, "k") == 429


# -- routes as the mounted app sees them -----------------------------------------------------------------


def test_a_mounted_app_is_inspected_on_its_own_routes() -> None:
    guard = AsyncScriptedGuard(rpm=1)
    inner = Starlette(routes=[Route("/generate", endpoint, methods=["POST"])])
    outer = Starlette(
        routes=[Mount("/api", app=Guardrail(inner, guard=guard, routes={"/generate": "openai"}))]
    )
    with TestClient(outer) as client:
        assert [post(client, "k", "/api/generate") for _ in range(2)] == [200, 429]
    assert len(guard.seen) == 2


def test_wsgi_matches_path_info_under_a_script_name() -> None:
    guard = ScriptedGuard(rpm=1)
    mw = GuardrailWSGI(wsgi_app, guard=guard, routes={"/generate": "openai"})
    statuses: list[str] = []
    for _ in range(2):
        environ = chat_environ(BODY.encode(), "k", path="/generate")
        environ["SCRIPT_NAME"] = "/api"
        body = mw(environ, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(body)
    assert [s.split()[0] for s in statuses] == ["200", "429"]


# -- WSGI refusals a strict server accepts ---------------------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def wsgiref_server() -> Iterator[int]:
    mw = GuardrailWSGI(wsgi_app, guard=ScriptedGuard(), max_body_bytes=100)
    server = make_server("127.0.0.1", 0, validator(mw), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def test_wsgi_refusals_carry_no_hop_by_hop_header(wsgiref_server: int) -> None:
    """wsgiref (and waitress) refuse an application's ``Connection`` header with a 500 of their own."""
    for size, want in ((10, 200), (1_000, 413)):
        conn = http.client.HTTPConnection("127.0.0.1", wsgiref_server, timeout=10)
        payload = json.dumps({"messages": [{"role": "user", "content": "x" * size}]}).encode()
        conn.request("POST", "/v1/chat/completions", body=payload, headers={"Authorization": "Bearer k"})
        response = conn.getresponse()
        assert response.status == want
        if want == 413:
            assert json.loads(response.read())["error"]["code"]
        conn.close()


# -- identity and memory ---------------------------------------------------------------------------------


def test_azure_api_key_header_identifies_the_account() -> None:
    guard = AsyncScriptedGuard(rpm=1)
    with TestClient(asgi(guard=guard)) as client:
        for key in ("az-1", "az-1", "az-2"):
            client.post("/v1/chat/completions", content=BODY, headers={"api-key": key})
    assert [f.account for f in guard.seen] == ["az-1", "az-1", "az-2"]


def test_the_engine_keeps_no_raw_api_key() -> None:
    guard = Guard()
    try:
        guard.account_id("sk-live-secret-value")
        held = [k for k in guard.core._ids if isinstance(k, str)]
        assert held == [] and "sk-live-secret-value" not in guard.core._ids.values()
    finally:
        guard.close()


def test_no_event_loop_is_kept_alive() -> None:
    async def raw_app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    mw = Guardrail(raw_app, guard=AsyncScriptedGuard())
    scope = {
        "type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"",
        "headers": [(b"authorization", b"Bearer k")], "client": ("127.0.0.1", 1), "root_path": "",
    }  # fmt: skip

    async def once() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": BODY.encode(), "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            return None

        await mw(scope, receive, send)

    for _ in range(20):
        asyncio.run(once())
    gc.collect()
    assert len(mw._watchdog._loops) == 0


# -- lifespan ----------------------------------------------------------------------------------------------


def _guardrail_of(app: Starlette) -> Guardrail:
    layer: Any = app.middleware_stack
    while not isinstance(layer, Guardrail):
        layer = layer.app
    return layer


def test_a_guard_built_by_the_middleware_is_closed_at_shutdown_and_reopens() -> None:
    app = asgi(storage="memory://", account_rpm=3)
    with TestClient(app) as client:
        assert post(client, "k") == 200
        mw = _guardrail_of(app)
        assert mw.guard._tasks  # the re-clustering task runs
    assert mw.guard._tasks == {}  # stopped at shutdown
    with TestClient(app) as client:  # a second start serves again, budgets kept
        assert [post(client, "k") for _ in range(3)] == [200, 200, 429]


def test_a_guard_handed_in_is_left_to_its_owner() -> None:
    class Owned(AsyncScriptedGuard):
        closed = 0

        async def aclose(self) -> None:
            Owned.closed += 1

    with TestClient(asgi(guard=Owned())) as client:
        assert post(client, "k") == 200
    assert Owned.closed == 0


def test_an_async_hook_outside_an_event_loop_is_dropped_not_kept() -> None:
    from guardrail.adapters import _events

    ran: list[GuardrailEvent] = []

    async def hook(event: GuardrailEvent) -> None:
        ran.append(event)

    event = GuardrailEvent(
        ts=0.0, path="/", provider="openai", account=None, ip=None, outcome="allowed", action=None,
        would_action=None, status=None, retry_after=0.0, reasons=(), evidence={}, error=None,
    )  # fmt: skip
    before = len(_events._hook_tasks)
    for _ in range(50):
        _events.emit(event, hook)
    assert len(_events._hook_tasks) == before and ran == []


def test_on_azure_paths_the_api_key_header_comes_first() -> None:
    """An Azure OpenAI server reads ``api-key``: a decoy ``Authorization`` must not buy a fresh budget."""
    guard = AsyncScriptedGuard(rpm=100)
    path = "/openai/deployments/gpt/chat/completions"
    with TestClient(asgi_at(path, guard=guard)) as client:
        for decoy in ("d1", "d2"):
            client.post(path, content=BODY, headers={"api-key": "az", "authorization": f"Bearer {decoy}"})
        client.post(
            "/v1/chat/completions", content=BODY, headers={"api-key": "az", "authorization": "Bearer b"}
        )
    assert [f.account for f in guard.seen] == ["az", "az", "b"]


def asgi_at(*paths: str, **options: Any) -> Starlette:
    app = Starlette(routes=[Route(p, endpoint, methods=["POST"]) for p in ("/v1/chat/completions", *paths)])
    app.add_middleware(Guardrail, **options)
    return app


def test_wsgi_names_an_async_answer_from_a_duck_guard() -> None:
    """A plain ``def check`` that returns a coroutine cannot be awaited under WSGI: the request goes
    through (guardrail never breaks the app) and the error says why."""

    class Delegating:
        def __init__(self) -> None:
            self.inner = AsyncScriptedGuard()

        def check(self, facts: Any) -> Any:
            return self.inner.check(facts)

        def settle(self, decision: Any, tokens: int) -> None:
            return None

    events: list[GuardrailEvent] = []
    mw = GuardrailWSGI(wsgi_app, guard=Delegating(), on_event=events.append)
    statuses: list[str] = []
    b"".join(mw(chat_environ(BODY.encode(), "k"), lambda s, h, e=None: statuses.append(s)))
    assert statuses[0].startswith("200")
    assert events[-1].outcome == "error" and "needs a sync guard" in (events[-1].error or "")


# -- compressed responses ----------------------------------------------------------------------------------


def test_usage_is_read_from_a_gzip_compressed_response() -> None:
    """``app.add_middleware(GZipMiddleware)`` then ``Guardrail``: the middleware sees compressed bodies
    and still settles the real usage."""
    from starlette.middleware.gzip import GZipMiddleware

    async def chat(request: Request) -> Response:
        await request.body()
        return JSONResponse({"usage": {"completion_tokens": 21}, "text": "lorem ipsum " * 200})

    guard = AsyncScriptedGuard()
    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app.add_middleware(GZipMiddleware, minimum_size=100)
    app.add_middleware(Guardrail, guard=guard)
    with TestClient(app) as client:
        r = client.post("/v1/chat/completions", content=BODY, headers={"authorization": "Bearer k"})
    assert r.headers.get("content-encoding") == "gzip" and r.json()["usage"]["completion_tokens"] == 21
    assert [tokens for _, tokens in guard.settled] == [21]


def test_usage_is_read_from_a_gzip_compressed_event_stream() -> None:
    """A compressed stream (an upstream behind the proxy, a gateway): inflated step by step, never kept."""
    import zlib

    async def upstream(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        headers = [(b"content-type", b"text/event-stream"), (b"content-encoding", b"gzip")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        packer = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        for i in range(40):
            event = f'data: {{"choices": [{{"delta": {{"content": "word {i} "}}}}]}}\n\n'.encode()
            chunk = packer.compress(event) + packer.flush(zlib.Z_SYNC_FLUSH)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        tail = b'data: {"choices": [], "usage": {"completion_tokens": 33}}\n\ndata: [DONE]\n\n'
        await send(
            {"type": "http.response.body", "body": packer.compress(tail) + packer.flush(), "more_body": False}
        )

    guard = AsyncScriptedGuard()
    client = TestClient(Guardrail(upstream, guard=guard))  # no lifespan: the raw app serves http only
    r = client.post("/v1/chat/completions", content=BODY, headers={"authorization": "Bearer k"})
    assert "completion_tokens" in r.text  # the client got it whole (and inflated)
    assert [tokens for _, tokens in guard.settled] == [33]
