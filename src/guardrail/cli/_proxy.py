"""``guardrail proxy --upstream URL``: guardrail as a reverse proxy in front of any OpenAI-compatible server.

For model servers not written in Python (llama.cpp, TGI, Ollama, a vendor gateway): uvicorn serves a small
ASGI app that forwards every request to ``--upstream`` with httpx, streaming the response back chunk by
chunk (server-sent events included), wrapped in the ``Guardrail`` middleware. Hop-by-hop headers are
dropped both ways (``Date`` is the proxy's own), and the client's address headers replaced unless it
is a trusted proxy; the upstream's status, headers (``Content-Length`` included) and body bytes are
otherwise passed on unchanged.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import logging
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import anyio

from .._types import Message, Receive, Scope, Send
from ..adapters._identity import CREDENTIAL_HEADERS, IDENTITY_HEADERS, TrustedProxies
from ..adapters._refusal import HOP_BY_HOP
from ..extract import ambiguous_path, canonical_path
from ..limiter._uri import display_uri

if TYPE_CHECKING:  # httpx is imported when the proxy runs, so `guardrail --help` works without it
    import httpx

#: Not forwarded either way: hop-by-hop headers, and what the client and httpx set for each hop.
_HOP_BY_HOP = HOP_BY_HOP | {b"host", b"content-length"}


#: A message's Content-Length is forwarded with it (the body is streamed as it came, not re-chunked).
_HOP_BY_HOP_KEEP_LENGTH = _HOP_BY_HOP - {b"content-length"}


logger = logging.getLogger("guardrail.proxy")

#: Address headers a client can write itself (their ``_`` spellings too, which some servers read as
#: ``-``): dropped, the socket peer alone passed on, unless the peer is a trusted proxy. A blocklist of
#: the names servers and libraries read; the upstream should believe ``X-Forwarded-For`` alone.
_ADDRESS_HEADERS = frozenset(
    {
        b"x-forwarded-for",
        b"forwarded",
        b"x-real-ip",
        b"true-client-ip",
        b"cf-connecting-ip",
        b"x-client-ip",
        b"x-cluster-client-ip",
        b"fastly-client-ip",
        b"x-original-forwarded-for",
        b"x-forwarded",
        b"forwarded-for",
        b"x-appengine-user-ip",
        b"cf-pseudo-ipv4",
        b"x-azure-clientip",
        b"x-azure-socketip",
    }
)


def _forwarding(
    headers: list[tuple[bytes, bytes]], peer: str | None, trusted: TrustedProxies | None
) -> list[tuple[bytes, bytes]]:
    """The request's address headers as the upstream should get them: every client-writable address
    header dropped, then one line of the chain. From a trusted proxy, the chain that proxy wrote (the one
    header it writes, ``trusted.header``) goes on with the proxy appended as the next hop; from anyone
    else the socket peer is the whole chain, so the upstream's address-based accounting sees who
    connected (a client writing ``X-Forwarded-For: 6.6.6.6`` would otherwise choose its address there)."""
    out = [(k, v) for k, v in headers if k.lower().replace(b"_", b"-") not in _ADDRESS_HEADERS]
    chain: list[bytes] = []
    name = b"x-forwarded-for"
    if trusted is not None and trusted.trusts(peer):
        name = trusted.header.encode()
        chain = [v.strip() for k, v in headers if k.lower() == name and v.strip()]
    if peer:
        node = peer if name == b"x-forwarded-for" else ("for=" + (f'"[{peer}]"' if ":" in peer else peer))
        chain.append(node.encode("latin-1"))
    if chain:
        out.append((name, b", ".join(chain)))
    return out


_CREDENTIALS = frozenset(name.encode() for name in CREDENTIAL_HEADERS)


def _underscored_credential(name: bytes) -> bool:
    """``x_api_key`` and the like: the guard reads credentials by their ``-`` names only, so these are
    not forwarded (an upstream that reads ``_`` as ``-``, as CGI and nginx's option do, would take a
    key the guard never counted)."""
    return b"_" in name and name.lower().replace(b"_", b"-") in _CREDENTIALS


def _forwarded_path(path: str, raw: bytes) -> bytes:
    """The path sent upstream: as it came, unless a server may route it as another (dot or empty
    segments, backslashes, also percent-encoded); then the canonical path guardrail matched and
    inspected, cut segment by segment from the raw path, so each remaining segment keeps its bytes as
    sent (an encoded ``%2F`` inside one stays one segment) and a trailing slash stays. Where that cut
    would route elsewhere than the guard's reading (a ``..`` after a segment holding ``%2F``, which the
    guard reads as two), the guard's canonical path itself, re-encoded."""
    text = raw.decode("latin-1")
    if not (ambiguous_path(path) or ambiguous_path(text)):
        return raw
    out: list[str] = []
    for segment in _SEPARATORS.split(text):
        name = unquote(segment)
        if name == "..":
            if out:
                out.pop()
        elif name not in ("", "."):
            out.append(segment)
    kept = "/" + "/".join(out)
    if out and text.lower().endswith(("/", "\\", "%5c")):
        kept += "/"
    guarded = canonical_path(path)
    if canonical_path(unquote(kept)) != guarded:
        kept = quote(guarded, safe="/!$&'()*+,;=:@-._~")
    return kept.encode("latin-1")


#: What separates path segments for a server that reads backslashes as slashes (raw or encoded).
_SEPARATORS = re.compile(r"/|\\|%5[cC]")


#: Upstream connections one worker keeps open at once (each live stream holds one).
MAX_CONNECTIONS = 1000
#: Seconds an idle upstream connection is kept for reuse (below the common 5 s server keep-alive).
KEEPALIVE_EXPIRY = 2.0
#: A request whose reused connection dies unanswered within this many seconds of sending is sent again.
STALE_WINDOW = 1.0
#: What httpcore raises when the upstream closes a connection without a byte of answer.
_NO_ANSWER = "without sending a response"


class _ClientGone(Exception):
    """The client disconnected while its body was being forwarded: abandon the upstream request."""


def _connection_listed(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names a ``Connection`` header lists: hop-by-hop for this message (RFC 9110, 7.6.1)."""
    names = {
        token.strip().lower()
        for key, value in headers
        if key.lower() == b"connection"
        for token in value.split(b",")
    }
    names.discard(b"")
    return frozenset(names)


class _RequestBody:
    """The rest of a request body, streamed upstream as it comes; ``on_done`` is called once its last
    chunk is in (the proxy then watches for the client leaving while the upstream works)."""

    __slots__ = ("_first", "_receive", "on_done")

    def __init__(self, first: bytes, receive: Receive) -> None:
        self._first = first
        self._receive = receive
        self.on_done: Callable[[], None] | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._first:
            yield self._first
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                if self.on_done is not None:
                    self.on_done()
                return


class _Reuse:
    """httpcore's ``trace`` extension for one request: was a new connection opened for it? (A trace the
    request already carried is called as well.) Without httpcore's events (a transport of another kind)
    nothing says the connection was reused, and the request is taken as sent on a new one: no retry."""

    __slots__ = ("_connected", "_then", "reused")

    def __init__(self, then: Any = None) -> None:
        self.reused = False
        self._connected = False
        self._then = then

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        # Decided per attempt (httpcore's pool may try a connection, find it gone and open another for
        # the same request): the last HTTP/1.1 headers sent are on a reused connection when no connection
        # was opened for them. HTTP/2 (a handed-in client only: the proxy's own speaks HTTP/1.1) is never
        # taken as stale, since a stream can join a connection another request has just opened.
        if event.endswith("connect_tcp.started") or event.endswith("connect_unix_socket.started"):
            self._connected = True
        elif event == "http11.send_request_headers.started":
            self.reused = not self._connected
            self._connected = False
        elif event.endswith("send_request_headers.started"):
            self.reused = False
            self._connected = False
        if self._then is not None:
            result = self._then(event, info)
            if inspect.isawaitable(result):
                await result


def _died_unanswered(exc: Exception) -> bool:
    """The upstream closed or reset the connection before a byte of answer (as far as httpcore says)."""
    import httpx

    if isinstance(exc, httpx.RemoteProtocolError):
        return _NO_ANSWER in str(exc)
    return isinstance(exc, (httpx.ReadError, httpx.WriteError))


async def _until_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` when the client goes away (the server's ``send`` after a disconnect may do
    nothing at all, as uvicorn's does: only ``receive`` tells). A server whose ``receive`` answers
    anything else once the body is read (ASGI has it wait for the disconnect) is not watched further."""
    try:
        message = await receive()
    except Exception:  # a server whose receive raises on a broken connection: the client is gone
        scope.cancel()
        return
    if message.get("type") == "http.disconnect":
        scope.cancel()


class ProxyApp:
    """A minimal streaming reverse proxy as an ASGI app (its own httpx client, opened at lifespan)."""

    def __init__(
        self,
        upstream: str,
        *,
        timeout: float = 600.0,
        client: httpx.AsyncClient | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"--upstream must be an http(s) URL, got {upstream!r}")
        if max_connections < 1:
            raise ValueError(f"--max-connections must be at least 1, got {max_connections}")
        self.upstream = upstream.rstrip("/")
        self._timeout = timeout
        self._max_connections = max_connections
        self._client = client
        self._own_client = client is None
        self._fresh: httpx.AsyncClient | None = None
        #: The proxies whose forwarding headers are passed on (set to the wrapping middleware's own).
        self.trusted: TrustedProxies | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            # A request past the connection cap waits for one (up to the timeout): streams of a few
            # minutes each need a cap far above httpx's default 100.
            timeout = httpx.Timeout(self._timeout, connect=10.0)
            # An idle connection is let go before the upstream's own keep-alive timeout would close it
            # (5 s for uvicorn and Node, httpx's default expiry too): reusing one the upstream is closing
            # at that very moment fails the request with a ReadError, a 502 for an honest client.
            limits = httpx.Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=min(self._max_connections, 100),
                keepalive_expiry=KEEPALIVE_EXPIRY,
            )
            self._client = httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False)
        return self._client

    def _fresh_http(self) -> httpx.AsyncClient:
        """A client that opens a new connection for every request (no idle connection is kept): for
        the one retry, which must not land on another stale pooled connection. A client handed in is
        used as it is."""
        if not self._own_client:
            return self._http()
        if self._fresh is None:
            import httpx

            timeout = httpx.Timeout(self._timeout, connect=10.0)
            limits = httpx.Limits(max_connections=self._max_connections, max_keepalive_connections=0)
            self._fresh = httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False)
        return self._fresh

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._fresh is not None:
            await self._fresh.aclose()
            self._fresh = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not proxied: returning closes the connection
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        raw_path = raw_path.split(b"?", 1)[0]
        if not raw_path.startswith(b"/"):
            # An absolute-form or authority-form target ("http://x/...", "host.evil:80/...") glued to the
            # upstream URL would name another host: only origin-form paths are forwarded.
            await _error(send, 400, "invalid request target", "invalid_request_error", "invalid_request")
            return
        if b"#" in raw_path or b"#" in scope.get("query_string", b""):
            # No fragment is part of a request target (RFC 9112, 3.2); h11 passes one on, the guard
            # matches "/v1/chat/completions#" as no route, and httpx would drop it upstream.
            await _error(send, 400, "invalid request target", "invalid_request_error", "invalid_request")
            return
        first = await receive()
        if first["type"] == "http.disconnect":
            return
        head: bytes = first.get("body", b"")
        content: bytes | _RequestBody = head
        if first.get("more_body", False):
            # Routes the middleware does not inspect get no body cap from it: stream, never buffer.
            content = _RequestBody(head, receive)
        query = scope.get("query_string", b"")
        url = self.upstream + _forwarded_path(scope.get("path", ""), raw_path).decode("latin-1")
        if query:
            url += "?" + query.decode("latin-1")
        incoming: list[tuple[bytes, bytes]] = scope.get("headers", [])
        # Headers the guard read the request's identity from are forwarded even when ``Connection``
        # lists them: dropping them would let the upstream authenticate another credential than the one
        # the guard counted (a decoy ``Authorization`` listed in ``Connection``, the real key elsewhere).
        listed = _connection_listed(incoming) - IDENTITY_HEADERS
        drop = _HOP_BY_HOP_KEEP_LENGTH | listed
        if any(k.lower() == b"transfer-encoding" for k, _ in incoming):
            drop |= {b"content-length"}  # has no meaning beside it (RFC 9112, 6.3): httpx frames the body
        headers = [(k, v) for k, v in incoming if k.lower() not in drop and not _underscored_credential(k)]
        client_addr = scope.get("client")
        headers = _forwarding(headers, client_addr[0] if client_addr else None, self.trusted)
        import httpx  # already loaded by _http(): a dictionary lookup

        client = self._http()
        try:
            request = client.build_request(scope["method"], url, headers=headers, content=content)
        except (httpx.InvalidURL, ValueError, TypeError):
            await _error(send, 400, "invalid request", "invalid_request_error", "invalid_request")
            return
        upstream: httpx.Response | None = None
        cut: httpx.HTTPError | None = None
        try:
            async with anyio.create_task_group() as watch:
                # Once the request is all read, a client that leaves ends the upstream request too (a
                # model would otherwise go on generating, and hold a pooled connection, for no one):
                # from the start when the body is in hand, else once it has all been streamed up.
                if isinstance(content, bytes):
                    watch.start_soon(_until_disconnect, receive, watch.cancel_scope)
                else:  # as soon as its last chunk has gone up, while the upstream may still be working

                    def watch_now() -> None:
                        watch.start_soon(_until_disconnect, receive, watch.cancel_scope)

                    content.on_done = watch_now
                upstream = await self._forward(client, request, content, send)
                if upstream is not None:
                    try:
                        await _relay(upstream, send)
                    except httpx.HTTPError as exc:
                        cut = exc
                watch.cancel_scope.cancel()
        finally:
            if upstream is not None:
                with anyio.CancelScope(shield=True):
                    await upstream.aclose()
        if cut is not None:
            # Headers are already sent: ending the body cleanly would pass a cut-off answer as whole.
            # Returning without the last message makes the server abort the connection (uvicorn logs
            # one line), so the client sees the answer cut off.
            logger.warning("guardrail proxy: upstream response cut off (%s)", type(cut).__name__)

    async def _forward(
        self, client: httpx.AsyncClient, request: httpx.Request, content: bytes | _RequestBody, send: Send
    ) -> httpx.Response | None:
        """The upstream's response to ``request``, or ``None`` once an error of the proxy's own is sent
        (or the client left mid-body)."""
        import httpx

        reuse = _Reuse(request.extensions.get("trace"))
        request.extensions["trace"] = reuse
        try:
            started = time.monotonic()
            try:
                return await client.send(request, stream=True)
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
                if (
                    not isinstance(content, bytes)
                    or not reuse.reused
                    or not _died_unanswered(exc)
                    or time.monotonic() - started > STALE_WINDOW
                ):
                    raise
                # No answer at once on a reused connection (the upstream was closing it as it was taken
                # from the pool): sent once more, on a new connection. Only a body in hand, only on a
                # reused connection that gave no byte of answer, and only within STALE_WINDOW of sending:
                # a new connection that dies, a malformed answer, or a connection that dies later (a
                # crashed worker, a balancer cutting a long generation) may have been worked on, and is
                # a 502 rather than a second run.
                fresh = self._fresh_http()
                retry = fresh.build_request(
                    request.method, request.url, headers=request.headers, content=content
                )
                return await fresh.send(retry, stream=True)
        except _ClientGone:
            return None
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                await _bad_gateway(send, "upstream unreachable: ConnectTimeout")
            else:
                await _error(send, 504, "upstream timed out", "api_error", "gateway_timeout")
            return None
        except httpx.HTTPError as exc:
            await _bad_gateway(send, f"upstream unreachable: {type(exc).__name__}")
            return None
        except Exception as exc:  # the forwarding itself failed (h11 refusing a request it cannot frame)
            logger.warning("guardrail proxy: forwarding failed", exc_info=True)
            await _bad_gateway(send, f"upstream request failed: {type(exc).__name__}")
            return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                self._http()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _relay(upstream: httpx.Response, send: Send) -> None:
    """The upstream's response, headers then raw bytes chunk by chunk (never buffered)."""
    raw = [(k.lower(), v) for k, v in upstream.headers.raw]
    listed = _connection_listed(raw)
    # ``Date`` is the proxy server's own (uvicorn adds it to every response, guardrail's refusals
    # included): the upstream's would make two. The raw bytes are relayed, so the upstream's
    # Content-Length holds for them; with a Transfer-Encoding it has no meaning (RFC 9112, 6.3).
    drop = _HOP_BY_HOP if b"transfer-encoding" in {k for k, _ in raw} else _HOP_BY_HOP_KEEP_LENGTH
    out = [(k, v) for k, v in raw if k not in drop and k not in listed and k != b"date"]
    await send({"type": "http.response.start", "status": upstream.status_code, "headers": out})
    async for chunk in upstream.aiter_raw():
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _bad_gateway(send: Send, text: str) -> None:
    await _error(send, 502, text, "api_error", "bad_gateway")


async def _error(send: Send, status: int, text: str, kind: str, code: str) -> None:
    """An error of the proxy's own, in OpenAI's shape."""
    error = {"error": {"message": text, "type": kind, "param": None, "code": code}}
    body = json.dumps(error, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


#: The ``GUARDRAIL_*`` variable (read by ``settings_from_env``) carrying each option to worker processes.
_ENV_NAMES = {
    "storage": "GUARDRAIL_STORAGE",
    "observe_only": "GUARDRAIL_OBSERVE_ONLY",
    "account_rpm": "GUARDRAIL_ACCOUNT_RPM",
    "trusted_proxies": "GUARDRAIL_TRUSTED_PROXIES",
    "proxy_header": "GUARDRAIL_PROXY_HEADER",
    "max_body_bytes": "GUARDRAIL_MAX_BODY_BYTES",
    "on_oversize": "GUARDRAIL_ON_OVERSIZE",
}


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Guardrail`` keyword arguments: the ``GUARDRAIL_*`` environment (as ``GuardrailFromEnv`` reads
    it), overridden by what the command line sets; one mapping for both launch modes, so ``--workers 1``
    and ``--workers 4`` run with the same options."""
    from ..adapters import settings_from_env

    options: dict[str, Any] = {
        k: v for k, v in settings_from_env().items() if k in _ENV_NAMES
    }  # fmt: skip
    if args.storage is not None:
        options["storage"] = args.storage
    if args.observe_only is not None:
        options["observe_only"] = args.observe_only
    if args.account_rpm is _OFF:
        options.pop("account_rpm", None)
    elif args.account_rpm is not None:
        options["account_rpm"] = args.account_rpm
    if args.trusted_proxies is not None:
        if args.trusted_proxies.strip():
            options["trusted_proxies"] = args.trusted_proxies
        else:
            options.pop("trusted_proxies", None)
    if getattr(args, "proxy_header", None):
        options["proxy_header"] = args.proxy_header
    if args.max_body_bytes is not None:
        options["max_body_bytes"] = args.max_body_bytes
    if getattr(args, "on_oversize", None):
        options["on_oversize"] = args.on_oversize
    return options


#: ``--account-rpm off``: no quota, whatever ``GUARDRAIL_ACCOUNT_RPM`` says.
_OFF = "off"


def _rpm(value: str) -> float | str:
    if value.strip().lower() in ("off", "none", "0"):
        return _OFF
    try:
        rpm = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected requests per minute or off, got {value!r}") from None
    if not rpm > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number or off, got {value!r}")
    return rpm


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """The same options as ``GUARDRAIL_*`` variables, for worker processes that build their own app."""
    return {
        _ENV_NAMES[name]: ("1" if value else "0") if isinstance(value, bool) else str(value)
        for name, value in _options(args).items()
    }


def build_app(args: argparse.Namespace) -> Any:
    """The proxy wrapped in ``Guardrail``, from parsed arguments."""
    from ..adapters import Guardrail

    proxy = ProxyApp(args.upstream, timeout=args.timeout, max_connections=args.max_connections)
    app = Guardrail(proxy, **_options(args))
    proxy.trusted = app.core.trusted
    return app


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "proxy",
        help="run guardrail as a reverse proxy in front of an OpenAI-compatible server",
        description="Forward every request to --upstream through the guardrail middleware (streaming kept).",
    )
    parser.add_argument("--upstream", required=True, help="upstream base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument(
        "--storage",
        default=None,
        help="storage URI (memory:// or redis://...; default $GUARDRAIL_STORAGE or memory://)",
    )
    parser.add_argument(
        "--account-rpm",
        type=_rpm,
        default=None,
        help="requests per minute per account (off: none, whatever $GUARDRAIL_ACCOUNT_RPM says)",
    )
    parser.add_argument(
        "--observe-only",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decide and record, never refuse (--no-observe-only overrides $GUARDRAIL_OBSERVE_ONLY)",
    )
    parser.add_argument(
        "--trusted-proxies",
        default=None,
        help='comma-separated proxy IPs/CIDRs to trust ("": none, whatever $GUARDRAIL_TRUSTED_PROXIES says)',
    )
    parser.add_argument(
        "--proxy-header",
        default=None,
        choices=["x-forwarded-for", "forwarded"],
        help="the header the trusted proxies write (default $GUARDRAIL_PROXY_HEADER or x-forwarded-for)",
    )
    parser.add_argument("--max-body-bytes", type=int, default=None, help="request body cap")
    parser.add_argument(
        "--on-oversize",
        default=None,
        choices=["refuse", "pass"],
        help="a body over the cap: refuse (413) or pass uninspected (default $GUARDRAIL_ON_OVERSIZE, refuse)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="upstream read timeout, seconds")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=MAX_CONNECTIONS,
        help=f"upstream connections open at once, per worker (default {MAX_CONNECTIONS}); a request"
        " beyond waits for one",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (use Redis if > 1)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="guardrail's own log lines on stderr: info (default) shows every refusal and, in observe-only"
        " mode, every would-be refusal; debug also every allowed request; uvicorn's stay at warning",
    )
    parser.set_defaults(handler=run)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration with guardrail's loggers added at ``level`` (applied in every
    worker process too: each one configures its logging from this)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["guardrail"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["guardrail"] = {
        "class": "logging.StreamHandler",
        "formatter": "guardrail",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["guardrail"] = {"handlers": ["guardrail"], "level": level.upper(), "propagate": False}
    return config


def run(args: argparse.Namespace) -> int:
    try:
        import httpx  # noqa: F401  (the forwarding client)
        import uvicorn
    except ImportError as exc:
        print(
            f"guardrail proxy needs {exc.name}: pip install uvicorn httpx (guardrail's 'proxy' extra)",
            file=sys.stderr,
        )
        return 2

    if args.workers < 1:
        print("guardrail proxy: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        app = build_app(args)  # validates every option, even when workers build their own
    except ValueError as exc:
        print(f"guardrail proxy: {exc}", file=sys.stderr)
        return 2
    storage = str(_options(args).get("storage", "memory://"))
    if args.workers > 1 and urlsplit(storage).scheme == "memory":
        print(
            f"guardrail proxy: warning: {args.workers} workers on {storage} keep {args.workers} separate"
            " budgets and histories; use --storage redis://... to share them",
            file=sys.stderr,
        )
    print(
        f"guardrail proxy: listening on http://{args.host}:{args.port}, forwarding to {args.upstream}"
        f" ({args.workers} worker{'s' if args.workers > 1 else ''}, storage {display_uri(storage)})",
        file=sys.stderr,
        flush=True,
    )
    common: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": "warning",
        "log_config": log_config(args.log_level),
        "proxy_headers": False,
        # The upstream's own Server is passed on (uvicorn's would make two); Date is uvicorn's.
        "server_header": False,
    }
    if args.workers == 1:
        uvicorn.run(app, **common)
        return 0
    # Worker processes import the app themselves: hand the options over through the environment.
    os.environ["GUARDRAIL_UPSTREAM"] = args.upstream
    os.environ["GUARDRAIL_UPSTREAM_TIMEOUT"] = str(args.timeout)
    os.environ["GUARDRAIL_UPSTREAM_CONNECTIONS"] = str(args.max_connections)
    environment = _environment(args)
    for name in _ENV_NAMES.values():  # an option the command line switched off must not reach the workers
        os.environ.pop(name, None)
    os.environ.update(environment)
    uvicorn.run("guardrail.cli._proxy:app_from_env", factory=True, workers=args.workers, **common)
    return 0


def app_from_env() -> Any:
    """Factory for ``uvicorn --factory guardrail.cli._proxy:app_from_env`` (``GUARDRAIL_UPSTREAM`` etc.)."""
    from ..adapters import GuardrailFromEnv

    upstream = os.environ.get("GUARDRAIL_UPSTREAM", "")
    timeout = float(os.environ.get("GUARDRAIL_UPSTREAM_TIMEOUT", "600"))
    connections = int(os.environ.get("GUARDRAIL_UPSTREAM_CONNECTIONS", str(MAX_CONNECTIONS)))
    proxy = ProxyApp(upstream, timeout=timeout, max_connections=connections)
    app = GuardrailFromEnv(proxy)
    proxy.trusted = app.core.trusted
    return app
