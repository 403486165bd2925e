"""Pure parts of the adapters: routes, identity, trusted proxies, refusal shapes, headers, usage parsing."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardrail.adapters import (
    DEFAULT_ROUTES,
    RouteTable,
    SSEUsageScanner,
    TrustedProxies,
    api_key,
    rate_limit_headers,
    refusal,
    settings_from_env,
    usage_from_json,
)
from guardrail.adapters._body import BodyStatus, declared_length

# -- routes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "provider"),
    [
        ("/v1/chat/completions", "openai"),
        ("/openai/v1/chat/completions", "openai"),
        ("/chat/completions", "openai"),
        ("/v1/completions", "openai"),
        ("/v1/responses", "openai"),
        ("/v1/messages", "anthropic"),
        ("/anthropic/v1/messages", "anthropic"),
        ("/v1beta/models/gemini-2.0-flash:generateContent", "gemini"),
        ("/v1beta/models/gemini-2.0-flash:streamGenerateContent", "gemini"),
        ("/v1/models", None),
        ("/health", None),
        ("/v1/responses/resp_123", None),
        ("/", None),
    ],
)
def test_default_routes(path: str, provider: str | None) -> None:
    assert RouteTable().match(path) == provider


def test_custom_routes_and_validation() -> None:
    table = RouteTable({"/generate": "openai", "/claude/*": "anthropic"})
    assert table.match("/generate") == "openai"
    assert table.match("/claude/x/y") == "anthropic"
    assert table.match("/v1/chat/completions") is None
    assert RouteTable({}).match("/v1/chat/completions") is None
    assert RouteTable() == RouteTable(DEFAULT_ROUTES)
    with pytest.raises(ValueError, match="provider"):
        RouteTable({"/x": "cohere"})
    with pytest.raises(ValueError, match="non-empty"):
        RouteTable({"": "openai"})


@given(st.text(max_size=60))
def test_route_match_never_raises(path: str) -> None:
    assert RouteTable().match(path) in (None, "openai", "anthropic", "gemini")


# -- identity --------------------------------------------------------------------------------------


def test_api_key_sources_and_first_value_wins() -> None:
    assert api_key([("authorization", "Bearer sk-a")]) == "sk-a"
    assert api_key([("authorization", "bearer  sk-a ")]) == "sk-a"
    assert api_key([("x-api-key", "ant-1")]) == "ant-1"
    assert api_key([("x-goog-api-key", "g-1")]) == "g-1"
    assert api_key([], "alt=sse&key=g-2") == "g-2"
    assert api_key([("authorization", "Basic Zm9vOmJhcg==")]) == "Basic Zm9vOmJhcg=="
    assert api_key([("authorization", "Bearer first"), ("authorization", "Bearer second")]) == "first"
    # Only the first Authorization line counts, whatever its scheme (it is the one the app reads).
    assert api_key([("authorization", "Basic real"), ("authorization", "Bearer rotating")]) == "Basic real"
    assert api_key([("authorization", "Basic real, Bearer rotating")]) == "Basic real"  # folded by WSGI
    # The route's own credential header comes first: a rotating value in another header is no new budget.
    mixed = [("authorization", "Bearer rotating"), ("x-api-key", "real"), ("x-goog-api-key", "g")]
    assert api_key(mixed, provider="openai") == "rotating"
    assert api_key(mixed, provider="anthropic") == "real"
    assert api_key(mixed, provider="gemini") == "g"
    assert api_key([("authorization", "Bearer rotating")], "key=real", provider="gemini") == "real"
    assert api_key([("authorization", "Bearer ")]) is None
    assert api_key([]) is None


@given(st.lists(st.tuples(st.sampled_from(["authorization", "x-api-key", "x-other"]), st.text(max_size=20))))
def test_api_key_total(headers: list[tuple[str, str]]) -> None:
    key = api_key(headers)
    assert key is None or (key and key == key.strip())


def test_trusted_proxies_walk_from_the_right() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "127.0.0.1"])
    xff = [("x-forwarded-for", "203.0.113.9, 10.1.2.3")]
    assert proxies.client_ip("10.0.0.1", xff) == "203.0.113.9"
    # A spoofed left-most entry does not win: the first untrusted hop from the right does.
    assert proxies.client_ip("10.0.0.1", [("x-forwarded-for", "1.1.1.1, 198.51.100.7")]) == "198.51.100.7"
    # An untrusted peer's header is ignored.
    assert proxies.client_ip("198.51.100.1", xff) == "198.51.100.1"
    # Several header lines count as one list.
    lines = [("x-forwarded-for", "203.0.113.9"), ("x-forwarded-for", "10.1.1.1")]
    assert proxies.client_ip("127.0.0.1", lines) == "203.0.113.9"
    # RFC 7239 Forwarded, with quotes, ports and IPv6 brackets.
    rfc = TrustedProxies(["10.0.0.0/8", "127.0.0.1"], header="forwarded")
    fwd = [("forwarded", 'for="[2001:db8::1]:4711";proto=https, for=10.0.0.5')]
    assert rfc.client_ip("10.0.0.1", fwd) == "2001:db8::1"
    assert rfc.client_ip("10.0.0.1", [("forwarded", "for=_hidden")]) is None
    # Only the configured header is read: a client's own Forwarded line, passed through by a proxy
    # that appends to X-Forwarded-For, cannot choose its address (and vice versa).
    assert proxies.client_ip("10.0.0.1", [*fwd, ("x-forwarded-for", "198.51.100.7")]) == "198.51.100.7"
    assert rfc.client_ip("10.0.0.1", [*fwd, ("x-forwarded-for", "1.1.1.1")]) == "2001:db8::1"
    # A dual-stack socket reports an IPv4 proxy as an IPv4-mapped IPv6 address.
    assert proxies.client_ip("::ffff:10.0.0.1", xff) == "203.0.113.9"
    with pytest.raises(ValueError, match="proxy_header"):
        TrustedProxies(["10.0.0.0/8"], header="x-real-ip")
    assert proxies.client_ip("10.0.0.1", []) == "10.0.0.1"
    assert proxies.client_ip("10.0.0.1", [("x-forwarded-for", "10.0.0.2")]) == "10.0.0.2"
    assert not TrustedProxies()
    assert TrustedProxies("10.0.0.0/8, 127.0.0.1") == proxies
    with pytest.raises(ValueError, match="not an IP"):
        TrustedProxies(["example.com"])


def test_a_unix_socket_peer_is_trusted_only_when_named() -> None:
    # nginx in front of gunicorn or uvicorn on a Unix socket: the peer has no address (None, or "" as
    # gunicorn's REMOTE_ADDR), so only "unix" among the trusted proxies makes its header believed.
    xff = [("x-forwarded-for", "203.0.113.9")]
    assert TrustedProxies(["10.0.0.0/8"]).client_ip(None, xff) is None
    both = TrustedProxies("unix, 10.0.0.0/8")
    assert both and both.client_ip(None, xff) == "203.0.113.9" and both.client_ip("", xff) == "203.0.113.9"
    assert both.client_ip("198.51.100.1", xff) == "198.51.100.1"  # a TCP peer still needs its network
    assert both.client_ip(None, [("x-forwarded-for", "203.0.113.9, 10.0.0.4")]) == "203.0.113.9"
    assert both.networks == ("10.0.0.0/8", "unix") and TrustedProxies(["UNIX"]).client_ip(None, xff)
    assert TrustedProxies(["unix"]).client_ip(None, []) is None


@given(st.text(max_size=80), st.sampled_from(["x-forwarded-for", "forwarded"]))
def test_client_ip_total(value: str, name: str) -> None:
    result = TrustedProxies(["127.0.0.1"]).client_ip("127.0.0.1", [(name, value)])
    assert result is None or isinstance(result, str)


# -- refusals and headers --------------------------------------------------------------------------


def test_refusal_shapes() -> None:
    r = refusal("openai", 429, retry_after=1.2, limit=10, reset_after=5)
    body = json.loads(r.body)
    assert r.status == 429
    assert set(body["error"]) >= {"message", "type", "code"}
    assert body["error"]["code"] == "rate_limit_exceeded"
    headers = dict(r.headers)
    assert headers[b"retry-after"] == b"2"
    assert headers[b"retry-after-ms"] == b"1200"
    assert headers[b"ratelimit"] == b'"requests";r=0;t=5'
    assert int(headers[b"content-length"]) == len(r.body)

    a = refusal("anthropic", 403)
    assert json.loads(a.body) == {
        "type": "error",
        "error": {"type": "permission_error", "message": "Blocked."},
    }
    assert dict(a.headers)[b"x-should-retry"] == b"false"
    g = json.loads(refusal("gemini", 429, retry_after=3).body)
    assert g["error"]["status"] == "RESOURCE_EXHAUSTED" and g["error"]["code"] == 429
    assert json.loads(refusal("openai", 413).body)["error"]["code"] == "request_too_large"
    with pytest.raises(ValueError):
        refusal("openai", 418)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_retry_after_is_a_positive_integer(seconds: float) -> None:
    headers = dict(refusal("openai", 429, retry_after=seconds).headers)
    assert int(headers[b"retry-after"]) >= 1
    assert int(headers[b"retry-after-ms"]) >= 1
    # The seconds header never promises less than the millisecond one.
    assert int(headers[b"retry-after"]) * 1000 >= int(headers[b"retry-after-ms"])


def test_refusal_message_is_generic() -> None:
    for provider in ("openai", "anthropic", "gemini"):
        for status in (429, 403):
            text = refusal(provider, status, retry_after=2).body.decode().lower()  # type: ignore[arg-type]
            assert "score" not in text and "cluster" not in text and "template" not in text


def test_rate_limit_headers_syntax() -> None:
    h = dict(rate_limit_headers(60, 12.7, 3.3))
    assert h[b"ratelimit-policy"] == b'"requests";q=60'
    assert h[b"ratelimit"] == b'"requests";r=12;t=4'
    assert h[b"x-ratelimit-remaining-requests"] == b"12"
    assert h[b"x-ratelimit-reset-requests"] == b"4s"
    assert dict(rate_limit_headers(100, 0, 3725))[b"x-ratelimit-reset-requests"] == b"1h2m5s"
    assert dict(rate_limit_headers(100, 0, 0.25))[b"x-ratelimit-reset-requests"] == b"250ms"
    assert rate_limit_headers(float("nan"), 1, 1) == []
    t = dict(rate_limit_headers(8000, 100, 2, "tokens"))
    assert t[b"ratelimit-policy"] == b'"tokens";q=8000' and t[b"x-ratelimit-remaining-tokens"] == b"100"
    with pytest.raises(ValueError):
        rate_limit_headers(1, 1, 1, "bytes")


# -- usage -----------------------------------------------------------------------------------------


def test_usage_from_json_formats() -> None:
    assert usage_from_json(b'{"usage":{"prompt_tokens":3,"completion_tokens":42}}') == 42
    assert usage_from_json(b'{"usage":{"input_tokens":3,"output_tokens":17}}') == 17
    assert usage_from_json(b'{"usageMetadata":{"candidatesTokenCount":5,"thoughtsTokenCount":2}}') == 7
    assert (
        usage_from_json(
            b'[{"usageMetadata":{"candidatesTokenCount":1}},{"usageMetadata":{"candidatesTokenCount":9}}]'
        )
        == 9
    )
    assert usage_from_json(b'{"usage":{"completion_tokens":-1}}') is None
    assert usage_from_json(b'{"usage":{"completion_tokens":true}}') is None
    assert usage_from_json(b"not json") is None
    assert usage_from_json(b"[" * 100_000) is None


_OPENAI_STREAM = (
    b'data: {"choices":[{"delta":{"content":"Hi"}}],"usage":null}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":263}}\n\n'
    b"data: [DONE]\n\n"
)
_ANTHROPIC_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"usage is fun"}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":55}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def test_anthropic_message_start_placeholder_is_not_a_usage() -> None:
    """A stream cut before ``message_delta`` (the client left) has read no usage: its estimate stands,
    rather than settling the ``output_tokens: 1`` that ``message_start`` carries before any text."""
    scanner = SSEUsageScanner()
    scanner.feed(_ANTHROPIC_STREAM.split(b"event: message_delta")[0])
    assert scanner.tokens is None
    scanner.feed(b"event: message_delta" + _ANTHROPIC_STREAM.split(b"event: message_delta")[1])
    assert scanner.tokens == 55


_RESPONSES_STREAM = (
    b"event: response.completed\n"
    b'data: {"type":"response.completed","response":{"usage":{"output_tokens":12}}}\n\n'
)


@pytest.mark.parametrize(
    ("stream", "tokens"), [(_OPENAI_STREAM, 263), (_ANTHROPIC_STREAM, 55), (_RESPONSES_STREAM, 12)]
)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=12),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_sse_scanner_is_independent_of_chunking(
    stream: bytes, tokens: int, cuts: list[int], eol: str
) -> None:
    """Whatever the chunking, and with any of the three line endings SSE allows."""
    stream = stream.replace(b"\n", eol.encode())
    points = sorted({c % (len(stream) + 1) for c in cuts})
    scanner = SSEUsageScanner()
    last = 0
    for point in [*points, len(stream)]:
        scanner.feed(stream[last:point])
        last = point
    scanner.close()
    assert scanner.tokens == tokens


def test_sse_scanner_joins_an_events_data_lines() -> None:
    scanner = SSEUsageScanner()
    scanner.feed(
        b'event: message_delta\ndata: {"type":"message_delta",\ndata: "usage":{"output_tokens":5}}\n\n'
    )
    scanner.feed(b'data: {"type":"message_stop"}\n\n')
    scanner.close()
    assert scanner.tokens == 5


def test_sse_scanner_without_usage_and_final_line() -> None:
    scanner = SSEUsageScanner()
    scanner.feed(b'data: {"choices":[]}\n\n')
    scanner.close()
    assert scanner.tokens is None
    scanner = SSEUsageScanner()
    scanner.feed(b'data: {"usage":{"output_tokens":3}}')  # no trailing newline
    scanner.close()
    assert scanner.tokens == 3


# -- body length and environment -------------------------------------------------------------------


def test_declared_length() -> None:
    assert declared_length([]) is None
    assert declared_length([(b"content-length", b"12")]) == 12
    assert declared_length([(b"content-length", b"12"), (b"content-length", b"12")]) == 12
    assert declared_length([(b"content-length", b"12"), (b"content-length", b"13")]) is BodyStatus.BAD_LENGTH
    assert declared_length([(b"content-length", b"-1")]) is BodyStatus.BAD_LENGTH
    assert declared_length([(b"content-length", b"1e3")]) is BodyStatus.BAD_LENGTH


def test_settings_from_env() -> None:
    env = {
        "GUARDRAIL_STORAGE": "redis://127.0.0.1:6379/0",
        "GUARDRAIL_ACCOUNT_RPM": "30",
        "GUARDRAIL_OBSERVE_ONLY": "true",
        "GUARDRAIL_TRUSTED_PROXIES": "10.0.0.0/8",
        "GUARDRAIL_MAX_BODY_BYTES": "1024",
        "GUARDRAIL_ON_OVERSIZE": "pass",
        "GUARDRAIL_PROXY_HEADER": "forwarded",
    }
    assert settings_from_env(env) == {
        "storage": "redis://127.0.0.1:6379/0",
        "account_rpm": 30.0,
        "observe_only": True,
        "trusted_proxies": "10.0.0.0/8",
        "max_body_bytes": 1024,
        "on_oversize": "pass",
        "proxy_header": "forwarded",
    }
    assert settings_from_env({}) == {"storage": "memory://"}
    for bad in (
        {"GUARDRAIL_ACCOUNT_RPM": "fast"},
        {"GUARDRAIL_OBSERVE_ONLY": "maybe"},
        {"GUARDRAIL_MAX_BODY_BYTES": "1k"},
        {"GUARDRAIL_MAX_BODY_BYTES": "\u00b2"},
    ):
        with pytest.raises(ValueError, match="GUARDRAIL_"):
            settings_from_env(bad)


def test_adapters_all_is_complete() -> None:
    import guardrail.adapters as adapters

    public = {
        name
        for name, value in vars(adapters).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("guardrail")
    }
    assert public <= set(adapters.__all__)
    assert all(hasattr(adapters, name) for name in adapters.__all__)


def test_proxy_workers_get_the_single_worker_options() -> None:
    """``guardrail proxy --workers N`` hands its options over as ``GUARDRAIL_*``: they must read back."""
    import argparse

    from guardrail.cli import _proxy

    parser = argparse.ArgumentParser()
    _proxy.register(parser.add_subparsers())
    for extra in (
        [],
        [
            "--account-rpm",
            "7.5",
            "--trusted-proxies",
            "10.0.0.0/8",
            "--max-body-bytes",
            "100",
            "--observe-only",
            "--proxy-header",
            "forwarded",
        ],
    ):
        args = parser.parse_args(["proxy", "--upstream", "http://127.0.0.1:1", *extra])
        assert settings_from_env(_proxy._environment(args)) == _proxy._options(args)


def test_proxy_reads_guardrail_variables_with_one_worker_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """``GUARDRAIL_*`` already in the environment apply whatever ``--workers``; the command line wins."""
    import argparse

    from guardrail.cli import _proxy

    monkeypatch.setenv("GUARDRAIL_TRUSTED_PROXIES", "10.0.0.0/8")
    monkeypatch.setenv("GUARDRAIL_ON_OVERSIZE", "pass")
    monkeypatch.setenv("GUARDRAIL_ACCOUNT_RPM", "30")
    parser = argparse.ArgumentParser()
    _proxy.register(parser.add_subparsers())
    args = parser.parse_args(["proxy", "--upstream", "http://127.0.0.1:1", "--account-rpm", "5"])
    options = _proxy._options(args)
    assert options["trusted_proxies"] == "10.0.0.0/8" and options["on_oversize"] == "pass"
    assert options["account_rpm"] == 5 and options["storage"] == "memory://"
    assert settings_from_env(_proxy._environment(args)) == options


def _unset_worker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run`` writes these for its workers: unset now, restored after the test."""
    for name in (
        "GUARDRAIL_UPSTREAM",
        "GUARDRAIL_UPSTREAM_TIMEOUT",
        "GUARDRAIL_UPSTREAM_CONNECTIONS",
        "GUARDRAIL_STORAGE",
    ):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_proxy_flags_switch_off_what_guardrail_variables_set(
    monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """``--no-observe-only``, ``--account-rpm off``, ``--trusted-proxies ""`` and ``--on-oversize`` win over
    the environment, in the process and in the workers' environment alike."""
    import argparse

    import uvicorn

    from guardrail.cli import _proxy

    monkeypatch.setenv("GUARDRAIL_OBSERVE_ONLY", "1")
    monkeypatch.setenv("GUARDRAIL_ACCOUNT_RPM", "30")
    monkeypatch.setenv("GUARDRAIL_TRUSTED_PROXIES", "10.0.0.0/8")
    monkeypatch.setenv("GUARDRAIL_ON_OVERSIZE", "pass")
    _unset_worker_environment(monkeypatch)
    parser = argparse.ArgumentParser()
    _proxy.register(parser.add_subparsers())
    argv = ["proxy", "--upstream", "http://127.0.0.1:1", "--no-observe-only", "--account-rpm", "off"]
    argv += ["--trusted-proxies", "", "--on-oversize", "refuse"]
    args = parser.parse_args([*argv, "--workers", workers])
    options = _proxy._options(args)
    assert options == {"storage": "memory://", "observe_only": False, "on_oversize": "refuse"}
    launched: list[tuple[Any, dict[str, str]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: launched.append((app, dict(os.environ))))
    assert _proxy.run(args) == 0
    app, environment = launched[0]
    if workers == "1":
        core = app.core
        assert core.observe_only is False and core.quota is None and core.on_oversize == "refuse"
    else:  # each worker builds its app from the environment it inherits
        assert settings_from_env(environment) == options
        assert "GUARDRAIL_ACCOUNT_RPM" not in environment and "GUARDRAIL_TRUSTED_PROXIES" not in environment
    # --max-connections reaches the upstream client in either launch mode (httpx's own default is 100)
    args = parser.parse_args([*argv, "--workers", workers, "--max-connections", "7"])
    launched.clear()
    assert _proxy.run(args) == 0
    if workers == "1":
        proxy = launched[0][0].app
    else:
        monkeypatch.setattr(os, "environ", launched[0][1])
        proxy = _proxy.app_from_env().app
    pool = proxy._http()._transport._pool
    assert pool._max_connections == 7 and pool._max_keepalive_connections == 7
    assert pool._keepalive_expiry == _proxy.KEEPALIVE_EXPIRY < 5.0  # below uvicorn's and Node's 5 s
    with pytest.raises(SystemExit):
        parser.parse_args([*argv[:3], "--account-rpm", "-3"])


@pytest.mark.parametrize(
    ("storage", "workers", "warned"),
    [("memory://", "2", True), ("memory://", "1", False), ("redis://:s3cret@127.0.0.1:1/0", "2", False)],
)
def test_proxy_says_where_it_listens_and_warns_of_unshared_workers(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    storage: str,
    workers: str,
    warned: bool,
) -> None:
    import argparse

    import uvicorn

    from guardrail.cli import _proxy

    _unset_worker_environment(monkeypatch)
    parser = argparse.ArgumentParser()
    _proxy.register(parser.add_subparsers())
    argv = ["proxy", "--upstream", "http://127.0.0.1:1", "--port", "8123", "--storage", storage]
    args = parser.parse_args([*argv, "--workers", workers])
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    assert _proxy.run(args) == 0
    err = capsys.readouterr().err
    assert "listening on http://127.0.0.1:8123, forwarding to http://127.0.0.1:1" in err
    assert ("separate budgets" in err) is warned
    assert "s3cret" not in err


@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=0.0, max_value=0.999))
def test_remaining_count_ignores_float_noise_but_not_fractions(whole: int, fraction: float) -> None:
    # A bucket at a whole count can come back from float timestamps a hair below it (49 as
    # 48.9999999999994 around 2026's epoch seconds): the header shows 49; a genuine fraction rounds down.
    limit = 10_000
    noisy = dict(rate_limit_headers(limit, whole - 6e-13, 1.0))
    assert noisy[b"x-ratelimit-remaining-requests"] == str(whole).encode()
    partial = dict(rate_limit_headers(limit, whole + fraction, 1.0))
    assert partial[b"x-ratelimit-remaining-requests"] == str(min(limit, whole)).encode()


def test_a_missing_extra_is_named() -> None:
    """Without redis-py or uvicorn, what to install is said, not a bare ModuleNotFoundError."""
    import subprocess
    import sys

    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in ("uvicorn", "redis"):
            raise ModuleNotFoundError(f"No module named {top!r}", name=top)
sys.meta_path.insert(0, Block())
from guardrail.engine import Guard
try:
    Guard("redis://127.0.0.1:6379/0")
except ValueError as exc:
    print(exc)
from guardrail.cli import main
print("exit", main(["proxy", "--upstream", "http://127.0.0.1:9"]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install redis, or guardrail's 'redis' extra" in out.stdout
    assert "exit 2" in out.stdout and "pip install uvicorn httpx (guardrail's 'proxy' extra)" in out.stderr


# -- compressed responses --------------------------------------------------------------------------


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def test_usage_from_compressed_json() -> None:
    import zlib

    body = b'{"usage": {"completion_tokens": 41}, "pad": "' + b"x" * 5000 + b'"}'
    assert usage_from_json(_gzip(body), b"gzip") == 41
    assert usage_from_json(zlib.compress(body), "deflate") == 41
    assert usage_from_json(b"not gzip", b"gzip") is None  # never raises
    bomb = _gzip(b'{"usage": {"completion_tokens": 1}, "pad": "' + b"0" * (20 << 20) + b'"}')
    assert usage_from_json(bomb, b"gzip") is None  # inflates beyond the bound: not read


@given(cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10))
def test_sse_scanner_reads_a_gzip_stream_whatever_the_chunking(cuts: list[int]) -> None:
    stream = _gzip(_ANTHROPIC_STREAM)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    scanner = SSEUsageScanner(b"gzip")
    last = 0
    for point in [*points, len(stream)]:
        scanner.feed(stream[last:point])
        last = point
    scanner.close()
    assert scanner.tokens == 55


def test_sse_scanner_survives_a_corrupt_compressed_stream() -> None:
    scanner = SSEUsageScanner(b"gzip")
    scanner.feed(b"\x1f\x8b garbage that is not deflate")
    scanner.feed(b"more")
    scanner.close()
    assert scanner.tokens is None


# -- compressed request bodies ----------------------------------------------------------------------


@given(
    st.binary(max_size=3000),
    st.lists(st.sampled_from(["gzip", "deflate", "raw", "x-gzip"]), min_size=1, max_size=3),
    st.integers(min_value=1, max_value=4),
)
def test_compressed_bodies_read_back_exactly(data: bytes, codings: list[str], members: int) -> None:
    import gzip
    import zlib

    from guardrail.adapters._encoding import decoded_for_engine

    def packed(body: bytes, coding: str) -> bytes:
        if coding == "deflate":
            return zlib.compress(body)
        if coding == "raw":
            packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            return packer.compress(body) + packer.flush()
        step = max(1, len(body) // members)  # gzip: several members
        parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
        return b"".join(gzip.compress(part) for part in parts)

    body = data
    for coding in codings:  # applied in order, named in order ("raw" is deflate data without a header)
        body = packed(body, coding)
    names = ["deflate" if c == "raw" else c for c in codings]
    assert decoded_for_engine(body, ", ".join(names), 1 << 20) == (data, "complete")
    if len(data) > 10:
        assert decoded_for_engine(body, ", ".join(names), len(data) - 1) == (b"", "too_large")
    assert decoded_for_engine(body, ", ".join(names), sys.maxsize)[0] == data  # no cap: no overflow


@given(st.binary(max_size=2000), st.sampled_from(["gzip", "deflate", "gzip, deflate", "br", "x, y, z, w"]))
def test_any_bytes_under_any_coding_never_raise(data: bytes, coding: str) -> None:
    from guardrail.adapters._encoding import decoded_for_engine, engine_view

    decoded, outcome = decoded_for_engine(data, coding, 4096)
    assert outcome in ("complete", "too_large", "unsupported") and len(decoded) <= 4096
    seen, same = engine_view(data, coding, 4096)
    assert same == outcome and (seen == data if outcome == "unsupported" else seen == decoded)


@given(
    st.lists(st.binary(max_size=400), min_size=1, max_size=5),
    st.lists(st.integers(min_value=0, max_value=70_000), min_size=5, max_size=5),
    st.binary(max_size=40),
)
def test_gzip_reads_at_least_what_gzip_and_zlib_readers_read(
    parts: list[bytes], padding: list[int], trailing: bytes
) -> None:
    """Zero padding between members is skipped (as ``gzip.decompress`` does); bytes after a whole member that
    are no whole member are ignored with what follows (as ``zlib`` with gzip framing ignores all after the
    first): neither makes a body unreadable to the engine that such readers read."""
    import gzip
    import zlib

    from guardrail.adapters._encoding import decoded_for_engine

    body = b"".join(
        gzip.compress(part) + b"\0" * pad for part, pad in zip(parts, padding[: len(parts)], strict=True)
    )
    assert decoded_for_engine(body, "gzip", 1 << 22) == (b"".join(parts), "complete")
    assert gzip.decompress(body) == b"".join(parts)
    tail = body + trailing
    decoded, outcome = decoded_for_engine(tail, "gzip", 1 << 22)
    assert outcome == "complete" and decoded.startswith(b"".join(parts))
    assert decoded.startswith(zlib.decompress(tail, 47))
    if not trailing.lstrip(b"\0").startswith(b"\x1f\x8b"):
        assert decoded == b"".join(parts)


_SEGMENT = st.sampled_from(["v1", "chat", "completions", "messages", ".", "..", "", "x", "a.b", "\\"])


@given(st.lists(_SEGMENT, max_size=8))
def test_canonical_path_resolves_dots_and_merges_slashes(segments: list[str]) -> None:
    from guardrail.extract import ambiguous_path, canonical_path

    path = "/" + "/".join(segments)
    canon = canonical_path(path)
    assert canonical_path(canon) == canon and not ambiguous_path(canon.rstrip("/") + "/x")
    assert canon.startswith("/") and "//" not in canon and "\\" not in canon
    if ".." not in segments:
        expected = [s for s in path.replace("\\", "/").split("/") if s not in ("", ".")]
        assert canon == "/" + "/".join(expected)


@given(st.sampled_from(["/v1/chat/completions", "/v1/messages", "/v1/responses"]), st.data())
def test_a_route_normalised_into_an_inspected_one_is_inspected(route: str, data: st.DataObject) -> None:
    """Dot segments, doubled slashes and backslashes that a normalising server (or httpx) would remove
    never turn an inspected route into an uninspected twin, for the middleware and the extractor alike."""
    from guardrail.adapters._routes import RouteTable, request_path
    from guardrail.extract import Prompt, extract

    out: list[str] = []
    for segment in route.strip("/").split("/"):
        for _ in range(data.draw(st.integers(0, 2))):
            out.append(data.draw(st.sampled_from([".", "", "junk/.."])))
        out.append(segment)
    sep = data.draw(st.sampled_from(["/", "\\"]))
    path = "/" + sep.join(out) if sep == "/" else "/" + "/".join(out[:-1]) + "\\" + out[-1]
    table = RouteTable()
    assert table.match(request_path(path)) == table.match(route) is not None
    body = {"messages": [{"role": "user", "content": "hi"}], "input": "hi", "max_tokens": 5}
    assert isinstance(extract(path, body), Prompt) and extract(path, body).api == extract(route, body).api


@given(st.text(alphabet=st.characters(codec="ascii", exclude_characters="@"), min_size=8, max_size=30))
def test_a_storage_uri_is_shown_without_its_password(password: str) -> None:
    from guardrail.limiter._uri import display_uri

    shown = display_uri(f"redis://user:{password}@cache.internal:6379/0?password={password}")
    assert shown == "redis://cache.internal:6379/0"


@given(st.text(alphabet=st.characters(codec="ascii", exclude_characters="@:/"), min_size=8, max_size=30))
def test_an_error_quoting_a_storage_uri_is_scrubbed_of_its_credentials(password: str) -> None:
    from guardrail.limiter._uri import scrub_uri

    uri = f"redis://user:{password}@cache.internal:6379/0"
    message = f"cannot connect to {uri!r} (auth {password} refused)"
    assert password not in scrub_uri(message, uri) and "cache.internal:6379/0" in scrub_uri(message, uri)


def test_scrub_uri_masks_credentials_only() -> None:
    """An empty or one-letter password masks nothing else of the message; a query password and a
    percent-encoded one (as redis-py decodes it) are masked too."""
    from guardrail.limiter._uri import scrub_uri

    assert scrub_uri("cannot reach cache:6379", "redis://:@cache:6379") == "cannot reach cache:6379"
    assert scrub_uri("a cat at cache", "redis://:a@cache:6379") == "a cat at cache"
    shown = scrub_uri(
        "auth p@ss/w0rd! and qsecret1 refused", "redis://u:p%40ss%2Fw0rd%21@h:1/0?password=qsecret1"
    )
    assert "p@ss" not in shown and "qsecret1" not in shown and "refused" in shown
    # a "?" or "=" inside the password is not a query; a query value that is no credential is left
    assert scrub_uri("cache:6379 down", "redis://:ab?cd=ef@cache:6379") == "cache:6379 down"
    shown = scrub_uri("guardrail client timed out", "redis://cache:6379/0?client_name=guardrail")
    assert shown == "guardrail client timed out"


def test_cli_errors_and_demo_report_show_no_storage_password(capsys: pytest.CaptureFixture[str]) -> None:
    """``explain`` and ``demo`` on a store they cannot reach print the URI without its password."""
    import argparse

    from guardrail.cli import _demo, _explain

    uri = "redis://default:hunter2-pass@127.0.0.1:9/0"  # the discard port: nothing answers
    code = _explain.run(
        argparse.Namespace(storage=uri, account="sk-x", hashed=False, prefix="gr", format="text")
    )
    err = capsys.readouterr().err
    assert code != 0 and "hunter2" not in err and "127.0.0.1:9" in err
    args = argparse.Namespace(
        storage=uri, scale=0.01, seed=1, out=None, cluster_budget=40.0, no_progress=True, json=None
    )
    assert _demo.run(args) != 0
    out, err = capsys.readouterr()
    assert "hunter2" not in out + err and "127.0.0.1:9" in out + err


def test_identity_reads_what_servers_read() -> None:
    """A tab after the scheme, a percent-encoded query name and a case-blind route are read as servers
    read them; several different ``key`` values are ambiguous (servers differ on first or last)."""
    from guardrail.adapters._identity import AmbiguousCredentials, api_key

    assert api_key([("authorization", "Bearer\tK")]) == api_key([("authorization", "Bearer K")]) == "K"
    assert api_key([], "ke%79=REAL", "gemini") == "REAL"
    assert api_key([], "key=A&key=A", "gemini") == "A"  # the same value twice is not ambiguous
    with pytest.raises(AmbiguousCredentials):
        api_key([], "key=DECOY&key=REAL", "gemini")
    assert RouteTable().match("/V1/CHAT/COMPLETIONS") == "openai"
    assert api_key([("authorization", "Bearer\xa0K")]) != "K"  # only spaces and tabs part a scheme


def test_every_byte_of_a_long_secret_counts() -> None:
    from guardrail._hashing import hash_identifier

    base = b"s" * 64
    assert hash_identifier("sk-1", base + b"a") != hash_identifier("sk-1", base + b"b")
    assert hash_identifier("sk-1", base) == hash_identifier("sk-1", base)  # up to 64 bytes: the key itself
