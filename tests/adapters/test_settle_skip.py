"""A decision with nothing to settle (no engine bucket charged: nearly every honest request) leaves the
response unread; one that charged a bucket is settled from the response's real usage, on both adapters."""

from __future__ import annotations

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
        result.close()  # type: ignore[attr-defined]
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
