"""``GuardrailWSGI``: the same guard in front of a WSGI app (``app.wsgi_app = GuardrailWSGI(app.wsgi_app)``).

Same routes, identity, refusals, headers and settlement as the ASGI twin. WSGI care, after werkzeug: the
body is read with ``CONTENT_LENGTH`` (checked against the cap first) or, for chunked requests the server
marks with ``wsgi.input_terminated``, up to the cap (a ``CONTENT_LENGTH`` beside chunked framing is
ignored, as werkzeug ignores it); it is replayed with ``BytesIO`` and a corrected ``CONTENT_LENGTH``,
the originals kept under ``environ["guardrail.orig"]``; the app's iterable is wrapped only to watch
chunks and always has its ``close()`` called. Read deadlines are the server's: a read that raises
``TimeoutError`` gets 408, one that fails otherwise 400; gunicorn's sync workers are instead killed at
``--timeout`` (the client sees gunicorn's own error), and werkzeug's and gthread's reads have none.
A WSGI app may not send hop-by-hop headers (PEP 3333), so refusals carry no ``Connection: close``:
the server decides whether the connection stays.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..engine import Decision, Guard, settle_needed
from ..extract import too_complex
from ..limiter import MultiResult
from ._body import parse_length
from ._build import check_sync_callable, resolve_guard
from ._core import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES,
    MAX_USAGE_BODY,
    Core,
    by_address,
)
from ._encoding import REFUSED_BODIES, engine_view
from ._events import OnEvent, log_failure, logger
from ._identity import AmbiguousCredentials, Identify
from ._quota import check
from ._refusal import HOP_BY_HOP, Headers, Refusal, refusal
from ._routes import Provider, request_path
from ._usage import SSEUsageScanner, usage_from_json, usage_reader

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
_READ_CHUNK = 64 * 1024
_STATUS_LINES = {400: "400 Bad Request", 403: "403 Forbidden", 408: "408 Request Timeout"}
_STATUS_LINES |= {
    413: "413 Content Too Large",
    415: "415 Unsupported Media Type",
    429: "429 Too Many Requests",
    503: "503 Service Unavailable",
}


class _Chained(io.RawIOBase):
    """A prefix already read, then the rest of the original input (for uninspected pass-through)."""

    def __init__(self, prefix: bytes, rest: Any) -> None:
        self._prefix = io.BytesIO(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        n = self._prefix.readinto(view)
        if n:
            return n
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def _read(environ: WSGIEnvironment, max_bytes: int) -> tuple[str, bytes]:
    """``(status, body)``; status is complete / too_large / bad_length / timeout / disconnected."""
    stream = environ.get("wsgi.input")
    raw_length = environ.get("CONTENT_LENGTH", "")
    if stream is None:
        return "complete", b""
    length: int | None = None
    terminated = bool(environ.get("wsgi.input_terminated"))
    codings = str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower().split(",")
    chunked = codings[-1].strip() == "chunked"  # the final coding frames the body (RFC 9112, 6.1)
    # As werkzeug reads it: a chunked body the server ends itself has no length, whatever
    # CONTENT_LENGTH says (RFC 9112, 6.3: Transfer-Encoding overrides it).
    if raw_length and not (terminated and chunked):
        length = parse_length(str(raw_length))
        if length is None:
            return "bad_length", b""
        if length > max_bytes:
            return "too_large", b""
    elif not terminated:
        return "complete", b""  # WSGI: no length and no terminated stream means no body
    want = length if length is not None else max_bytes + 1
    chunks: list[bytes] = []
    size = 0
    try:
        while size < want:
            data = stream.read(min(_READ_CHUNK, want - size))
            if not data:
                break
            chunks.append(data)
            size += len(data)
    except TimeoutError:
        return "timeout", b"".join(chunks)
    except Exception:  # OSError, werkzeug's ClientDisconnected, gunicorn's chunk parse errors...
        return "disconnected", b"".join(chunks)
    body = b"".join(chunks)
    if length is not None and size < length:
        return "disconnected", body
    if size > max_bytes:
        return "too_large", body
    return "complete", body


def _respond(start_response: StartResponse, r: Refusal) -> list[bytes]:
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in r.headers if k not in HOP_BY_HOP]
    start_response(_STATUS_LINES.get(r.status, f"{r.status} Error"), headers)
    return [r.body]


class GuardrailWSGI:
    """WSGI middleware; the same keyword-only options as ``Guardrail`` (``guard`` is a sync ``Guard``).

    ``body_timeout`` and ``check_timeout`` are accepted for symmetry, but WSGI calls block: the server's
    socket timeout bounds reads, and the engine's store timeouts bound its calls.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        guard: Guard | None = None,
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
        self.guard: Guard = resolve_guard(
            asynchronous=False,
            guard=guard,
            storage=storage,
            account_rpm=account_rpm,
            observe_only=observe_only,
            secret=self.core.secret,
            options=guard_options,
        )
        self.core.adopt_guard(self.guard)
        check_sync_callable(
            on_event, "on_event", "the WSGI middleware calls it inline (hand slow work to a queue or thread)"
        )
        self.core.attach_quota(account_rpm, self.guard)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(app={self.app!r}, guard={self.guard!r})"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if str(environ.get("REQUEST_METHOD", "")).upper() != "POST":  # "post" too, as on ASGI
            return self.app(environ, start_response)
        script = _text(environ.get("SCRIPT_NAME") or "")
        info = _text(environ.get("PATH_INFO") or "")
        path = request_path(script + info)
        provider = self.core.routes.match(path)
        if provider is None and script:  # mounted: a route copied from the app matches PATH_INFO too
            provider = self.core.routes.match(request_path(info))
        if provider is None:
            return self.app(environ, start_response)
        return self._inspect(environ, start_response, path, provider)

    def _inspect(
        self, environ: WSGIEnvironment, start_response: StartResponse, path: str, provider: Provider
    ) -> Iterable[bytes]:
        core = self.core
        status, body = _read(environ, core.max_body_bytes)
        original = {"wsgi.input": environ.get("wsgi.input"), "CONTENT_LENGTH": environ.get("CONTENT_LENGTH")}
        environ["guardrail.orig"] = original
        inspected = status == "complete"
        if inspected:
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        elif status == "too_large" and body:
            environ["wsgi.input"] = io.BufferedReader(_Chained(body, original["wsgi.input"]))
        peer = environ.get("REMOTE_ADDR") or None
        try:
            headers = _headers(environ)
            query = environ.get("QUERY_STRING", "")
            account, ip = core.who("POST", path, query, headers, peer, provider)
        except AmbiguousCredentials:  # whichever key the app reads, counting one would be a way around
            account, ip = core.ambiguous(path, provider, headers, peer)
            if not core.observe_only:
                return _respond(start_response, refusal(provider, 400))
        except Exception:  # written to be total; if it ever is not, count the request by address
            logger.exception("guardrail identity failed; counting the request by its address")
            account, ip = by_address(peer), peer

        if status in ("timeout", "disconnected"):
            code = 408 if status == "timeout" else 400
            core.event(path=path, provider=provider, account=account, ip=ip, outcome=status, status=code)
            return _respond(start_response, refusal(provider, code))
        seen = body  # what the engine reads: the app may inflate a compressed body
        coding = environ.get("HTTP_CONTENT_ENCODING")
        if inspected and coding:
            seen, status = engine_view(body, coding, core.max_body_bytes)
            inspected = status != "too_large"
        if inspected and too_complex(seen):  # more arrays and objects than the engine parses
            status, inspected = "too_large", False
        if core.refuse_unread and status in REFUSED_BODIES:
            code = REFUSED_BODIES[status]
            core.event(path=path, provider=provider, account=account, ip=ip, outcome=status, status=code)
            return _respond(start_response, refusal(provider, code))

        try:
            decision, quota, refused = self._decide(account, ip, path, seen if inspected else None, provider)
        except Exception as exc:
            error = log_failure("guardrail inspection failed; request passed through", exc, (account, ip))
            core.event(path=path, provider=provider, account=account, ip=ip, outcome="error", error=error)
            return self.app(environ, start_response)
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
            return _respond(start_response, refused)
        outcome, would_status, note = core.passed(status, decision)
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
        if not extra and not usage:
            # Nothing to add nor to read: the app's own iterable goes back to the server (a
            # ``wsgi.file_wrapper`` one keeps the server's sendfile path).
            return self.app(environ, start_response)
        watcher = _Watcher(self.guard, decision, extra, usage)

        def _start_response(
            status_line: str, headers: list[tuple[str, str]], exc_info: _ExcInfo | None = None
        ) -> Any:
            return start_response(status_line, watcher.start(status_line, headers), exc_info)

        try:
            result = self.app(environ, _start_response)
        except BaseException:
            watcher.status = 500
            watcher.finish()
            raise
        return _WatchedIterable(result, watcher)

    def _decide(
        self, account: str, ip: str | None, path: str, body: bytes | None, provider: Provider
    ) -> tuple[Decision, MultiResult | None, Refusal | None]:
        """The engine's decision, the request quota's, and the refusal to send if any (see the ASGI twin)."""
        core = self.core
        facts = core.facts(account, ip, path, body)
        decision, quota = check(self.guard, facts, core.quota, core.quota_in_check, core.observe_only)
        return decision, quota, core.verdict(decision, provider, quota)


def _text(value: str) -> str:
    """A PEP 3333 path string (the raw bytes as latin-1) as the UTF-8 text an ASGI server gives (and
    Flask's ``request.path`` reads): ``/caf\u00c3\u00a9`` is ``/caf\u00e9``."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a server that already decoded it
        return value


def _headers(environ: WSGIEnvironment) -> list[tuple[str, str]]:
    """Request headers from the environ, lower-cased, as the ASGI side sees them (Content-Type and
    Content-Length included, which PEP 3333 keeps without the ``HTTP_`` prefix)."""
    out: list[tuple[str, str]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out.append((key[5:].replace("_", "-").lower(), str(value)))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            out.append((key.replace("_", "-").lower(), str(value)))
    return out


class _Watcher:
    """Per-request response state: headers added at start, usage read from chunks, one settle."""

    __slots__ = (
        "_decision",
        "_done",
        "_encoding",
        "_extra",
        "_guard",
        "_json",
        "_json_size",
        "_sse",
        "status",
    )

    def __init__(self, guard: Guard, decision: Decision, extra: Headers, usage: bool = True) -> None:
        self._guard = guard
        self._decision = decision
        self._extra = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in extra]
        self._sse: SSEUsageScanner | None = None
        self._json: list[bytes] | None = None
        self._json_size = 0
        self._encoding = ""  # the JSON response's Content-Encoding
        #: Done from the start when the decision has nothing to settle.
        self._done = not usage
        self.status: int | None = None

    def start(self, status_line: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        try:
            self.status = int(status_line.split(" ", 1)[0])
        except ValueError:
            self.status = None
        content_type = encoding = ""
        has_ratelimit = False
        for key, value in headers:
            lkey = key.lower()
            if lkey == "content-type":
                content_type = value
            elif lkey == "content-encoding":
                encoding = value
            elif lkey in ("ratelimit", "x-ratelimit-limit-requests"):
                has_ratelimit = True
        self._sse = None
        self._json = None
        # Done from the start: nothing to settle (``settle_needed``), so the response is not read.
        if not self._done and self.status is not None and 200 <= self.status < 300:
            reader = usage_reader(content_type, encoding)
            if reader == "sse":
                self._sse = SSEUsageScanner(encoding)
            elif reader == "json":
                self._json = []
                self._encoding = encoding
        if self._extra and not has_ratelimit:
            return [*headers, *self._extra]
        return headers

    def chunk(self, data: bytes) -> None:
        if self._sse is not None:
            self._sse.feed(data)
        elif self._json is not None and data:
            self._json_size += len(data)
            if self._json_size <= MAX_USAGE_BODY:
                self._json.append(data)
            else:
                self._json = None

    def finish(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            tokens: int | None
            if self.status is None or not (200 <= self.status < 300):
                tokens = 0
            elif self._sse is not None:
                self._sse.close()
                tokens = self._sse.tokens
            elif self._json:
                tokens = usage_from_json(b"".join(self._json), self._encoding)
            else:
                tokens = None
            if tokens is not None:
                self._guard.settle(self._decision, tokens)
        except Exception:
            logger.exception("guardrail settle failed; ignored")


class _WatchedIterable:
    """The app's iterable, chunk by chunk (never buffered), with ``close()`` always forwarded."""

    __slots__ = ("_result", "_watcher")

    def __init__(self, result: Iterable[bytes], watcher: _Watcher) -> None:
        self._result = result
        self._watcher = watcher

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._result:
            self._watcher.chunk(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._watcher.finish()
