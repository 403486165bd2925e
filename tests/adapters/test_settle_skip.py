"""A decision with nothing to settle (no engine bucket charged: nearly every honest request) leaves the
response unread; one that charged a bucket is settled from the response's real usage, on both adapters."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from adapters_support import chat_environ
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from guardrail.adapters import Guardrail, GuardrailWSGI
from guardrail.engine import Action, AsyncGuard, Decision, Guard, Policy
from guardrail.engine._types import Ticket
from guardrail.limiter import BucketRequest, Limit

CHAT = "/v1/chat/completions"
BODY = b'{"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hello there"}]}'
USAGE = {"usage": {"completion_tokens": 7}}


async def reply(request: Request) -> Response:
    await request.body()
    return JSONResponse(USAGE)


def _asgi_settles(guard: AsyncGuard) -> list[int]:
    settled: list[int] = []
    original = guard.settle

    async def spy(decision: Decision, output_tokens: int) -> None:
        settled.append(output_tokens)
        await original(decision, output_tokens)

    guard.settle = spy  # type: ignore[method-assign]
    client = TestClient(Guardrail(Starlette(routes=[Route(CHAT, reply, methods=["POST"])]), guard=guard))
    for _ in range(3):
        r = client.post(CHAT, content=BODY, headers={"authorization": "Bearer k"})
        assert r.status_code == 200 and r.json() == USAGE
    return settled


def _wsgi_settles(guard: Guard) -> list[int]:
    settled: list[int] = []
    original = guard.settle

    def spy(decision: Decision, output_tokens: int) -> None:
        settled.append(output_tokens)
        original(decision, output_tokens)

    guard.settle = spy  # type: ignore[method-assign]

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"usage": {"completion_tokens": 7}}']

    mw = GuardrailWSGI(app, guard=guard)
    status: list[str] = []
    for _ in range(3):
        env = chat_environ(BODY, "k")
        result = mw(env, lambda s, h, e=None: status.append(s))
        assert b"".join(result) == b'{"usage": {"completion_tokens": 7}}'
        close = getattr(result, "close", None)  # as a server does: only an iterable that has one
        if close is not None:
            close()
    assert status == ["200 OK"] * 3
    return settled


def test_decision_settles_only_with_charged_buckets() -> None:
    bucket = BucketRequest("k", Limit(rate=1.0, burst=10.0), 1.0)
    plain = Decision(Action.ALLOW, Action.ALLOW, 0.0, None, None, None, (), {}, Ticket((), 0, None))
    charged = Decision(Action.ALLOW, Action.ALLOW, 0.0, None, None, None, (), {}, Ticket((bucket,), 0, None))
    foreign = Decision(Action.ALLOW, Action.ALLOW, 0.0, None, None, None, (), {}, "a custom guard's ticket")
    assert not plain.settles and charged.settles and foreign.settles


def test_honest_requests_are_not_settled_on_either_adapter() -> None:
    assert _asgi_settles(AsyncGuard("memory://")) == []
    with Guard("memory://") as guard:
        assert _wsgi_settles(guard) == []


def test_a_charged_account_bucket_is_settled_from_the_usage_on_either_adapter() -> None:
    policy = Policy(account_limit=Limit(rate=1000.0, burst=1e6))
    assert _asgi_settles(AsyncGuard("memory://", policy=policy)) == [7, 7, 7]
    with Guard("memory://", policy=policy) as guard:
        assert _wsgi_settles(guard) == [7, 7, 7]


def test_a_guard_of_the_callers_is_settled_even_for_an_engine_decision() -> None:
    # A wrapper may meter usage in its own settle: only the engine's settle is known to be a no-op.
    class Metering(AsyncGuard):
        async def settle(self, decision: Decision, output_tokens: int) -> None:
            metered.append(output_tokens)

    metered: list[int] = []
    assert _asgi_settles(Metering("memory://")) == [7, 7, 7] and metered == [7, 7, 7]

    class SyncMetering(Guard):
        def settle(self, decision: Decision, output_tokens: int) -> None:
            metered.append(output_tokens)

    with SyncMetering("memory://") as guard:
        assert _wsgi_settles(guard) == [7, 7, 7]


def test_an_untouched_response_is_the_apps_own_on_either_adapter() -> None:
    # Nothing to add, nothing to settle: the WSGI app's iterable goes back as it is (a server's
    # ``wsgi.file_wrapper`` keeps its sendfile path) and the ASGI app sends to the server's own send.
    wrapped = iter([b"{}"])

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/json")])
        return wrapped

    with Guard("memory://") as guard:
        assert GuardrailWSGI(app, guard=guard)(chat_environ(BODY, "k"), lambda *a: None) is wrapped
        metered = GuardrailWSGI(app, guard=guard, account_rpm=100)  # quota headers: wrapped
        assert metered(chat_environ(BODY, "k"), lambda *a: None) is not wrapped

    sends: list[Any] = []

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        sends.append(send)
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def run(middleware: Guardrail) -> Any:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def server_send(message: dict[str, Any]) -> None:
            return None

        scope = {
            "type": "http",
            "method": "POST",
            "path": CHAT,
            "headers": [(b"authorization", b"Bearer k"), (b"content-length", str(len(BODY)).encode())],
            "client": ("192.0.2.1", 1),
        }
        await middleware(scope, receive, server_send)
        return server_send

    plain = asyncio.run(run(Guardrail(asgi_app, guard=AsyncGuard("memory://"))))
    metered_send = asyncio.run(run(Guardrail(asgi_app, guard=AsyncGuard("memory://"), account_rpm=100)))
    assert len(sends) == 2 and sends[0] is plain and sends[1] is not metered_send


def test_a_body_with_too_many_arrays_and_objects_is_over_the_cap_on_either_adapter() -> None:
    """Parsing costs per container: a body of a quarter million ``[]`` (well under the byte cap) is
    treated as over the cap, 413 under ``refuse``, passed unread under ``pass``; never parsed."""
    from guardrail.extract import MAX_CONTAINERS

    heavy = b'{"model":"m","messages":[' + b",".join([b"[]"] * (MAX_CONTAINERS + 10)) + b"]}"
    events: list[Any] = []
    asgi = Guardrail(
        Starlette(routes=[Route(CHAT, reply, methods=["POST"])]),
        guard=AsyncGuard("memory://"),
        on_event=events.append,
    )
    client = TestClient(asgi)
    r = client.post(CHAT, content=heavy, headers={"authorization": "Bearer k"})
    assert r.status_code == 413 and events[-1].outcome == "too_large"
    passing = Guardrail(
        Starlette(routes=[Route(CHAT, reply, methods=["POST"])]),
        guard=AsyncGuard("memory://"),
        on_oversize="pass",
        on_event=events.append,
    )
    r = TestClient(passing).post(CHAT, content=heavy, headers={"authorization": "Bearer k"})
    assert r.status_code == 200 and events[-1].outcome == "passed_uninspected"
    assert client.post(CHAT, content=BODY, headers={"authorization": "Bearer k"}).status_code == 200

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    with Guard("memory://") as guard:
        status: list[str] = []
        GuardrailWSGI(app, guard=guard)(chat_environ(heavy, "k"), lambda s, h, e=None: status.append(s))
        GuardrailWSGI(app, guard=guard, on_oversize="pass")(
            chat_environ(heavy, "k"), lambda s, h, e=None: status.append(s)
        )
    assert status[0].startswith("413") and status[1] == "200 OK"
