"""The app the end-to-end tests run under a real uvicorn: the FastAPI toy model behind ``Guardrail`` with the
real engine, a per-account request quota, and a block list (test-only wrapper, since blocking a given key
on demand is not something the engine's detection does).

    uvicorn --factory e2e_app:create --app-dir tests/adapters
    (environment: E2E_RPM, E2E_STORAGE for the engine, E2E_LIMITER for the buckets, E2E_BLOCKED, E2E_FAILURE)
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from typing import Any

from integrations import fastapi_app

from guardrail._types import Receive, Scope, Send
from guardrail.engine import Action, AsyncGuard, Decision, RequestFacts
from guardrail.limiter import Limiter


class BlocklistGuard:
    """The real engine, plus: listed accounts are blocked."""

    def __init__(self, inner: AsyncGuard, blocked: set[str]) -> None:
        self.inner = inner
        self.blocked = blocked
        self.limiter = inner.limiter

    async def check(self, facts: RequestFacts) -> Decision:
        decision = await self.inner.check(facts)
        if facts.account in self.blocked:
            return dataclasses.replace(decision, action=Action.BLOCK, would_action=Action.BLOCK)
        return decision

    async def settle(self, decision: Decision, output_tokens: int) -> None:
        await self.inner.settle(decision, output_tokens)


class HitCounter:
    """Counts the POSTs reaching the server per API key (what the SDKs really sent); GET /_hits reads it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hits: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_hits":
            import json

            body = json.dumps(dict(self.hits)).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST":
            headers = dict(scope["headers"])
            key = headers.get(b"x-api-key") or headers.get(b"authorization", b"").removeprefix(b"Bearer ")
            self.hits[key.decode("latin-1")] += 1
        pid = str(os.getpid()).encode()

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-worker-pid", pid)]
            await send(message)

        await self.app(scope, receive, tagged)


def create() -> Any:
    storage = os.environ.get("E2E_STORAGE", "memory://")  # the engine's state
    limiter = Limiter(os.environ.get("E2E_LIMITER", storage), failure=os.environ.get("E2E_FAILURE", "local"))
    blocked = set(os.environ.get("E2E_BLOCKED", "").split(","))
    guard = BlocklistGuard(AsyncGuard(storage, limiter=limiter), blocked)
    api = fastapi_app.create_app(guard=guard, account_rpm=float(os.environ.get("E2E_RPM", "60")))
    return HitCounter(api)
