"""Test support for the adapter tests (and benchmarks/middleware.py): scripted guards, local servers.

``ScriptedGuard`` / ``AsyncScriptedGuard`` are small duck-typed guards (the adapters accept any object with
``check`` / ``settle``): a per-account request budget, a block list, a switch to raise like a broken
store, and a record of what they saw, so the middleware's behaviour can be asserted exactly.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis_server(port: int) -> subprocess.Popen[bytes]:
    """A throwaway ``redis-server`` (no persistence) on ``port``, returned once it accepts connections.

    The caller kills it; a disposable server lets a test or benchmark kill Redis mid-run or read its
    command statistics without disturbing the shared one.
    """
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc


class ScriptedGuard:
    """A sync guard: ``rpm`` requests per minute per account (burst = ``burst`` or rpm), a block list."""

    def __init__(
        self,
        *,
        rpm: float = 600.0,
        burst: float | None = None,
        blocked: frozenset[str] = frozenset(),
        observe_only: bool = False,
        fail: bool = False,
    ) -> None:
        self.rate = rpm / 60.0
        self.burst = float(burst if burst is not None else rpm)
        self.blocked = set(blocked)
        self.observe_only = observe_only
        self.fail = fail
        self.seen: list[Any] = []
        self.settled: list[tuple[str, int]] = []
        self._tokens: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, facts: Any) -> Any:
        from guardrail.engine import Action, Decision

        if self.fail:
            raise ConnectionError("store unreachable")
        self.seen.append(facts)
        now = time.monotonic()
        with self._lock:
            level, last = self._tokens.get(facts.account, (self.burst, now))
            level = min(self.burst, level + (now - last) * self.rate)
            if facts.account in self.blocked:
                action, retry = Action.BLOCK, 0.0
            elif level >= 1.0:
                level -= 1.0
                action, retry = Action.ALLOW, 0.0
            else:
                action, retry = Action.THROTTLE, (1.0 - level) / self.rate
            self._tokens[facts.account] = (level, now)
        final = Action.ALLOW if self.observe_only else action
        return Decision(
            action=final,
            would_action=action,
            retry_after=retry if final != Action.ALLOW else 0.0,
            limit=self.burst,
            remaining=max(0.0, level),
            reset_after=(self.burst - level) / self.rate,
            reasons=("account budget",) if action != Action.ALLOW else (),
            evidence={"secret-score": 0.97},
            ticket=facts.account,
        )

    def settle(self, decision: Any, output_tokens: int) -> None:
        self.settled.append((str(decision.ticket), output_tokens))

    def close(self) -> None:
        pass


class AsyncScriptedGuard:
    """The async twin of ``ScriptedGuard`` (same state, awaited)."""

    def __init__(self, **kwargs: Any) -> None:
        self.sync = ScriptedGuard(**kwargs)

    @property
    def seen(self) -> list[Any]:
        return self.sync.seen

    @property
    def settled(self) -> list[tuple[str, int]]:
        return self.sync.settled

    async def check(self, facts: Any) -> Any:
        return self.sync.check(facts)

    async def settle(self, decision: Any, output_tokens: int) -> None:
        self.sync.settle(decision, output_tokens)

    async def aclose(self) -> None:
        pass


def chat_environ(body: bytes, key: str, path: str = "/v1/chat/completions") -> dict[str, Any]:
    """A WSGI environ for one POST of ``body`` with ``key`` as its bearer token."""
    import io

    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "REMOTE_ADDR": "192.0.2.1",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
    }


async def read_all(receive: Any) -> bytes:
    """An ASGI app's whole request body (every ``http.request`` message until ``more_body`` ends)."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body
