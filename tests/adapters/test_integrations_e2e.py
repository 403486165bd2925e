"""End to end: real uvicorn processes on loopback, the official OpenAI and Anthropic SDKs as clients.

Each server starts on a free port on 127.0.0.1, is polled until ready, and is killed at teardown.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from adapters_support import free_port, start_redis_server
from integrations import toymodel

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MESSAGES = [{"role": "user", "content": "Explain how tides work."}]


class Server:
    """A subprocess serving HTTP on 127.0.0.1:port, ready when ``ready_path`` answers."""

    def __init__(
        self, args: list[str], env: dict[str, str], *, ready_path: str = "/health", timeout: float = 20.0
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}", **env}
        cmd = [a.replace("{port}", str(self.port)) for a in args]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        # Drained as it comes: a server logging more than a pipe holds would otherwise stall.
        self._err: list[bytes] = []
        self._drain = threading.Thread(target=self._read_err, daemon=True)
        self._drain.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._drain.join(timeout=5)
                raise RuntimeError(f"server exited early ({self.proc.returncode}): {self.stderr[-2000:]}")
            try:
                if httpx.get(self.url + ready_path, timeout=0.5).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready within {timeout}s: {cmd}")

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._err.append(line)

    @property
    def stderr(self) -> str:
        """What the server wrote to stderr so far."""
        return b"".join(self._err).decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._drain.join(timeout=5)
        if self.proc.stderr:
            self.proc.stderr.close()


def uvicorn_e2e(env: dict[str, str], workers: int = 1) -> Server:
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "e2e_app:create",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]
    args += ["--log-level", "warning", "--workers", str(workers)]
    return Server(args, env)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = uvicorn_e2e({"E2E_RPM": "60", "E2E_BLOCKED": "sk-blocked"})
    yield s
    s.stop()


def hits(server: Server) -> dict[str, int]:
    data: dict[str, int] = httpx.get(server.url + "/_hits").json()
    return data


_CLIENTS: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def oa(server: Server, key: str, retries: int = 0, http_client: httpx.Client | None = None) -> openai.OpenAI:
    client = openai.OpenAI(
        api_key=key, base_url=server.url + "/v1", max_retries=retries, timeout=10, http_client=http_client
    )
    _CLIENTS.append(client)
    return client


def an(server: Server, key: str, retries: int = 0) -> anthropic.Anthropic:
    client = anthropic.Anthropic(api_key=key, base_url=server.url, max_retries=retries, timeout=10)
    _CLIENTS.append(client)
    return client


def test_honest_calls_succeed_with_both_sdks(server: Server) -> None:
    chat = oa(server, "sk-honest").chat.completions.create(model="toy-1", messages=MESSAGES)  # type: ignore[arg-type]
    assert chat.choices[0].message.content == toymodel.reply("Explain how tides work.")
    assert chat.usage is not None and chat.usage.completion_tokens > 0
    raw = oa(server, "sk-honest").chat.completions.with_raw_response.create(model="toy-1", messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.headers["x-ratelimit-limit-requests"] == "60"
    assert raw.headers["ratelimit-policy"] == '"requests";q=60'
    resp = oa(server, "sk-honest").responses.create(model="toy-1", input="Explain how tides work.")
    assert resp.output_text == toymodel.reply("Explain how tides work.")
    msg = an(server, "ant-honest").messages.create(model="toy-1", max_tokens=300, messages=MESSAGES)  # type: ignore[arg-type]
    assert msg.content[0].type == "text" and len(msg.content[0].text.split()) >= 80


def test_streaming_through_the_middleware(server: Server) -> None:
    stream = oa(server, "sk-stream").chat.completions.create(
        model="toy-1",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len(pieces) > 10 and "".join(pieces) == toymodel.reply("Explain how tides work.")
    with an(server, "ant-stream").messages.stream(model="toy-1", max_tokens=300, messages=MESSAGES) as s:  # type: ignore[arg-type]
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == toymodel.reply("Explain how tides work.") and final.usage.output_tokens > 1
    events = list(
        oa(server, "sk-stream").responses.create(model="toy-1", input="Write a Rust snippet.", stream=True)
    )
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 10 and "".join(deltas) == toymodel.reply("Write a Rust snippet.")
    assert "```" in "".join(deltas)  # asked for code: a code block
    completed = events[-1]
    assert completed.type == "response.completed" and completed.response.usage is not None
    assert completed.response.output_text == "".join(deltas)


def test_flood_gets_rate_limit_error_others_unaffected(server: Server) -> None:
    client = oa(server, "sk-flood")
    with ThreadPoolExecutor(8) as pool:

        def one(_: int) -> int:
            try:
                client.chat.completions.create(model="toy-1", messages=MESSAGES)  # type: ignore[arg-type]
                return 200
            except openai.RateLimitError:
                return 429

        codes = list(pool.map(one, range(75)))
    assert codes.count(200) >= 60 and codes.count(429) >= 5
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="toy-1", messages=MESSAGES)  # type: ignore[arg-type]
    headers = err.value.response.headers
    assert int(headers["retry-after"]) >= 1 and int(headers["retry-after-ms"]) >= 1
    assert (
        headers["ratelimit"].startswith('"requests";r=0;t=')
        and headers["ratelimit-policy"] == '"requests";q=60'
    )
    assert err.value.body == {
        "message": err.value.body["message"],
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }  # type: ignore[index]
    with pytest.raises(anthropic.RateLimitError) as aerr:
        an(server, "sk-flood").messages.create(model="toy-1", max_tokens=50, messages=MESSAGES)  # type: ignore[arg-type]
    body = aerr.value.body
    assert isinstance(body, dict) and body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    # Other keys are unaffected.
    assert oa(server, "sk-bystander").chat.completions.create(model="toy-1", messages=MESSAGES).choices  # type: ignore[arg-type]


def test_sdk_retry_honours_retry_after(server: Server) -> None:
    key = f"sk-retry-{uuid.uuid4().hex[:6]}"
    timeline: list[tuple[str, float, int, float]] = []  # (event, time, status, advertised wait in s)

    def on_request(request: httpx.Request) -> None:
        timeline.append(("request", time.monotonic(), 0, 0.0))

    def on_response(response: httpx.Response) -> None:
        wait = int(response.headers.get("retry-after-ms", "0")) / 1000
        timeline.append(("response", time.monotonic(), response.status_code, wait))

    drain = oa(server, key)
    http = httpx.Client(event_hooks={"request": [on_request], "response": [on_response]})
    patient = oa(server, key, retries=3, http_client=http)
    waits: list[tuple[float, float]] = []
    for _ in range(3):  # a token may refill between draining and asking: try again then
        for _ in range(100):
            try:
                drain.chat.completions.create(model="toy-1", messages=MESSAGES)  # type: ignore[arg-type]
            except openai.RateLimitError:
                break
        timeline.clear()
        assert patient.chat.completions.create(model="toy-1", messages=MESSAGES).choices  # type: ignore[arg-type]
        for (e1, t1, status, wait), (e2, t2, _, _) in itertools.pairwise(timeline):
            if e1 == "response" and status == 429 and e2 == "request":
                waits.append((wait, t2 - t1))
        if waits:
            break
    http.close()
    assert waits, "the SDK never met a 429"
    # After each 429 the SDK waited at least the advertised retry-after-ms before asking again.
    assert all(waited >= advertised * 0.95 and advertised > 0 for advertised, waited in waits), waits


def test_blocked_key_is_not_retried(server: Server) -> None:
    with pytest.raises(openai.PermissionDeniedError) as err:
        oa(server, "sk-blocked", retries=3).chat.completions.create(model="toy-1", messages=MESSAGES)  # type: ignore[arg-type]
    assert err.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(anthropic.PermissionDeniedError):
        an(server, "sk-blocked", retries=3).messages.create(model="toy-1", max_tokens=50, messages=MESSAGES)  # type: ignore[arg-type]
    assert hits(server)["sk-blocked"] == 2  # one attempt per SDK: no retries


def test_bad_input_never_500(server: Server) -> None:
    url = server.url + "/v1/chat/completions"
    key = {"authorization": "Bearer sk-bad"}
    with httpx.Client(timeout=10) as client:
        statuses = [
            client.post(url, content=b"{not json", headers=key).status_code,
            client.post(
                url, content=b"\xff\xfe\x00", headers={**key, "content-type": "text/plain"}
            ).status_code,
            client.post(
                url, content=b"<xml/>", headers={**key, "content-type": "application/xml"}
            ).status_code,
            client.post(url, json={"messages": "nope"}, headers=key).status_code,
            client.post(
                url, content=b"x" * (9 * 1024 * 1024), headers=key
            ).status_code,  # above the 8 MiB cap
        ]

        def endless() -> Iterator[bytes]:
            for _ in range(2000):
                yield b"x" * 8192

        statuses.append(client.post(url, content=endless(), headers=key).status_code)  # chunked, ~16 MB
        dup = httpx.Headers(
            [("authorization", "Bearer a"), ("authorization", "Bearer b"), ("x-api-key", "c")]
        )
        statuses.append(client.post(url, json={"messages": MESSAGES}, headers=dup).status_code)
    assert all(s < 500 for s in statuses), statuses
    assert statuses[4] == 413 and statuses[5] == 413
    # A client that stops mid-body and disconnects leaves the server serving.
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(b'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"mess')
    assert httpx.get(server.url + "/health").status_code == 200
    assert oa(server, "sk-after").chat.completions.create(model="toy-1", messages=MESSAGES).choices  # type: ignore[arg-type]


def test_slow_client_does_not_block_others(server: Server) -> None:
    raw = socket.create_connection(("127.0.0.1", server.port))
    try:
        raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        start = time.monotonic()
        assert oa(server, "sk-fast").chat.completions.create(model="toy-1", messages=MESSAGES).choices  # type: ignore[arg-type]
        assert time.monotonic() - start < 5
    finally:
        raw.close()


# -- reverse proxy ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_proxy_cli_in_front_of_a_server_streaming_preserved() -> None:
    upstream = Server(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "integrations.fastapi_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
        ],
        {"GUARDRAIL_ACCOUNT_RPM": "100000"},
    )
    code = (
        "import argparse, sys; from guardrail.cli import _proxy; p = argparse.ArgumentParser(); "
        "s = p.add_subparsers(); _proxy.register(s); a = p.parse_args(sys.argv[1:]); sys.exit(a.handler(a))"
    )
    args = [
        sys.executable,
        "-c",
        code,
        "proxy",
        "--upstream",
        upstream.url,
        "--port",
        "{port}",
        "--account-rpm",
        "5",
    ]
    proxy = Server(args, {}, ready_path="/health")
    try:
        client = oa(proxy, "sk-p")  # type: ignore[arg-type]
        stream = client.chat.completions.create(model="toy-1", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
        assert len(pieces) > 10 and "".join(pieces) == toymodel.reply("Explain how tides work.")
        # Chunks arrive one by one through the proxy: read the raw stream with httpx.
        with httpx.stream(
            "POST",
            proxy.url + "/v1/chat/completions",
            json={"model": "toy-1", "messages": MESSAGES, "stream": True},
            headers={"authorization": "Bearer sk-q"},
        ) as r:
            chunks = list(r.iter_raw())
        assert r.status_code == 200 and len(chunks) > 1
        codes = []
        for _ in range(6):
            try:
                client.chat.completions.create(model="toy-1", messages=MESSAGES)  # type: ignore[arg-type]
                codes.append(200)
            except openai.RateLimitError:
                codes.append(429)
        assert codes.count(429) >= 2
        models = httpx.get(proxy.url + "/v1/models")
        assert models.json()["data"][0]["id"] == "toy-1"
        # One Date (the proxy server's) and one Server (the upstream's).
        assert len(models.headers.get_list("date")) == 1 and len(models.headers.get_list("server")) == 1
    finally:
        proxy.stop()
        upstream.stop()
    # Each refusal is one log line on stderr (INFO by default), with the key only as a keyed hash.
    throttled = [line for line in proxy.stderr.splitlines() if " throttled openai " in line]
    assert len(throttled) == codes.count(429) and "account=" in throttled[0]
    assert "sk-p" not in proxy.stderr and "allowed" not in proxy.stderr  # allows log at DEBUG only


# -- several workers on one Redis ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.redis
def test_two_workers_share_one_budget(redis_url: str) -> None:
    # The engine's state and the buckets both on Redis, as GUARDRAIL_STORAGE=redis://... sets them up.
    env = {"E2E_RPM": "20", "E2E_STORAGE": redis_url, "GUARDRAIL_SECRET": uuid.uuid4().hex}
    s = uvicorn_e2e(env, workers=2)
    try:
        key = "sk-shared"

        pids: set[str] = set()

        def one(_: int) -> int:
            # A fresh connection per request, so the kernel spreads them over both workers.
            r = httpx.post(
                s.url + "/v1/chat/completions",
                json={"model": "toy-1", "messages": MESSAGES},
                headers={"authorization": f"Bearer {key}", "connection": "close"},
                timeout=10,
            )
            pids.add(r.headers.get("x-worker-pid", ""))
            return r.status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(one, range(48)))
        # Burst 20, refill 1 every 3 s: about 20 succeed whatever the number of workers (not 40).
        assert 20 <= codes.count(200) <= 23, codes
        assert codes.count(429) == 48 - codes.count(200)
        assert len(pids) == 2  # both workers answered
    finally:
        s.stop()


@pytest.mark.redis
def test_redis_killed_mid_run_keeps_serving() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    port = free_port()
    redis_proc = start_redis_server(port)
    try:
        s = uvicorn_e2e({"E2E_RPM": "6", "E2E_STORAGE": f"redis://127.0.0.1:{port}/0"})
        try:
            client = oa(s, "sk-r")
            assert client.chat.completions.create(model="toy-1", messages=MESSAGES).choices  # type: ignore[arg-type]
            redis_proc.kill()
            redis_proc.wait(timeout=5)
            # The limiter's failure policy ("local": a share of each limit in process) answers for the
            # engine store too: honest calls go on, and a flooding key is still held to a quota.
            assert oa(s, "sk-other").chat.completions.create(model="toy-1", messages=MESSAGES).choices  # type: ignore[arg-type]
            flood = oa(s, "sk-flood")
            with pytest.raises(openai.RateLimitError):
                for _ in range(12):
                    flood.chat.completions.create(model="toy-1", messages=MESSAGES)  # type: ignore[arg-type]
        finally:
            s.stop()
    finally:
        if redis_proc.poll() is None:
            redis_proc.kill()
            redis_proc.wait(timeout=5)


# -- Flask, as documented: flask --app integrations.flask_app run -----------------------------------


def test_flask_app_under_flask_run() -> None:
    flask_bin = Path(sys.executable).with_name("flask")
    s = Server(
        [str(flask_bin), "--app", "integrations.flask_app", "run", "--host", "127.0.0.1", "--port", "{port}"],
        {"GUARDRAIL_ACCOUNT_RPM": "3"},
    )
    try:
        stream = oa(s, "sk-f").chat.completions.create(model="toy-1", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
        assert "".join(pieces) == toymodel.reply("Explain how tides work.")
        msg = an(s, "sk-f").messages.create(model="toy-1", max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
        assert msg.usage.output_tokens > 0
        oa(s, "sk-f").chat.completions.create(model="toy-1", messages=MESSAGES)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as err:
            oa(s, "sk-f").chat.completions.create(model="toy-1", messages=MESSAGES)  # type: ignore[arg-type]
        assert int(err.value.response.headers["retry-after"]) >= 1
        assert err.value.response.headers["ratelimit-policy"] == '"requests";q=3'
        assert oa(s, "sk-other").chat.completions.create(model="toy-1", messages=MESSAGES).choices  # type: ignore[arg-type]
    finally:
        s.stop()
