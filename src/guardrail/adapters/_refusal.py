"""Refusals in the provider's own error shape, and the rate-limit headers.

A client SDK must understand our refusal as the provider's own: the official OpenAI and Anthropic SDKs
raise ``RateLimitError`` on 429 and honour ``retry-after-ms`` / ``Retry-After`` (``openai`` 3.x up to 120 s,
1.x up to 60 s, ``anthropic`` any wait), and ``x-should-retry: false`` stops them retrying a 403 block (which
would triple the traffic).
The message is deliberately generic: detection details stay server-side.

Headers follow draft-ietf-httpapi-ratelimit-headers-10 (``RateLimit-Policy: "name";q=..;w=..`` and
``RateLimit: "name";r=..;t=..``) and OpenAI's ``x-ratelimit-*-requests`` family.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from ._routes import Provider

Headers = list[tuple[bytes, bytes]]

# status -> (OpenAI type, OpenAI code, Anthropic type, Gemini status, generic message)
_KINDS: dict[int, tuple[str, str, str, str, str]] = {
    429: (
        "rate_limit_error",
        "rate_limit_exceeded",
        "rate_limit_error",
        "RESOURCE_EXHAUSTED",
        "Rate limited.",
    ),
    403: ("permission_error", "blocked", "permission_error", "PERMISSION_DENIED", "Blocked."),
    413: (
        "invalid_request_error",
        "request_too_large",
        "request_too_large",
        "INVALID_ARGUMENT",
        "Request body too large.",
    ),
    400: (
        "invalid_request_error",
        "invalid_request",
        "invalid_request_error",
        "INVALID_ARGUMENT",
        "Invalid request.",
    ),
    408: (
        "invalid_request_error",
        "request_timeout",
        "invalid_request_error",
        "DEADLINE_EXCEEDED",
        "Request timeout.",
    ),
    415: (
        "invalid_request_error",
        "unsupported_content_encoding",
        "invalid_request_error",
        "INVALID_ARGUMENT",
        "Unsupported content encoding.",
    ),
    503: ("api_error", "server_busy", "api_error", "UNAVAILABLE", "Server busy. Retry shortly."),
}

#: Hop-by-hop headers (RFC 9110 7.6.1, and PEP 3333's list, which a WSGI server refuses from an app),
#: lower-case bytes: what a WSGI app may not send and a proxy does not forward.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
     b"trailers", b"transfer-encoding", b"upgrade"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Refusal:
    """A complete response: status, headers (lower-case bytes) and a JSON body."""

    status: int
    headers: Headers
    body: bytes


#: Longest wait advertised (a day): beyond it a client should not be told to wait, just to stop.
MAX_RETRY_AFTER = 86_400.0


def retry_after_ms(retry_after: float) -> int:
    """Milliseconds to wait, at least 1, at most a day (non-finite and negative input treated as 1 s)."""
    if not math.isfinite(retry_after) or retry_after <= 0:
        return 1000
    return max(1, math.ceil(min(retry_after, MAX_RETRY_AFTER) * 1000))


def retry_after_seconds(retry_after: float) -> int:
    """``Retry-After`` is an integer: rounded up from the milliseconds, never 0 ("retry now")."""
    return (retry_after_ms(retry_after) + 999) // 1000


def _error_body(provider: Provider, status: int, message: str) -> bytes:
    openai_type, code, anthropic_type, gemini_status, _ = _KINDS[status]
    payload: object
    if provider == "anthropic":
        payload = {"type": "error", "error": {"type": anthropic_type, "message": message}}
    elif provider == "gemini":
        payload = {"error": {"code": status, "message": message, "status": gemini_status}}
    else:
        payload = {"error": {"message": message, "type": openai_type, "param": None, "code": code}}
    return json.dumps(payload, separators=(",", ":")).encode()


def refusal(
    provider: Provider,
    status: int,
    *,
    retry_after: float = 0.0,
    limit: float | None = None,
    reset_after: float | None = None,
    unit: str = "requests",
) -> Refusal:
    """The response for a refused request (429 throttle, 403 block, 413 too large, 408 stalled, 400 bad
    length, 415 a content coding guardrail cannot read, 503 a coded body not inflated in time)."""
    if status not in _KINDS:
        raise ValueError(f"no refusal shape for status {status}")
    message = _KINDS[status][4]
    headers: Headers = [(b"content-type", b"application/json")]
    if status == 429:
        millis = retry_after_ms(retry_after)
        seconds = (millis + 999) // 1000
        message = f"Rate limited. Retry after {seconds} second{'s' if seconds != 1 else ''}."
        headers += [
            (b"retry-after", str(seconds).encode()),
            (b"retry-after-ms", str(millis).encode()),
            (b"x-should-retry", b"true"),
        ]
        if limit is not None:
            reset = reset_after if reset_after is not None else retry_after
            headers += rate_limit_headers(limit, 0.0, reset, unit)
    elif status == 403:
        headers.append((b"x-should-retry", b"false"))
    elif status in (400, 408, 413):
        headers += [(b"x-should-retry", b"false"), (b"connection", b"close")]
    elif status == 415:  # the body was read whole: the connection can stay; RFC 7694 names what is read
        headers += [(b"x-should-retry", b"false"), (b"accept-encoding", b"gzip, deflate")]
    elif status == 503:  # guardrail's own load (a coded body not inflated in time): worth one more try
        headers += [(b"retry-after", b"1"), (b"retry-after-ms", b"1000"), (b"x-should-retry", b"true")]
    body = _error_body(provider, status, message)
    headers.append((b"content-length", str(len(body)).encode()))
    return Refusal(status, headers, body)


def spent_quota(provider: Provider, rate: float, burst: float, wait: float) -> Refusal:
    """A 429 from another bucket, worn as a spent request quota (``rate`` requests/s, ``burst``) shows
    it: its headers spent (``r=0``, reset in the quota's whole refill) and its wait at most a spent
    quota's own (the time to one more request, ``1 / rate``). A flagged cluster's shared bucket may hold
    a client for minutes; advertising that wait beside a quota that refills in seconds would tell the
    client that detection, not the quota, refused it. A client told the shorter wait retries sooner and
    is refused again, cheaply, until the bucket has room."""
    return refusal(
        provider,
        429,
        retry_after=min(wait, 1.0 / rate) if wait > 0 else 1.0 / rate,
        limit=burst,
        reset_after=burst / rate,
        unit="requests",
    )


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``"1s"``, ``"6m0s"``, ``"1h2m3s"``, ``"250ms"``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


#: Float noise tolerated when a bucket's level is shown as a whole count (far below one request).
_COUNT_NOISE = 1e-6


def rate_limit_headers(
    limit: float, remaining: float | None, reset_after: float | None, unit: str = "requests"
) -> Headers:
    """IETF ``RateLimit-Policy`` / ``RateLimit`` and OpenAI ``x-ratelimit-*-<unit>`` headers.

    ``limit`` is the bucket's capacity (``unit``: ``"requests"`` for the request quota, ``"tokens"`` for
    the engine's token buckets), ``remaining`` what is left now and ``reset_after`` the seconds until the
    bucket is full again. The policy is named after its unit; the window is not known here, so ``w`` is
    left out (it is optional in the draft).
    """
    if unit not in ("requests", "tokens"):
        raise ValueError(f"unit must be 'requests' or 'tokens', got {unit!r}")
    if not math.isfinite(limit) or limit < 0:
        return []
    quota = int(limit)
    if remaining is None or not math.isfinite(remaining):
        left = quota
    else:
        # A token bucket's level comes from float timestamps near 1.8e9 s: a whole 49 may arrive as
        # 48.9999999999994. Shown to clients as a count, it must not lose a request to that noise.
        left = max(0, min(quota, int(remaining + _COUNT_NOISE)))
    name = f'"{unit}"'
    policy = f"{name};q={quota}"
    current = f"{name};r={left}"
    headers: Headers = [(b"ratelimit-policy", policy.encode())]
    reset = reset_after if reset_after is not None and math.isfinite(reset_after) and reset_after > 0 else 0.0
    current += f";t={math.ceil(reset)}"
    headers += [
        (b"ratelimit", current.encode()),
        (f"x-ratelimit-limit-{unit}".encode(), str(quota).encode()),
        (f"x-ratelimit-remaining-{unit}".encode(), str(left).encode()),
        (f"x-ratelimit-reset-{unit}".encode(), _duration(reset).encode()),
    ]
    return headers
