"""``Guardrail``: pure ASGI middleware putting the engine in front of an LLM API.

``app.add_middleware(Guardrail, storage="memory://", account_rpm=60)`` (Starlette / FastAPI) or
``Guardrail(app, guard=AsyncGuard(...))``. Only POSTs to the configured LLM routes are inspected;
lifespan, websockets and every other route pass straight through. An inspected request's body is read
with a cap and a deadline, replayed to the app exactly once, and the engine decides: a refusal is our own
complete response in the provider's error shape; otherwise the app's response streams through chunk by
chunk (rate-limit headers added) and the actual output tokens are settled afterwards.

A failure inside guardrail (a bug, or a store error the limiter's policy did not absorb) lets the request
through and is logged: the app keeps serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypeVar

import anyio
from anyio.lowlevel import RunVar

from .._types import ASGIApp, Message, Receive, Scope, Send
from ..engine import AsyncGuard, Decision, settle_needed
from ..extract import too_complex
from ..limiter import MultiResult
from ._body import BodyStatus, Replay, Watch, Watchdog, read_body
from ._build import resolve_guard
from ._core import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    MAX_USAGE_BODY,
    Core,
    by_address,
)
from ._encoding import INFLATE_LATE, INLINE_INFLATE, REFUSED_BODIES, Outcome, coding_of, engine_view
from ._events import OnEvent, log_failure, logger
from ._identity import IDENTITY_HEADERS, AmbiguousCredentials, Identify
from ._quota import acheck, awaited
from ._refusal import Headers, Refusal, refusal
from ._routes import Provider, request_path
from ._usage import SSEUsageScanner, usage_from_json, usage_reader

_T = TypeVar("_T")

#: Worker threads inflating large coded bodies at once, per event loop (a few: each is bounded by the cap).
INFLATE_THREADS = 4
_INFLATERS: RunVar[anyio.CapacityLimiter] = RunVar("guardrail_inflaters")


def _inflaters() -> anyio.CapacityLimiter:
    """guardrail's own thread limiter on the running event loop (made on first use there)."""
    try:
        return _INFLATERS.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(INFLATE_THREADS)
        _INFLATERS.set(limiter)
        return limiter


async def _send_refusal(send: Send, r: Refusal) -> None:
    await send({"type": "http.response.start", "status": r.status, "headers": r.headers})
    await send({"type": "http.response.body", "body": r.body, "more_body": False})


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    if client:
        host = client[0]
        return str(host) if host else None
    return None


class Guardrail:
    """ASGI middleware; keyword-only options are validated once, here.

    Either pass ``guard`` (an ``AsyncGuard``), or let one be built from ``storage`` (a storage URI,
    default ``memory://``), ``account_rpm`` (requests per minute per account) and ``guard_options``
    (further ``AsyncGuard`` keyword arguments). ``observe_only`` decides and records but never refuses.
    Bodies above ``max_body_bytes`` (or with an unusable ``Content-Length``) are refused with 413 / 400
    when ``on_oversize="refuse"``, or passed to the app uninspected (still counted against the account)
    when ``"pass"``; a body that does not arrive within ``body_timeout`` seconds gets 408. An engine that
    has not decided within ``check_timeout`` seconds is abandoned and the request goes through.
    ``proxy_header`` names the one header the ``trusted_proxies`` write (``"x-forwarded-for"`` or
    ``"forwarded"``). ``expose_engine_limits`` (debugging) shows the engine's token buckets in
    rate-limit headers; off by default, since their appearance would tell a client it was flagged.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        guard: AsyncGuard | None = None,
        storage: str | None = None,
        account_rpm: float | None = None,
        guard_options: Mapping[str, Any] | None = None,
        observe_only: bool = False,
        routes: Mapping[str, str] | None = None,
        identify: Identify | None = None,
        trusted_proxies: Iterable[str] | str = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        on_oversize: str = "refuse",
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        rate_limit_headers: bool = True,
        on_event: OnEvent | None = None,
        secret: str | bytes | None = None,
        check_timeout: float = DEFAULT_CHECK_TIMEOUT,
        proxy_header: str = "x-forwarded-for",
        expose_engine_limits: bool = False,
    ) -> None:
        self.app = app
        self.core = Core(
            routes=routes,
            identify=identify,
            trusted_proxies=trusted_proxies,
            max_body_bytes=max_body_bytes,
            on_oversize=on_oversize,
            body_timeout=body_timeout,
            observe_only=observe_only,
            rate_limit_headers=rate_limit_headers,
            on_event=on_event,
            secret=secret,
            check_timeout=check_timeout,
            proxy_header=proxy_header,
            expose_engine_limits=expose_engine_limits,
        )
        self.guard: AsyncGuard = resolve_guard(
            asynchronous=True,
            guard=guard,
            storage=storage,
            account_rpm=account_rpm,
            observe_only=observe_only,
            secret=self.core.secret,
            options=guard_options,
        )
        #: A guard built here (from ``storage=``) is closed at lifespan shutdown (its re-clustering task,
        #: its Redis pool); one handed in with ``guard=`` belongs to the caller.
        self._owns_guard = guard is None
        self.core.adopt_guard(self.guard)
        self.core.attach_quota(account_rpm, self.guard)
        self._watchdog = Watchdog(min(self.core.body_timeout, self.core.check_timeout))

    def _closing(self, send: Send) -> Send:
        """``send`` for the lifespan scope: the guard is closed just before shutdown is reported done."""

        async def closing_send(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                try:
                    await self.guard.aclose()
                except Exception as exc:
                    log_failure("guardrail could not close its guard at shutdown; ignored", exc, ())
            await send(message)

        return closing_send

    def __repr__(self) -> str:
        return f"{type(self).__name__}(app={self.app!r}, guard={self.guard!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # h11 passes a method on as sent: "post" is a POST to a proxy (httpx upper-cases it) or a
        # case-blind server, so it is inspected as one.
        if scope["type"] != "http" or str(scope.get("method", "")).upper() != "POST":
            if scope["type"] == "lifespan" and self._owns_guard:
                await self.app(scope, receive, self._closing(send))
                return
            await self.app(scope, receive, send)
            return
        full: str = scope.get("path", "")
        path = request_path(full)
        provider = self.core.routes.match(path)
        if provider is None:
            # Mounted under a prefix (``Mount("/api", ...)``, ``root_path``): the app's own router sees
            # the path without it, so a route copied from the app must match that too (the prefix cut
            # off the path as it came, then the rest read canonical, as WSGI reads PATH_INFO).
            root: str = scope.get("root_path", "")
            if root and full.startswith(root) and len(full) > len(root):
                provider = self.core.routes.match(request_path(full[len(root) :]))
        if provider is None:
            await self.app(scope, receive, send)
            return
        await self._inspect(scope, receive, send, path, provider)

    async def _inspect(
        self, scope: Scope, receive: Receive, send: Send, path: str, provider: Provider
    ) -> None:
        core = self.core
        raw_headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        # One watch per request, re-armed for each step (body read, engine check, settle).
        watch = self._watchdog.watch(core.body_timeout)
        read = await read_body(
            receive, raw_headers, max_bytes=core.max_body_bytes, timeout=core.body_timeout, watch=watch
        )
        peer = _peer(scope)
        try:
            # ASGI header names are lower-case (Starlette's Headers relies on it too). Without a user
            # identify callable only the few identity headers are decoded.
            if core.identify is None:
                headers = [
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in raw_headers
                    if k in IDENTITY_HEADERS
                ]
            else:
                headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw_headers]
            query = scope.get("query_string", b"").decode("latin-1")
            account, ip = core.who("POST", path, query, headers, peer, provider)
        except AmbiguousCredentials:  # whichever key the app reads, counting one would be a way around
            account, ip = core.ambiguous(path, provider, headers, peer)
            if not core.observe_only:
                await _send_refusal(send, refusal(provider, 400))
                return
        except Exception:  # written to be total; if it ever is not, count the request by address
            logger.exception("guardrail identity failed; counting the request by its address")
            account, ip = by_address(peer), peer

        status = read.status
        if status is BodyStatus.DISCONNECTED:
            core.event(path=path, provider=provider, account=account, ip=ip, outcome="disconnected")
            return
        if status is BodyStatus.TIMEOUT and not core.observe_only:
            r = refusal(provider, 408)
            core.event(path=path, provider=provider, account=account, ip=ip, outcome="timeout", status=408)
            await _send_refusal(send, r)
            return
        inspected = status is BodyStatus.COMPLETE
        seen, body_state = read.body, status.value  # what the engine reads, and how its read ended
        if inspected:
            coding = coding_of(raw_headers)
            if coding is not None:  # the app may inflate it: the engine reads what the app would
                try:
                    seen, body_state = await self._inflated(watch, read.body, coding)
                except TimeoutError as exc:  # guardrail's threads busy past the deadline
                    log_failure("guardrail could not inflate the body in time", exc, (account, ip))
                    seen, body_state = b"", INFLATE_LATE
                except Exception as exc:  # not expected (engine_view never raises): a coding not undone
                    log_failure("guardrail could not inflate the body", exc, (account, ip))
                    seen, body_state = read.body, "unsupported"
                inspected = body_state not in ("too_large", INFLATE_LATE)
            if inspected and too_complex(seen):  # more arrays and objects than the engine parses
                body_state, inspected = "too_large", False
        if core.refuse_unread and body_state in REFUSED_BODIES:
            code = REFUSED_BODIES[body_state]
            outcome = body_state
            core.event(path=path, provider=provider, account=account, ip=ip, outcome=outcome, status=code)
            await _send_refusal(send, refusal(provider, code))
            return

        try:
            decision, quota, refused = await self._deadline(
                watch, self._decide(account, ip, path, seen if inspected else None, provider)
            )
        except Exception as exc:
            error = log_failure("guardrail inspection failed; request passed through", exc, (account, ip))
            core.event(path=path, provider=provider, account=account, ip=ip, outcome="error", error=error)
            await self.app(scope, Replay(receive, read.body, read.more), send)
            return
        if refused is not None:
            core.event(
                path=path,
                provider=provider,
                account=account,
                ip=ip,
                outcome=core.outcome(decision, refused),
                decision=decision,
                status=refused.status,
            )
            await _send_refusal(send, refused)
            return
        outcome, would_status, note = core.passed(body_state, decision)
        core.event(
            path=path,
            provider=provider,
            account=account,
            ip=ip,
            outcome=outcome,
            decision=decision,
            status=would_status,
            note=note,
        )
        extra, usage = core.allow_headers(decision, quota), settle_needed(self.guard, decision)
        if not extra and not usage:  # nothing to add nor to read: the response is the app's, untouched
            await self.app(scope, Replay(receive, read.body, read.more), send)
            return
        settler = _Settler(send, extra, usage)
        try:
            await self.app(scope, Replay(receive, read.body, read.more), settler.send)
        finally:
            tokens = settler.tokens()
            if tokens is not None:
                try:
                    await self._deadline(watch, awaited(self.guard.settle(decision, tokens)))
                except Exception as exc:
                    log_failure("guardrail settle failed; ignored", exc, (account,))

    async def _decide(
        self, account: str, ip: str | None, path: str, body: bytes | None, provider: Provider
    ) -> tuple[Decision, MultiResult | None, Refusal | None]:
        """The engine's decision, the request quota's, and the refusal to send if any."""
        core = self.core
        facts = core.facts(account, ip, path, body)
        decision, quota = await acheck(self.guard, facts, core.quota, core.quota_in_check, core.observe_only)
        return decision, quota, core.verdict(decision, provider, quota)

    async def _inflated(self, watch: Watch | None, body: bytes, coding: str) -> tuple[bytes, Outcome]:
        """The engine's view of a coded body. Up to ``INLINE_INFLATE`` bytes in and out inflate on the
        event loop (tens of microseconds: nearly every real body); beyond, in one of guardrail's own
        worker threads (zlib lets go of the GIL): a few KB may inflate to the whole cap, tens of
        milliseconds that must not stall the loop, nor wait behind the app's threads in anyio's shared
        pool, nor take them. Under the same deadline as the engine's check (``TimeoutError``: the caller
        answers 503 under ``refuse``, else decides the request unread, its quota and buckets applied)."""
        cap = self.core.max_body_bytes
        if len(body) <= INLINE_INFLATE:  # both ends bounded: at most 64 KiB in, 64 KiB out
            seen, state = engine_view(body, coding, min(cap, INLINE_INFLATE))
            if state != "too_large" or cap <= INLINE_INFLATE:
                return seen, state
        work = anyio.to_thread.run_sync(
            engine_view, body, coding, cap, limiter=_inflaters(), abandon_on_cancel=True
        )
        return await self._deadline(watch, work)

    async def _deadline(self, watch: Watch | None, work: Awaitable[_T]) -> _T:
        """Await ``work`` for at most ``check_timeout`` seconds, else raise ``TimeoutError``.

        An engine stuck on a store that neither answers nor times out must not hold the request: the
        shared watchdog cancels this task (no timer per request) and the caller fails open.
        """
        if watch is None:  # not on asyncio (trio): anyio's cancel scope
            with anyio.fail_after(self.core.check_timeout):
                return await work
        Watchdog.rearm(watch, self.core.check_timeout)
        try:
            return await work
        except asyncio.CancelledError:
            if not watch.fired:
                raise
            watch.uncancel()
            raise TimeoutError(
                f"guardrail engine gave no answer within {self.core.check_timeout:g} s"
            ) from None
        finally:
            Watchdog.discard(watch)


class _Settler:
    """Per-request response watcher: adds headers, passes chunks on, reads usage for one settle."""

    __slots__ = ("_done", "_encoding", "_extra", "_json", "_json_size", "_send", "_sse", "_usage", "status")

    def __init__(self, send: Send, extra: Headers, usage: bool = True) -> None:
        self._send = send
        self._extra = extra
        #: False when the decision has nothing to settle: the response is passed on without being read.
        self._usage = usage
        self._sse: SSEUsageScanner | None = None
        self._json: list[bytes] | None = None
        self._json_size = 0
        self._encoding = b""  # the JSON response's Content-Encoding
        self._done = not usage
        self.status: int | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            message = self._start(message)
        elif kind == "http.response.body":
            body: bytes = message.get("body", b"")
            if self._sse is not None:
                self._sse.feed(body)
            elif self._json is not None and body:
                self._json_size += len(body)
                if self._json_size <= MAX_USAGE_BODY:
                    self._json.append(body)
                else:
                    self._json = None
        await self._send(message)

    def _start(self, message: Message) -> Message:
        self.status = int(message.get("status", 200))
        headers: list[tuple[bytes, bytes]] = list(message.get("headers") or [])
        content_type = encoding = b""
        has_ratelimit = False
        for key, value in headers:
            lkey = key.lower()
            if lkey == b"content-type":
                content_type = value
            elif lkey == b"content-encoding":
                encoding = value
            elif lkey == b"ratelimit" or lkey == b"x-ratelimit-limit-requests":
                has_ratelimit = True
        if self._usage and 200 <= self.status < 300:
            reader = usage_reader(content_type, encoding)
            if reader == "sse":
                self._sse = SSEUsageScanner(encoding)
            elif reader == "json":
                self._json = []
                self._encoding = encoding
        if self._extra and not has_ratelimit:
            # A new message: the app's may be a constant it sends again for every request.
            message = {**message, "headers": headers + self._extra}
        return message

    def tokens(self) -> int | None:
        """Output tokens to settle with: 0 for a failed response, the usage seen, or ``None`` (keep the
        engine's estimate)."""
        if self._done:
            return None
        self._done = True
        if self.status is None or not (200 <= self.status < 300):
            return 0  # nothing was generated: give the reservation back
        if self._sse is not None:
            self._sse.close()
            return self._sse.tokens
        if self._json:
            return usage_from_json(b"".join(self._json), self._encoding)
        return None
