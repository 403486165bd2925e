"""``GuardrailWSGI`` behaviour with Flask's test client and hand-built environs for the edge cases."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from adapters_support import ScriptedGuard
from flask import Flask, Response, request
from werkzeug.test import EnvironBuilder

from guardrail.adapters import GuardrailEvent, GuardrailWSGI

CHAT = "/v1/chat/completions"
BODY = {"model": "m", "messages": [{"role": "user", "content": "Explain tides to me, please."}]}


def make_app(guard: Any, **options: Any) -> Flask:
    app = Flask("wsgi-test")

    @app.post(CHAT)
    def chat() -> Any:
        raw = request.get_data()
        return {"sha": hashlib.sha256(raw).hexdigest(), "len": len(raw), "usage": {"completion_tokens": 5}}

    @app.post("/v1/messages")
    def messages() -> Any:
        def events() -> Iterator[bytes]:
            yield b"event: message_start\n"
            yield b'data: {"type":"message_start","message":{"usage":{"output_tokens":1}}}\n\n'
            yield b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":33}}\n\n'

        request.get_data()
        return Response(events(), mimetype="text/event-stream")

    @app.post("/v1/responses")
    def bad() -> Any:
        try:
            json.loads(request.get_data())
        except ValueError:
            return {"error": {"message": "invalid json"}}, 400
        return "ok"

    @app.get("/health")
    def health() -> str:
        return "ok"

    app.wsgi_app = GuardrailWSGI(app.wsgi_app, guard=guard, **options)  # type: ignore[method-assign]
    return app


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_pass_through_and_exact_replay() -> None:
    guard = ScriptedGuard(rpm=60)
    client = make_app(guard, expose_engine_limits=True).test_client()
    assert client.get("/health").text == "ok"
    assert guard.seen == []
    raw = json.dumps(BODY).encode()
    r = client.post(CHAT, data=raw, headers=auth("sk-1"), content_type="application/json", buffered=True)
    assert r.status_code == 200 and r.json == {
        "sha": hashlib.sha256(raw).hexdigest(),
        "len": len(raw),
        "usage": {"completion_tokens": 5},
    }
    assert r.headers["ratelimit-policy"] == '"tokens";q=60'
    assert r.headers["x-ratelimit-remaining-tokens"] == "59"
    assert guard.seen[0].body == raw and guard.seen[0].account == "sk-1"
    assert guard.settled == [("sk-1", 5)]


def test_flood_block_and_shapes() -> None:
    events: list[GuardrailEvent] = []
    guard = ScriptedGuard(rpm=2, blocked=frozenset({"bad"}))
    client = make_app(guard, on_event=events.append, expose_engine_limits=True).test_client()
    codes = [client.post(CHAT, json=BODY, headers=auth("flood")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = client.post(CHAT, json=BODY, headers=auth("flood"))
    assert r.json is not None and r.json["error"]["code"] == "rate_limit_exceeded"
    assert int(r.headers["retry-after"]) >= 1 and "retry-after-ms" in r.headers and "ratelimit" in r.headers
    a = client.post("/v1/messages", json=BODY, headers={"x-api-key": "bad"})
    assert a.status_code == 403 and a.json == {
        "type": "error",
        "error": {"type": "permission_error", "message": "Blocked."},
    }
    assert a.headers["x-should-retry"] == "false"
    assert client.post(CHAT, json=BODY, headers=auth("other")).status_code == 200
    assert [e.outcome for e in events] == [
        "allowed",
        "allowed",
        "throttled",
        "throttled",
        "blocked",
        "allowed",
    ]


def test_observe_only_and_guard_failure() -> None:
    guard = ScriptedGuard(rpm=1, blocked=frozenset({"bad"}))
    client = make_app(guard, observe_only=True).test_client()
    assert [client.post(CHAT, json=BODY, headers=auth("bad")).status_code for _ in range(3)] == [200] * 3
    broken = ScriptedGuard(fail=True)
    client = make_app(broken).test_client()
    assert client.post(CHAT, json=BODY, headers=auth("k")).status_code == 200


def test_observe_only_records_the_body_refusals_it_did_not_send() -> None:
    events: list[Any] = []
    client = make_app(ScriptedGuard(), observe_only=True, max_body_bytes=10, on_event=events.append)
    r = client.test_client().post(CHAT, data=b"x" * 100, headers=auth("k"))
    assert r.status_code == 200 and r.json is not None and r.json["len"] == 100
    assert [(e.outcome, e.status) for e in events] == [("observed", 413)]
    assert "would be refused with 413" in events[0].reasons[-1]


def test_stream_settles_and_closes() -> None:
    guard = ScriptedGuard()
    client = make_app(guard).test_client()
    r = client.post("/v1/messages", json=BODY, headers={"x-api-key": "k"}, buffered=True)
    assert r.status_code == 200 and r.data.count(b"event:") == 2
    assert guard.settled == [("k", 33)]


def test_app_error_settles_zero() -> None:
    guard = ScriptedGuard()
    client = make_app(guard).test_client()
    r = client.post("/v1/responses", data=b"{nope", headers=auth("k"), buffered=True)
    assert r.status_code == 400 and guard.settled == [("k", 0)]


# -- raw environs ----------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.body: bytes | None = None
        self.environ: dict[str, Any] = {}
        self.closed = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.environ = environ
        self.body = environ["wsgi.input"].read()
        start_response("200 OK", [("content-type", "text/plain")])
        recorder = self

        class Result:
            def __iter__(self) -> Iterator[bytes]:
                yield b"app"

            def close(self) -> None:
                recorder.closed += 1

        return Result()


def call(mw: GuardrailWSGI, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    result = mw(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return captured["status"], captured["headers"], body


def environ_for(
    data: bytes, *, length: str | None = None, terminated: bool = False, **headers: str
) -> dict[str, Any]:
    env = EnvironBuilder(
        path=CHAT, method="POST", data=data, headers={"authorization": "Bearer k", **headers}
    ).get_environ()
    if length is None:
        env.pop("CONTENT_LENGTH", None)
    else:
        env["CONTENT_LENGTH"] = length
    if terminated:
        env["wsgi.input_terminated"] = True
    return env


def test_close_reaches_the_app_iterable_and_originals_are_kept() -> None:
    app = Recorder()
    mw = GuardrailWSGI(app, guard=ScriptedGuard())
    status, _, body = call(mw, environ_for(b'{"a":1}', length="7"))
    assert status == "200 OK" and body == b"app" and app.closed == 1
    assert app.body == b'{"a":1}' and app.environ["CONTENT_LENGTH"] == "7"
    assert app.environ["guardrail.orig"]["CONTENT_LENGTH"] == "7"


@pytest.mark.parametrize("declared", ["5", "2000"])
def test_a_length_beside_chunked_framing_is_ignored_as_werkzeug_ignores_it(declared: str) -> None:
    """A chunked request the server ends itself (``wsgi.input_terminated``) that also says
    ``Content-Length``: the body is what the chunks carry, neither cut at a short length nor a
    disconnect for a long one (RFC 9112, 6.3)."""
    app = Recorder()
    mw = GuardrailWSGI(app, guard=ScriptedGuard())
    env = environ_for(b'{"messages": []}', length=declared, terminated=True, transfer_encoding="chunked")
    status, _, _ = call(mw, env)
    assert status == "200 OK" and app.body == b'{"messages": []}'
    assert app.environ["CONTENT_LENGTH"] == str(len(b'{"messages": []}'))


def test_oversize_declared_chunked_and_pass() -> None:
    app = Recorder()
    mw = GuardrailWSGI(app, guard=ScriptedGuard(), max_body_bytes=10)
    status, _, body = call(mw, environ_for(b"x" * 50, length="50"))
    assert status.startswith("413") and json.loads(body)["error"]["code"] == "request_too_large"
    status, _, _ = call(mw, environ_for(b"x" * 50, terminated=True))
    assert status.startswith("413") and app.body is None
    guard = ScriptedGuard()
    passing = GuardrailWSGI(app, guard=guard, max_body_bytes=10, on_oversize="pass")
    status, _, _ = call(passing, environ_for(b"y" * 50, terminated=True))
    assert status == "200 OK" and app.body == b"y" * 50 and guard.seen[0].body is None
    status, _, _ = call(passing, environ_for(b"z" * 50, length="50"))
    assert status == "200 OK" and app.body == b"z" * 50


def test_no_length_means_no_body_and_bad_lengths() -> None:
    app = Recorder()
    mw = GuardrailWSGI(app, guard=ScriptedGuard())
    status, _, _ = call(mw, environ_for(b"ignored"))
    assert status == "200 OK" and app.body == b""
    status, _, body = call(mw, environ_for(b"{}", length="two"))
    assert status.startswith("400") and b"Invalid request." in body


def test_short_body_and_broken_input() -> None:
    app = Recorder()
    mw = GuardrailWSGI(app, guard=ScriptedGuard())
    status, _, _ = call(mw, environ_for(b"{}", length="100"))  # the client went away early
    assert status.startswith("400") and app.body is None

    class Timeout(io.RawIOBase):
        def read(self, n: int = -1) -> bytes:
            raise TimeoutError("slow client")

    env = environ_for(b"", length="10")
    env["wsgi.input"] = Timeout()
    status, _, _ = call(mw, env)
    assert status.startswith("408")


@pytest.mark.parametrize("body", [b"", b"\xff\xfe{\x00}\x00", b"\xc3\x28", b"[" * 50_000, b"\x00" * 100])
def test_odd_bodies_never_500(body: bytes) -> None:
    app = Recorder()
    mw = GuardrailWSGI(app, guard=ScriptedGuard())
    status, _, _ = call(mw, environ_for(body, length=str(len(body)), **{"x-api-key": "\xe9"}))
    assert status == "200 OK" and app.body == body


def test_trusted_proxies_and_identify() -> None:
    guard = ScriptedGuard()
    app = Recorder()
    mw = GuardrailWSGI(app, guard=guard, trusted_proxies="10.0.0.0/8", identify=lambda v: v.header("x-user"))
    env = environ_for(b"{}", length="2", **{"x-forwarded-for": "198.51.100.7", "x-user": "alice"})
    env["REMOTE_ADDR"] = "10.1.1.1"
    call(mw, env)
    assert guard.seen[0].ip == "198.51.100.7" and guard.seen[0].account == "alice"


def test_behind_a_proxy_on_a_unix_socket() -> None:
    # gunicorn on unix:/run/app.sock sets REMOTE_ADDR to "": trusted as "unix", the header names the client.
    for trusted, ip in ((["unix"], "198.51.100.7"), (["10.0.0.0/8"], None)):
        guard = ScriptedGuard()
        mw = GuardrailWSGI(Recorder(), guard=guard, trusted_proxies=trusted)
        env = environ_for(b"{}", length="2", **{"x-forwarded-for": "198.51.100.7"})
        env["REMOTE_ADDR"] = ""
        call(mw, env)
        assert guard.seen[0].ip == ip


def test_a_non_ascii_path_reads_as_the_asgi_side_reads_it() -> None:
    """PEP 3333 hands the path's bytes as latin-1 text: read as UTF-8, as uvicorn and Flask's request.path
    do, ``/v1/caf%C3%A9/chat/completions`` is the same path on both middlewares."""
    guard = ScriptedGuard()
    env = environ_for(b"{}", length="2")
    env["PATH_INFO"] = "/v1/caf\u00e9/chat/completions".encode().decode("latin-1")
    call(GuardrailWSGI(Recorder(), guard=guard), env)
    assert guard.seen[0].path == "/v1/caf\u00e9/chat/completions"


def test_identify_sees_content_type_and_length_as_on_asgi() -> None:
    seen: list[Any] = []

    def identify(view: Any) -> str:
        seen.append(dict(view.headers))
        return "someone"

    mw = GuardrailWSGI(Recorder(), guard=ScriptedGuard(), identify=identify)
    call(mw, environ_for(b"{}", length="2", **{"content-type": "application/json"}))
    assert seen[0]["content-type"] == "application/json" and seen[0]["content-length"] == "2"


def test_constructor_is_validated() -> None:
    with pytest.raises(ValueError, match="either guard"):
        GuardrailWSGI(Recorder(), guard=ScriptedGuard(), storage="memory://")
    with pytest.raises(ValueError, match="on_oversize"):
        GuardrailWSGI(Recorder(), guard=ScriptedGuard(), on_oversize="maybe")
    mw = GuardrailWSGI(Recorder(), storage="memory://", account_rpm=1)
    assert "GuardrailWSGI" in repr(mw)


@pytest.mark.parametrize("max_body", [1 << 20, 300])
def test_a_compressed_body_is_inspected_and_replayed_as_sent(max_body: int) -> None:
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "tides " * 200}]}).encode()
    packed = gzip.compress(raw)
    assert len(packed) < 300 < len(raw)
    guard = ScriptedGuard()
    events: list[Any] = []
    client = make_app(guard, max_body_bytes=max_body, on_event=events.append).test_client()
    r = client.post(CHAT, data=packed, headers={**auth("k"), "Content-Encoding": "gzip"})
    if max_body > len(raw):
        # the app gets the bytes as sent (its digest); the engine read the inflated prompt
        assert r.status_code == 200 and r.json is not None
        assert r.json["sha"] == hashlib.sha256(packed).hexdigest() and guard.seen[0].body == raw
    else:  # inflates beyond the cap: refused like any body over it
        assert r.status_code == 413 and events[0].outcome == "too_large" and not guard.seen


def test_a_coding_guardrail_cannot_undo_is_refused_or_read_as_it_came() -> None:
    raw = json.dumps(BODY).encode()
    refusing = make_app(ScriptedGuard()).test_client()
    r = refusing.post(CHAT, data=raw, headers={**auth("k"), "Content-Encoding": "br"})
    assert r.status_code == 415 and r.headers["accept-encoding"] == "gzip, deflate"
    assert r.status == "415 Unsupported Media Type"
    guard = ScriptedGuard()
    events: list[GuardrailEvent] = []
    passing = make_app(guard, on_oversize="pass", on_event=events.append).test_client()
    r = passing.post(CHAT, data=raw, headers={**auth("k"), "Content-Encoding": "br"})
    assert r.status_code == 200 and guard.seen[0].body == raw
    assert (
        events[0].outcome == "passed_uninspected"
        and "body coding not undone: read as it came" in events[0].reasons
    )


def test_lowercase_methods_and_duplicate_query_keys() -> None:
    guard = ScriptedGuard()
    mw = GuardrailWSGI(Recorder(), guard=guard)
    env = environ_for(b"{}", length="2")
    env["REQUEST_METHOD"] = "post"
    assert call(mw, env)[0] == "200 OK" and len(guard.seen) == 1
    env = environ_for(b"{}", length="2")
    env["PATH_INFO"], env["QUERY_STRING"] = "/v1beta/models/g:generateContent", "key=DECOY&key=REAL"
    assert call(mw, env)[0] == "400 Bad Request" and len(guard.seen) == 1
