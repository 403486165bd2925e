"""``account_rpm`` rides in the engine's own limiter call (``check(..., extra=...)``) for a real guard.

One limiter call per request whatever the quota says (the issue: at most one round trip added per request
with Redis), the quota's own figures in the headers (never the engine's tightest bucket, which could be one
detection tightened), nothing charged for a refused request, and the same answers as the two-call path that
duck-typed guards keep.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Any

import pytest
from adapters_support import AsyncScriptedGuard, ScriptedGuard, chat_environ
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient

from guardrail.adapters import Guardrail, GuardrailEvent, GuardrailWSGI
from guardrail.adapters._quota import REASON, carries_extra
from guardrail.engine import AsyncGuard, Guard, Policy
from guardrail.engine._core import EXTRA_REASON
from guardrail.limiter import Limit, Limiter

CHAT = "/v1/chat/completions"
BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hello there"}]}'


async def reply(request: Request) -> Response:
    await request.body()
    return JSONResponse({"ok": True})


def asgi_app(**options: Any) -> tuple[TestClient, Guardrail]:
    from starlette.applications import Starlette
    from starlette.routing import Route

    mw = Guardrail(Starlette(routes=[Route(CHAT, reply, methods=["POST"])]), **options)
    return TestClient(mw), mw


def wsgi_reply(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b"{}"]


def wsgi_call(mw: GuardrailWSGI, key: str) -> tuple[int, dict[str, str]]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"] = int(status.split(" ", 1)[0])
        seen["headers"] = {k.lower(): v for k, v in headers}
        return lambda data: None

    env = chat_environ(BODY, key)
    result = mw(env, start_response)
    b"".join(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return seen["status"], seen["headers"]


class Counted:
    """Counts the limiter calls a guard makes (each is one round trip on Redis)."""

    def __init__(self, limiter: Limiter) -> None:
        self.calls = 0
        sync, asyn = limiter.consume_many, limiter.aconsume_many

        def consume_many(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return sync(*args, **kwargs)

        async def aconsume_many(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await asyn(*args, **kwargs)

        limiter.consume_many = consume_many  # type: ignore[method-assign]
        limiter.aconsume_many = aconsume_many  # type: ignore[method-assign]


def secret() -> bytes:
    return os.urandom(16)


def test_capability_is_detected_by_type_not_by_trial() -> None:
    assert carries_extra(Guard()) and carries_extra(AsyncGuard())
    assert not carries_extra(ScriptedGuard()) and not carries_extra(AsyncScriptedGuard())
    assert REASON == EXTRA_REASON
    _, mw = asgi_app(guard=AsyncScriptedGuard(), account_rpm=5)
    assert mw.core.quota is not None and not mw.core.quota_in_check
    _, mw = asgi_app(guard=AsyncGuard(), account_rpm=5)
    assert mw.core.quota_in_check
    _, mw = asgi_app(guard=AsyncGuard())
    assert mw.core.quota is None and not mw.core.quota_in_check


def test_asgi_one_limiter_call_per_request_and_the_quota_holds() -> None:
    events: list[GuardrailEvent] = []
    guard = AsyncGuard(secret=secret())
    counted = Counted(guard.limiter)
    client, _ = asgi_app(guard=guard, account_rpm=3, on_event=events.append)
    responses = [client.post(CHAT, content=BODY, headers={"authorization": "Bearer alice"}) for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert counted.calls == 5  # the engine's call carried the quota: no second call, refused or not
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses[:3]] == ["2", "1", "0"]
    assert all(r.headers["x-ratelimit-limit-requests"] == "3" for r in responses)
    assert int(responses[3].headers["retry-after"]) >= 1
    assert EXTRA_REASON in events[3].reasons and events[3].outcome == "throttled"
    other = client.post(CHAT, content=BODY, headers={"authorization": "Bearer bob"})
    assert other.status_code == 200 and other.headers["x-ratelimit-remaining-requests"] == "2"


def test_wsgi_one_limiter_call_per_request_and_the_quota_holds() -> None:
    guard = Guard(secret=secret())
    counted = Counted(guard.limiter)
    mw = GuardrailWSGI(wsgi_reply, guard=guard, account_rpm=2)
    try:
        answers = [wsgi_call(mw, "alice") for _ in range(4)]
    finally:
        guard.close()
    assert [status for status, _ in answers] == [200, 200, 429, 429]
    assert counted.calls == 4
    assert [h["x-ratelimit-remaining-requests"] for _, h in answers[:2]] == ["1", "0"]
    assert answers[2][1]["x-ratelimit-limit-requests"] == "2"


def test_headers_show_the_quota_not_a_tighter_engine_bucket() -> None:
    # The engine's own account bucket (tokens; a request costs its prompt plus 512 expected output) is
    # far tighter than the quota: ``decision.limit`` would be its figure. The client sees the request
    # quota's, and an engine refusal wears the quota's headers, spent, as a quota refusal would.
    policy = Policy(account_limit=Limit(rate=0.001, burst=3000.0))
    client, _ = asgi_app(guard=AsyncGuard(policy=policy, secret=secret()), account_rpm=50)
    responses = [client.post(CHAT, content=BODY, headers={"authorization": "Bearer k"}) for _ in range(40)]
    allowed = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert allowed and refused  # the engine's bucket ran out long before the quota
    assert all(r.headers["x-ratelimit-limit-requests"] == "50" for r in allowed)
    assert [r.headers["x-ratelimit-remaining-requests"] for r in allowed] == [
        str(49 - i) for i in range(len(allowed))
    ]
    for r in refused:  # a token refusal: nothing says which bucket, nor that the quota was fine
        assert r.headers["x-ratelimit-limit-requests"] == "50"
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        assert r.headers["ratelimit-policy"] == '"requests";q=50'
        assert not any("tokens" in k or "tokens" in v for k, v in r.headers.items())


def test_a_refused_request_charges_no_engine_bucket() -> None:
    # Quota of 1 and a generous engine account bucket: the quota's refusals must leave the engine's bucket
    # as it was (all or none), so its level is the same in every refused call.
    policy = Policy(account_limit=Limit(rate=0.001, burst=1e6))
    guard = AsyncGuard(policy=policy, secret=secret())
    engine_levels: list[tuple[bool, float]] = []
    original = guard.limiter.aconsume_many

    async def spy(requests: Any, **kwargs: Any) -> Any:
        result = await original(requests, **kwargs)
        engine_levels.append((result.allowed, result.results[0].remaining))
        return result

    guard.limiter.aconsume_many = spy  # type: ignore[method-assign]
    client, _ = asgi_app(guard=guard, account_rpm=1)
    codes = [
        client.post(CHAT, content=BODY, headers={"authorization": "Bearer k"}).status_code for _ in range(4)
    ]
    assert codes == [200, 429, 429, 429]
    assert [allowed for allowed, _ in engine_levels] == [True, False, False, False]
    refused = [level for _, level in engine_levels[1:]]
    assert max(refused) - min(refused) < 1.0  # a charge would take a request's whole token cost each time


@settings(max_examples=15, deadline=None)
@given(rpm=st.integers(min_value=1, max_value=5), n=st.integers(min_value=1, max_value=9))
def test_one_call_and_two_call_paths_agree(rpm: int, n: int) -> None:
    def codes(one_call: bool) -> list[tuple[int, str | None]]:
        client, mw = asgi_app(guard=AsyncGuard(secret=secret()), account_rpm=rpm)
        mw.core.quota_in_check = one_call
        out = []
        for _ in range(n):
            r = client.post(CHAT, content=BODY, headers={"authorization": "Bearer k"})
            out.append((r.status_code, r.headers.get("x-ratelimit-limit-requests")))
        return out

    expected = [(200 if i < rpm else 429, str(rpm)) for i in range(n)]
    assert codes(True) == codes(False) == expected


def test_observe_only_lets_a_quota_refusal_through() -> None:
    events: list[GuardrailEvent] = []
    guard = AsyncGuard(policy=Policy(observe_only=True), secret=secret())
    client, _ = asgi_app(guard=guard, account_rpm=1, observe_only=True, on_event=events.append)
    codes = [
        client.post(CHAT, content=BODY, headers={"authorization": "Bearer k"}).status_code for _ in range(3)
    ]
    assert codes == [200, 200, 200]
    assert events[1].outcome == "observed" and events[1].would_action == "throttle"
    assert EXTRA_REASON in events[1].reasons


@pytest.mark.redis
def test_redis_quota_in_the_engine_call(redis_url: str) -> None:
    async def run() -> tuple[list[int], int]:
        guard = AsyncGuard("memory://", limiter=redis_url, secret=secret())
        counted = Counted(guard.limiter)
        mw = Guardrail(reply_app(), guard=guard, account_rpm=2)  # the guard's fresh secret: fresh quota keys
        try:
            statuses = [await drive(mw, "alice") for _ in range(3)]
        finally:
            await guard.aclose()
            await guard.limiter.aclose()  # the guard closes its own store, not a limiter it was given
        return statuses, counted.calls

    assert asyncio.run(run()) == ([200, 200, 429], 3)


def reply_app() -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    return app


async def drive(mw: Guardrail, key: str) -> int:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": CHAT,
        "headers": [
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "query_string": b"",
        "client": ("192.0.2.1", 1234),
    }
    given_body = False

    async def receive() -> dict[str, Any]:
        nonlocal given_body
        if given_body:
            await asyncio.sleep(3600)
        given_body = True
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await mw(scope, receive, send)
    return int(sent[0]["status"])
