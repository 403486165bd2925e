"""The integration apps and recipes in-process: toy model, FastAPI, Flask, vLLM-style, LiteLLM hook, proxy."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
from adapters_support import AsyncScriptedGuard, ScriptedGuard, read_all
from fastapi import HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st
from integrations import fastapi_app, flask_app, toymodel
from integrations.litellm_hook import GuardrailLiteLLM
from starlette.testclient import TestClient

from guardrail.adapters import Guardrail, GuardrailFromEnv
from guardrail.cli._proxy import ProxyApp

pytestmark = pytest.mark.anyio


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "toy-1", "messages": [{"role": "user", "content": text}], **extra}


# -- the toy model ---------------------------------------------------------------------------------


@settings(max_examples=50)
@given(st.text(max_size=200))
def test_reply_is_long_deterministic_prose(prompt: str) -> None:
    text = toymodel.reply(prompt)
    assert len(text.split()) >= 80
    assert text == toymodel.reply(prompt)
    assert text.count("\n\n") >= 2


_MARK = "zebra-quartz-marker"
_PARTS = st.sampled_from(
    [
        _MARK,
        {"type": "text", "text": _MARK},
        {"type": "input_text", "text": _MARK},
        {"type": "foo", "text": _MARK},
        {"type": "document", "text": _MARK},
        {"text": _MARK, "thought": True},
        {"type": "image_url", "image_url": {"url": "data:,"}},
        None,
    ]
)
_CONTENT = st.one_of(st.just(_MARK), st.lists(_PARTS, max_size=3), st.none(), st.just({}))
_TURN = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "model"]), "content": _CONTENT}
)
_GEMINI_TURN = st.fixed_dictionaries(
    {"parts": st.lists(_PARTS, max_size=3)}, optional={"role": st.sampled_from(["user", "model"])}
)
_FIELDS = {
    "messages": st.one_of(st.lists(_TURN, max_size=3), st.just({}), st.just(_MARK)),
    "input": st.one_of(st.just(_MARK), st.lists(_TURN, max_size=3)),
    "prompt": st.just(_MARK),
    "contents": st.lists(_GEMINI_TURN, max_size=3),
    "system": st.just("x"),
}
_ROUTES = {
    "chat": "/v1/chat/completions",
    "messages": "/v1/messages",
    "responses": "/v1/responses",
    "gemini": "/v1beta/models/g:generateContent",
}


@given(st.sampled_from(sorted(_ROUTES)), st.fixed_dictionaries({}, optional=_FIELDS))
def test_what_the_toy_model_answers_the_engine_reads(api: str, body: dict[str, Any]) -> None:
    """Whatever text the toy server takes for the prompt (its answer varies with it), the engine's
    extractor reads too: a body shape the server answers must not carry a prompt past inspection."""
    from guardrail.extract import Prompt, extract

    if _MARK not in toymodel.prompt_of(body, api):
        return
    prompt = extract(_ROUTES[api], body)
    assert isinstance(prompt, Prompt) and _MARK in prompt.text


def test_reply_varies_and_writes_code_when_asked() -> None:
    assert toymodel.reply("Tell me about rivers") != toymodel.reply("Tell me about mountains")
    assert "```python" in toymodel.reply("Write a python function to average numbers")
    assert "```" not in toymodel.reply("Tell me about rivers")


# -- FastAPI and Flask apps ------------------------------------------------------------------------


def test_fastapi_app_routes_and_throttle() -> None:
    guard = AsyncScriptedGuard(rpm=2)
    client = TestClient(fastapi_app.create_app(guard=guard))
    headers = {"authorization": "Bearer sk-a"}
    r = client.post("/v1/chat/completions", json=chat("hello"), headers=headers)
    assert r.status_code == 200 and len(r.json()["choices"][0]["message"]["content"].split()) >= 80
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json=chat("hi", stream=True, stream_options={"include_usage": True}),
        headers=headers,
    ) as s:
        lines = [line for line in s.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and '"usage"' in lines[-2]
    m = client.post("/v1/messages", json=chat("hello", max_tokens=100), headers={"x-api-key": "sk-a"})
    assert m.status_code == 429 and m.json()["type"] == "error"
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/v1/models").status_code == 200
    other = client.post(
        "/v1/responses", json={"model": "toy-1", "input": "hello"}, headers={"x-api-key": "b"}
    )
    assert other.status_code == 200 and other.json()["usage"]["output_tokens"] > 0
    assert ("sk-a", toymodel.count_tokens(toymodel.reply("hello"))) in guard.settled


def test_fastapi_app_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDRAIL_ACCOUNT_RPM", "2")
    monkeypatch.setenv("GUARDRAIL_STORAGE", "memory://")
    client = TestClient(fastapi_app.create_app())
    codes = [
        client.post("/v1/chat/completions", json=chat("x"), headers={"x-api-key": "k"}).status_code
        for _ in range(5)
    ]
    assert codes[0] == 200 and 429 in codes


def test_flask_app_routes_and_throttle() -> None:
    guard = ScriptedGuard(rpm=2)
    client = flask_app.create_app(guard=guard).test_client()
    headers = {"authorization": "Bearer sk-a"}
    r = client.post("/v1/chat/completions", json=chat("hello"), headers=headers)
    assert r.status_code == 200 and r.json is not None and r.json["usage"]["completion_tokens"] > 0
    s = client.post(
        "/v1/messages", json=chat("hi", stream=True, max_tokens=50), headers=headers, buffered=True
    )
    assert s.status_code == 200 and b"message_stop" in s.data
    assert client.post("/v1/responses", json={"model": "m", "input": "x"}, headers=headers).status_code == 429
    assert client.post("/v1/chat/completions", data=b"nope", headers={"x-api-key": "z"}).status_code == 400
    assert client.get("/health").json == {"status": "ok"}


# -- vLLM: --middleware takes a class and calls add_middleware(cls) with no options ----------------


def test_vllm_style_middleware_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDRAIL_ACCOUNT_RPM", "1")
    monkeypatch.setenv("GUARDRAIL_TRUSTED_PROXIES", "10.0.0.0/8")
    api = fastapi_app.build_model_app()
    api.add_middleware(GuardrailFromEnv)  # exactly what vLLM does with --middleware
    client = TestClient(api)
    codes = [
        client.post("/v1/chat/completions", json=chat("x"), headers={"x-api-key": "k"}).status_code
        for _ in range(4)
    ]
    assert codes[0] == 200 and codes[-1] == 429
    monkeypatch.setenv("GUARDRAIL_ON_OVERSIZE", "explode")
    with pytest.raises(ValueError, match="on_oversize"):
        TestClient(_with(fastapi_app.build_model_app())).post("/v1/chat/completions", json=chat("x"))


def _with(api: Any) -> Any:
    api.add_middleware(GuardrailFromEnv)
    return api


# -- LiteLLM pre-call hook -------------------------------------------------------------------------


async def test_litellm_hook_allows_throttles_blocks_and_settles() -> None:
    guard = AsyncScriptedGuard(rpm=2, blocked=frozenset({"user_id:mallory"}))
    hook = GuardrailLiteLLM(guard=guard)
    alice = SimpleNamespace(user_id="alice", team_id=None, token="hashed", api_key=None)
    data = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "metadata": {}}
    out = await hook.async_pre_call_hook(alice, None, data, "completion")
    assert (
        out is data
        and guard.seen[0].account == "user_id:alice"
        and guard.seen[0].path == "/v1/chat/completions"
    )
    response = SimpleNamespace(usage=SimpleNamespace(completion_tokens=21))
    assert await hook.async_post_call_success_hook(data, alice, response) is response
    assert guard.settled == [("user_id:alice", 21)]
    second = {"model": "gpt", "messages": [], "metadata": {}}
    await hook.async_pre_call_hook(alice, None, second, "acompletion")
    await hook.async_post_call_failure_hook(second, RuntimeError("upstream"), alice)
    assert guard.settled[-1] == ("user_id:alice", 0)
    with pytest.raises(HTTPException) as throttled:
        await hook.async_pre_call_hook(alice, None, {"messages": []}, "completion")
    assert throttled.value.status_code == 429
    assert throttled.value.headers is not None and int(throttled.value.headers["retry-after"]) >= 1
    assert not [k for k in throttled.value.headers if "ratelimit" in k]  # engine figures stay private
    mallory = SimpleNamespace(user_id="mallory")
    with pytest.raises(HTTPException) as blocked:
        await hook.async_pre_call_hook(mallory, None, {"messages": []}, "completion")
    assert blocked.value.status_code == 403 and blocked.value.headers == {"x-should-retry": "false"}
    # Embeddings are not inspected; a broken guard lets requests through.
    assert await hook.async_pre_call_hook(mallory, None, {"input": "x"}, "embeddings") == {"input": "x"}
    broken = GuardrailLiteLLM(guard=AsyncScriptedGuard(fail=True))
    assert await broken.async_pre_call_hook(alice, None, {"messages": []}, "completion") == {"messages": []}


async def _stream(chunks: list[Any]) -> AsyncIterator[Any]:
    for chunk in chunks:
        yield chunk


_USAGE_CHUNK = SimpleNamespace(usage=SimpleNamespace(completion_tokens=17))
_COMPLETED = {"type": "response.completed", "response": {"usage": {"output_tokens": 9}}}
_DELTA = b'event: message_delta\ndata: {"type": "message_delta", "usa'


@pytest.mark.parametrize(
    ("chunks", "tokens"),
    [
        # chat completions with stream_options.include_usage: the last chunk carries the usage (objects)
        ([SimpleNamespace(usage=None)] * 3 + [_USAGE_CHUNK], 17),
        # Responses API events as dicts: usage on response.completed
        ([{"type": "response.output_text.delta"}, _COMPLETED], 9),
        # an Anthropic stream passed through as raw SSE bytes, split mid-line
        ([_DELTA, b'ge": {"output_tokens": 33}}\n\n'], 33),
        # Gemini chunks through LiteLLM: usageMetadata on each, a running total
        ([{"usageMetadata": {"candidatesTokenCount": n}} for n in (4, 11)], 11),
        # ... which LiteLLM's translated stream ends with a 0 (seen on 1.85): no count, not a refund
        ([{"usageMetadata": {"candidatesTokenCount": n}} for n in (4, 264, 0)], 264),
        ([{"usageMetadata": {"candidatesTokenCount": 0}}], None),
        # no usage at all (a stream without include_usage, or cut short): the estimate stands
        ([SimpleNamespace(usage=None), b"\x00odd", 42], None),
    ],
)
async def test_litellm_hook_settles_streams_from_their_largest_usage(
    chunks: list[Any], tokens: int | None
) -> None:
    guard = AsyncScriptedGuard(rpm=100)
    hook = GuardrailLiteLLM(guard=guard)
    alice = SimpleNamespace(user_id="alice", team_id=None, token="hashed", api_key=None)
    data = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "stream": True, "metadata": {}}
    await hook.async_pre_call_hook(alice, None, data, "acompletion")
    passed = [c async for c in hook.async_post_call_streaming_iterator_hook(alice, _stream(chunks), data)]
    assert passed == chunks  # every chunk passed on, untouched, in order
    await asyncio.gather(*hook._tasks)
    assert guard.settled == ([] if tokens is None else [("user_id:alice", tokens)])
    assert len(hook._pending) == 0


async def test_litellm_hook_settles_a_stream_the_client_abandons() -> None:
    guard = AsyncScriptedGuard(rpm=100)
    hook = GuardrailLiteLLM(guard=guard)
    alice = SimpleNamespace(user_id="alice", team_id=None, token="hashed", api_key=None)
    data = {"model": "gpt", "messages": [], "stream": True, "metadata": {}}
    await hook.async_pre_call_hook(alice, None, data, "acompletion")
    chunks = [{"usage": {"completion_tokens": 5}}, {"choices": []}, {"choices": []}]
    stream = hook.async_post_call_streaming_iterator_hook(alice, _stream(chunks), data)
    assert await stream.__anext__() == chunks[0]
    await stream.aclose()  # the client went away after the first chunk
    await asyncio.gather(*hook._tasks)
    assert guard.settled == [("user_id:alice", 5)]
    # a stream with no decision behind it (nothing charged) passes through as it is
    other = [c async for c in hook.async_post_call_streaming_iterator_hook(alice, _stream([1, 2]), {})]
    assert other == [1, 2]


class _SlowSettle(AsyncScriptedGuard):
    """Settles after an await, as a guard on Redis does."""

    async def settle(self, decision: Any, output_tokens: int) -> None:
        await asyncio.sleep(0.01)
        await super().settle(decision, output_tokens)


async def test_litellm_hook_settles_a_stream_cancelled_while_waiting_for_the_upstream() -> None:
    """A server cancels the response task when the client leaves (Starlette through an anyio scope, which
    cancels every await inside it): the settlement must not be cancelled with it."""
    import anyio

    guard = _SlowSettle(rpm=100)
    hook = GuardrailLiteLLM(guard=guard)
    alice = SimpleNamespace(user_id="alice", team_id=None, token="hashed", api_key=None)
    data = {"model": "gpt", "messages": [], "stream": True, "metadata": {}}
    await hook.async_pre_call_hook(alice, None, data, "acompletion")
    upstream_waits = asyncio.Event()

    async def upstream() -> AsyncIterator[Any]:
        yield {"usage": {"completion_tokens": 8}}
        upstream_waits.set()
        await asyncio.sleep(3600)
        yield {"choices": []}

    async def respond() -> None:
        async for _ in hook.async_post_call_streaming_iterator_hook(alice, upstream(), data):
            pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(respond)
        await upstream_waits.wait()
        tg.cancel_scope.cancel()
    await asyncio.wait_for(asyncio.gather(*hook._tasks), 5)
    assert guard.settled == [("user_id:alice", 8)]


async def test_litellm_hook_refunds_a_stream_that_fails_upstream() -> None:
    guard = AsyncScriptedGuard(rpm=100)
    hook = GuardrailLiteLLM(guard=guard)
    alice = SimpleNamespace(user_id="alice", team_id=None, token="hashed", api_key=None)
    data = {"model": "gpt", "messages": [], "stream": True, "metadata": {}}
    await hook.async_pre_call_hook(alice, None, data, "acompletion")

    async def upstream() -> AsyncIterator[Any]:
        yield {"choices": []}
        raise RuntimeError("upstream went away")

    with pytest.raises(RuntimeError):
        async for _ in hook.async_post_call_streaming_iterator_hook(alice, upstream(), data):
            pass
    await hook.async_post_call_failure_hook(data, RuntimeError("upstream went away"), alice)
    await asyncio.gather(*hook._tasks)
    assert guard.settled == [("user_id:alice", 0)]  # refunded once


# -- reverse proxy ---------------------------------------------------------------------------------


async def test_proxy_app_forwards_and_guards() -> None:
    upstream = fastapi_app.build_model_app()
    inner = httpx.AsyncClient(transport=httpx.ASGITransport(app=upstream), base_url="http://upstream")
    guard = AsyncScriptedGuard(rpm=2)
    proxy = Guardrail(ProxyApp("http://upstream", client=inner), guard=guard)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://proxy") as client:
        r = await client.post("/v1/chat/completions?x=1", json=chat("proxy me"), headers={"x-api-key": "k"})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == toymodel.reply(
            "proxy me"
        )
        s = await client.post("/v1/messages", json=chat("s", stream=True), headers={"x-api-key": "k"})
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
        assert re.findall(r"event: (\w+)", s.text)[-1] == "message_stop"
        assert (
            await client.post("/v1/messages", json=chat("s"), headers={"x-api-key": "k"})
        ).status_code == 429
        assert (await client.get("/v1/models")).json()["data"][0]["id"] == "toy-1"
    assert guard.settled == [
        ("k", toymodel.count_tokens(toymodel.reply("proxy me"))),
        ("k", json.loads("1") * 0 + guard.settled[1][1]),
    ]
    await inner.aclose()


async def test_proxy_bad_gateway_and_validation() -> None:
    with pytest.raises(ValueError, match="upstream"):
        ProxyApp("ftp://nowhere")
    proxy = ProxyApp("http://127.0.0.1:9")  # nothing listens on the discard port
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://proxy") as client:
        r = await client.get("/v1/models")
    assert r.status_code == 502 and r.json()["error"]["code"] == "bad_gateway"
    await proxy.aclose()


async def test_litellm_hook_keeps_no_decision_with_nothing_to_settle() -> None:
    from guardrail.engine import AsyncGuard

    hook = GuardrailLiteLLM(guard=AsyncGuard("memory://"))
    alice = SimpleNamespace(user_id="alice", team_id=None, token="hashed", api_key=None)
    for _ in range(3):
        data = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "metadata": {}}
        assert await hook.async_pre_call_hook(alice, None, data, "completion") is data
    assert len(hook._pending) == 0  # honest decisions charge no engine bucket: nothing kept for later


async def test_litellm_hook_enforces_account_rpm_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GUARDRAIL_ACCOUNT_RPM", "2")
    hook = GuardrailLiteLLM()
    alice = SimpleNamespace(user_id="alice", team_id=None, token="hashed", api_key=None)
    bob = SimpleNamespace(user_id="bob", team_id=None, token="hashed2", api_key=None)

    def data() -> dict[str, Any]:
        return {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "metadata": {}}

    for _ in range(2):
        await hook.async_pre_call_hook(alice, None, data(), "completion")
    with pytest.raises(HTTPException) as refused:
        await hook.async_pre_call_hook(alice, None, data(), "completion")
    assert refused.value.status_code == 429 and refused.value.headers is not None
    assert int(refused.value.headers["retry-after"]) >= 1
    assert refused.value.headers["ratelimit-policy"] == '"requests";q=2'
    assert await hook.async_pre_call_hook(bob, None, data(), "completion")  # another account: its own budget
    assert GuardrailLiteLLM(account_rpm=60).quota is not None  # the keyword works too


async def test_litellm_hook_inspects_gemini_calls_and_shares_the_accounts_budget() -> None:
    """LiteLLM's Gemini-native route (``/v1beta/models/{model}:generateContent``, call type
    ``agenerate_content``) is a generation like the others: read as Gemini, under the same quota."""
    from guardrail.engine import AsyncGuard
    from guardrail.extract import extract

    scripted = AsyncScriptedGuard(rpm=100)
    hook = GuardrailLiteLLM(guard=scripted)
    alice = SimpleNamespace(user_id="alice", team_id=None, token="hashed", api_key=None)
    gemini = {
        "model": "gemini/gemini-2.5-pro",
        "contents": [{"role": "user", "parts": [{"text": "write a sorting function"}]}],
        "systemInstruction": {"parts": [{"text": "think step by step"}]},
        "metadata": {},
    }
    await hook.async_pre_call_hook(alice, None, gemini, "agenerate_content")
    await hook.async_pre_call_hook(alice, None, dict(gemini), "agenerate_content_stream")
    first, streamed = scripted.seen
    assert first.path == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert streamed.path == "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    prompt = extract(first.path, first.body)
    assert "write a sorting function" in prompt.text and "think step by step" in prompt.text
    # settled from Gemini's usage, as a REST dict or google-genai's object (candidates + thoughts)
    await hook.async_post_call_success_hook(gemini, alice, {"usageMetadata": {"candidatesTokenCount": 12}})
    meta = SimpleNamespace(candidates_token_count=5, thoughts_token_count=3)
    second = dict(gemini, metadata={})
    await hook.async_pre_call_hook(alice, None, second, "agenerate_content")
    await hook.async_post_call_success_hook(second, alice, SimpleNamespace(usage_metadata=meta))
    assert scripted.settled == [("user_id:alice", 12), ("user_id:alice", 8)]

    quota = GuardrailLiteLLM(guard=AsyncGuard("memory://"), account_rpm=2)
    chat = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "metadata": {}}
    await quota.async_pre_call_hook(alice, None, chat, "acompletion")
    await quota.async_pre_call_hook(alice, None, dict(gemini, metadata={}), "agenerate_content")
    with pytest.raises(HTTPException) as refused:  # one budget across the two APIs
        await quota.async_pre_call_hook(alice, None, dict(gemini, metadata={}), "agenerate_content")
    assert refused.value.status_code == 429


async def test_litellm_hook_refuses_with_litellms_own_exception_when_it_is_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under LiteLLM the refusal is its ``ProxyException`` (its Anthropic route drops an HTTPException's
    headers): status, OpenAI error fields and every header kept; an older one without ``headers`` falls
    back to HTTPException."""
    from integrations import litellm_hook

    class ProxyException(Exception):  # LiteLLM's signature (litellm/proxy/_types.py)
        def __init__(
            self,
            message: str,
            type: str,
            param: str | None,
            code: int | str | None = None,
            headers: dict[str, str] | None = None,
            openai_code: str | None = None,
        ) -> None:
            super().__init__(message)
            self.message, self.type, self.code = message, type, str(code)
            self.headers, self.openai_code = headers or {}, openai_code

    monkeypatch.setattr(litellm_hook, "_ProxyException", ProxyException)
    hook = GuardrailLiteLLM(guard=AsyncScriptedGuard(rpm=1, blocked=frozenset({"user_id:mallory"})))
    alice = SimpleNamespace(user_id="alice", team_id=None, token="hashed", api_key=None)
    messages = {"model": "claude", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9}
    await hook.async_pre_call_hook(alice, None, dict(messages), "anthropic_messages")
    with pytest.raises(ProxyException) as throttled:
        await hook.async_pre_call_hook(alice, None, dict(messages), "anthropic_messages")
    assert throttled.value.code == "429" and throttled.value.type == "rate_limit_error"
    assert throttled.value.status_code == 429  # type: ignore[attr-defined]  # read by older LiteLLMs
    assert int(throttled.value.headers["retry-after"]) >= 1 and "retry-after-ms" in throttled.value.headers
    with pytest.raises(ProxyException) as blocked:
        await hook.async_pre_call_hook(SimpleNamespace(user_id="mallory"), None, dict(messages), "completion")
    assert blocked.value.code == "403" and blocked.value.headers == {"x-should-retry": "false"}

    class OldProxyException(Exception):
        def __init__(self, message: str, type: str, param: str | None, code: int | None = None) -> None:
            super().__init__(message)

    monkeypatch.setattr(litellm_hook, "_ProxyException", OldProxyException)
    with pytest.raises(HTTPException) as fallback:
        await hook.async_pre_call_hook(alice, None, dict(messages), "anthropic_messages")
    assert fallback.value.status_code == 429 and "retry-after" in (fallback.value.headers or {})


async def test_litellm_hook_engine_throttle_under_a_quota_looks_like_the_quotas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``account_rpm``, an engine throttle is raised as a spent quota's: its headers, and its wait
    (0.6 s for one more of 100 a minute), not the engine bucket's minute."""
    from integrations import litellm_hook

    monkeypatch.setattr(litellm_hook, "_ProxyException", None)  # the fallback, litellm installed or not
    hook = GuardrailLiteLLM(guard=AsyncScriptedGuard(rpm=1), account_rpm=100)
    alice = SimpleNamespace(user_id="alice")
    chat = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    await hook.async_pre_call_hook(alice, None, dict(chat), "acompletion")
    with pytest.raises(HTTPException) as throttled:
        await hook.async_pre_call_hook(alice, None, dict(chat), "acompletion")
    headers = throttled.value.headers or {}
    assert throttled.value.status_code == 429 and headers["retry-after-ms"] == "600"
    assert (
        headers["ratelimit"].startswith('"requests";r=0')
        and headers["ratelimit-policy"] == '"requests";q=100'
    )


async def test_litellm_hook_tickets_cannot_be_named_by_a_client() -> None:
    """A ticket is the hook's, unguessable, and one a client sends in its own ``metadata`` is dropped:
    otherwise another account could settle a pending call's charge with its own small usage."""
    guard = AsyncScriptedGuard(rpm=100)
    hook = GuardrailLiteLLM(guard=guard)
    alice, bob = SimpleNamespace(user_id="alice"), SimpleNamespace(user_id="bob")
    chat = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    held = {**chat, "metadata": {}}
    await hook.async_pre_call_hook(alice, None, held, "acompletion")
    ticket = held["metadata"]["guardrail_ticket"]
    assert isinstance(ticket, str) and len(ticket) >= 16 and not ticket.isdigit()
    for key, call in (("metadata", "acompletion"), ("litellm_metadata", "aembedding")):
        forged = {**chat, key: {"guardrail_ticket": ticket}}  # even on a route the hook does not inspect
        await hook.async_pre_call_hook(bob, None, forged, call)
        assert forged[key].get("guardrail_ticket") != ticket
        await hook.async_post_call_success_hook(forged, bob, SimpleNamespace(usage={"completion_tokens": 2}))
    await hook.async_post_call_success_hook(held, alice, SimpleNamespace(usage={"completion_tokens": 5000}))
    assert guard.settled == [("user_id:bob", 2), ("user_id:alice", 5000)]


async def test_litellm_hook_reads_and_writes_litellms_own_metadata_on_messages() -> None:
    """On /v1/messages and /v1/responses the request's ``metadata`` is the client's (sent to the provider);
    LiteLLM keeps its own in ``litellm_metadata``: the address is read there and the ticket written there."""
    guard = AsyncScriptedGuard(rpm=100)
    hook = GuardrailLiteLLM(guard=guard)
    alice = SimpleNamespace(user_id="alice")
    data = {
        "model": "claude",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"user_id": "end-user-7"},
        "litellm_metadata": {"requester_ip_address": "198.51.100.4"},
    }
    await hook.async_pre_call_hook(alice, None, data, "anthropic_messages")
    assert guard.seen[-1].ip == "198.51.100.4" and guard.seen[-1].path == "/v1/messages"
    assert data["metadata"] == {"user_id": "end-user-7"}  # the provider's field untouched
    assert "guardrail_ticket" in data["litellm_metadata"]
    response = SimpleNamespace(usage=SimpleNamespace(output_tokens=9))
    await hook.async_post_call_success_hook(data, alice, response)
    assert guard.settled == [("user_id:alice", 9)]


async def _raw_upstream(response: bytes) -> tuple[asyncio.AbstractServer, str]:
    """An upstream that reads a request and answers ``response`` verbatim, then closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        if length:
            await reader.readexactly(length)
        writer.write(response)
        await writer.drain()
        writer.close()

    return await _serve(handle)


async def _serve(handle: Any) -> tuple[asyncio.AbstractServer, str]:
    """A raw asyncio upstream on a free port running ``handle`` per connection, and its URL."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def _drive_proxy(
    proxy: ProxyApp,
    path: str,
    receive: Any,
    send: Any = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> list[dict[str, Any]]:
    """The messages ``proxy`` sends for one ``POST path`` whose ``receive`` is given (``headers``: no
    body by default)."""
    sent: list[dict[str, Any]] = []

    async def keep(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers if headers is not None else [(b"content-length", b"0")],
        "client": ("192.0.2.1", 1),
    }
    await proxy(scope, receive, send or keep)
    return sent


async def test_proxy_aborts_a_response_the_upstream_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    """Headers already sent: a clean end would pass 50 of 200 bytes as the whole answer. The proxy ends
    without the last message (the server then aborts the connection) and logs one line, no traceback."""
    server, url = await _raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n" + b"x" * 50
    )
    proxy = ProxyApp(url)
    gone = anyio.Event()

    async def receive() -> dict[str, Any]:
        if not gone.is_set():
            gone.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep(3600)
        return {"type": "http.disconnect"}

    try:
        with caplog.at_level(logging.WARNING, logger="guardrail.proxy"):
            sent = await _drive_proxy(proxy, "/v1/models", receive)
    finally:
        await proxy.aclose()
        server.close()
    assert sent[0]["status"] == 200 and b"".join(m.get("body", b"") for m in sent[1:]) == b"x" * 50
    assert all(m.get("more_body", False) for m in sent[1:])  # never ended as if whole
    lines = [r for r in caplog.records if r.name == "guardrail.proxy"]
    assert len(lines) == 1 and "cut off" in lines[0].getMessage() and lines[0].exc_info is None


async def test_proxy_ends_the_upstream_request_when_the_client_leaves() -> None:
    """A client gone mid-stream: the upstream's connection is closed at once (a model would otherwise go on
    generating for no one and hold a pooled connection). The upstream here streams until its write fails,
    so the test ends only if the proxy lets go."""
    upstream_gone = anyio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        try:
            while True:
                writer.write(b"d\r\ndata: token\n\n\r\n")
                await writer.drain()
                await asyncio.sleep(0.02)
        except (ConnectionError, OSError):
            upstream_gone.set()
        finally:
            writer.close()

    server, url = await _serve(handle)
    proxy = ProxyApp(url)
    chunks = 0
    two_chunks = anyio.Event()
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await two_chunks.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal chunks
        if message["type"] == "http.response.body":
            chunks += 1
            if chunks == 2:
                two_chunks.set()

    try:
        await _drive_proxy(proxy, "/v1/chat/completions", receive, send)
        with anyio.fail_after(10):
            await upstream_gone.wait()
    finally:
        await proxy.aclose()
        server.close()
    assert chunks >= 2


async def test_proxy_ends_a_non_streamed_upstream_request_when_the_client_leaves_before_the_answer() -> None:
    """The client leaves while the upstream is still working on a non-streamed answer (no headers yet):
    the upstream's connection is closed too. The upstream here never answers."""
    upstream_gone = anyio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if await reader.read() == b"":  # the proxy closed the connection
            upstream_gone.set()
        writer.close()

    server, url = await _serve(handle)
    proxy = ProxyApp(url)
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep(0.2)
        return {"type": "http.disconnect"}

    try:
        sent = await _drive_proxy(proxy, "/v1/chat/completions", receive)
        with anyio.fail_after(10):
            await upstream_gone.wait()
    finally:
        await proxy.aclose()
        server.close()
    assert sent == []  # nothing to send to a client that left


async def test_proxy_does_not_send_again_a_request_that_died_late(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection cut long after the request went up (a balancer ending a long generation) may have
    been worked on: a 502, not a second run."""
    from guardrail.cli import _proxy

    monkeypatch.setattr(_proxy, "STALE_WINDOW", 0.05)
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.3)
        writer.close()

    (r,) = await _post_through_guarded_proxy(handle, [("/v1/chat/completions", b'{"a": 1}')])
    assert r.status_code == 502 and connections == 1


async def _read_request(reader: asyncio.StreamReader) -> bool:
    """Read one request with a Content-Length body off ``reader``; ``False`` when the connection ended."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    length = next(
        (int(x.split(b":")[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")), 0
    )
    await reader.readexactly(length)
    return True


_KEEP_ALIVE_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"


def _dies_on_second_request(second: bytes, counts: dict[str, int]) -> Any:
    """An upstream whose first connection answers one request, then takes the next and writes ``second``
    (nothing: no answer) and closes: a keep-alive connection it was closing as the proxy reused it. Later
    connections answer every request."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["connections"] += 1
        first_connection = counts["connections"] == 1
        served = 0
        while await _read_request(reader):
            counts["requests"] += 1
            if first_connection and served == 1:
                writer.write(second)
                await writer.drain()
                writer.close()
                return
            writer.write(_KEEP_ALIVE_OK)
            await writer.drain()
            served += 1
        writer.close()

    return handle


async def test_proxy_sends_again_once_when_a_reused_connection_dies_unanswered() -> None:
    """A reused keep-alive connection closed without a byte of answer: a body in hand is sent once more,
    on a new connection (the one retry must not take another stale pooled one)."""
    counts = {"connections": 0, "requests": 0}
    first, second = await _post_through_guarded_proxy(
        _dies_on_second_request(b"", counts),
        [("/v1/chat/completions", b'{"a": 1}'), ("/v1/chat/completions", b'{"a": 2}')],
    )
    assert first.status_code == 200 and second.status_code == 200 and second.content == b"{}"
    assert counts == {"connections": 2, "requests": 3}


async def test_proxy_retry_does_not_take_another_stale_pooled_connection() -> None:
    """Two pooled connections, both being closed by the upstream (a restart): the retry of the request
    that met the first must not meet the second."""
    counts = {"connections": 0, "requests": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["connections"] += 1
        doomed = counts["connections"] <= 2
        served = 0
        while await _read_request(reader):
            counts["requests"] += 1
            if doomed and served == 1:
                writer.close()
                return
            await asyncio.sleep(0.1 if doomed else 0)  # the first two requests overlap: two connections
            writer.write(_KEEP_ALIVE_OK)
            await writer.drain()
            served += 1
        writer.close()

    server, url = await _serve(handle)
    proxy = ProxyApp(url)
    try:
        transport = httpx.ASGITransport(app=Guardrail(proxy, guard=AsyncScriptedGuard(rpm=1000)))
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            path, body = "/v1/chat/completions", b'{"a": 1}'
            pair = await asyncio.gather(client.post(path, content=body), client.post(path, content=body))
            last = await client.post(path, content=body)
    finally:
        await proxy.aclose()
        server.close()
    assert [r.status_code for r in pair] == [200, 200] and last.status_code == 200
    assert counts == {"connections": 3, "requests": 4}


async def test_proxy_does_not_send_again_when_a_reused_connection_answered_badly() -> None:
    """Bytes of a malformed answer came back: the upstream may have worked on it, a 502 and no retry."""
    counts = {"connections": 0, "requests": 0}
    first, second = await _post_through_guarded_proxy(
        _dies_on_second_request(b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n", counts),
        [("/v1/chat/completions", b'{"a": 1}'), ("/v1/chat/completions", b'{"a": 2}')],
    )
    assert first.status_code == 200 and second.status_code == 502
    assert counts == {"connections": 1, "requests": 2}


async def test_proxy_does_not_send_again_when_a_new_connection_dies_unanswered() -> None:
    """A connection opened for this very request cannot have been stale: its death (a crashing worker
    that read the request) is a 502, not a second run; a streamed body is never sent twice either."""
    counts = {"connections": 0, "requests": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["connections"] += 1
        await reader.readuntil(b"\r\n\r\n")
        counts["requests"] += 1
        writer.close()

    async def streamed() -> AsyncIterator[bytes]:
        yield b'{"a": '
        yield b"1}"

    # An inspected route's body is read whole by the guard, then handed over in one message; /v1/files
    # is not inspected: its body is streamed through.
    whole, partial = await _post_through_guarded_proxy(
        handle, [("/v1/chat/completions", b'{"a": 1}'), ("/v1/files", streamed())]
    )
    assert whole.status_code == 502 and partial.status_code == 502
    assert counts == {"connections": 2, "requests": 2}


async def test_proxy_ends_the_upstream_request_when_the_client_leaves_after_a_streamed_upload() -> None:
    """A body streamed up in parts, all of it sent, the upstream still working: the client leaving ends
    the upstream request at once (not at the proxy's timeout)."""
    upstream_gone = anyio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        while await reader.read(65536):  # the chunked body, then nothing until the proxy closes
            pass
        upstream_gone.set()
        writer.close()

    server, url = await _serve(handle)
    proxy = ProxyApp(url, timeout=60.0)
    parts = [b"x" * 50_000, b"y" * 50_000]
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls <= len(parts):
            return {"type": "http.request", "body": parts[calls - 1], "more_body": calls < len(parts)}
        await anyio.sleep(0.2)
        return {"type": "http.disconnect"}

    try:
        with anyio.fail_after(10):
            sent = await _drive_proxy(
                proxy, "/v1/files", receive, headers=[(b"transfer-encoding", b"chunked")]
            )
            await upstream_gone.wait()
    finally:
        await proxy.aclose()
        server.close()
    assert sent == []


async def _post_through_guarded_proxy(handle: Any, posts: list[tuple[str, Any]]) -> list[httpx.Response]:
    """``posts`` (path, content) sent in turn through ``Guardrail(ProxyApp)`` to a raw upstream ``handle``."""
    server, url = await _serve(handle)
    proxy = ProxyApp(url)
    try:
        transport = httpx.ASGITransport(app=Guardrail(proxy, guard=AsyncScriptedGuard(rpm=1000)))
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            return [await client.post(path, content=content) for path, content in posts]
    finally:
        await proxy.aclose()
        server.close()


async def _models_via_proxy(raw_response: bytes) -> httpx.Response:
    """``GET /v1/models`` through the proxy from an upstream that answers ``raw_response`` as it is."""
    server, url = await _raw_upstream(raw_response)
    proxy = ProxyApp(url)
    try:
        transport = httpx.ASGITransport(app=proxy)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            return await client.get("/v1/models")
    finally:
        await proxy.aclose()
        server.close()


async def test_proxy_drops_headers_the_connection_header_lists() -> None:
    r = await _models_via_proxy(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close, x-hop\r\n"
        b"x-hop: secret\r\nx-kept: yes\r\ncontent-length: 2\r\n\r\n{}"
    )
    assert r.status_code == 200 and r.headers["x-kept"] == "yes" and "x-hop" not in r.headers
    assert r.headers["content-length"] == "2"  # the raw bytes are relayed: the upstream's length holds


async def test_proxy_relays_a_chunked_upstream_without_a_length() -> None:
    r = await _models_via_proxy(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n"
        b"content-length: 99\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    )
    assert r.status_code == 200 and r.content == b"{}"
    assert "content-length" not in r.headers and "transfer-encoding" not in r.headers


def test_proxy_request_drops_connection_listed_headers() -> None:
    from guardrail.cli._proxy import _connection_listed

    headers = [
        (b"connection", b"keep-alive, X-Private"),
        (b"x-private", b"1"),
        (b"authorization", b"Bearer k"),
    ]
    assert _connection_listed(headers) == frozenset({b"keep-alive", b"x-private"})


async def test_proxy_forwards_identity_headers_even_if_connection_lists_them() -> None:
    """A decoy ``Authorization`` listed in ``Connection`` must reach the upstream: else the guard would
    count the decoy while the upstream authenticated another key sent alongside."""
    seen: list[dict[str, str]] = []

    async def upstream(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    inner = httpx.AsyncClient(transport=httpx.ASGITransport(app=upstream), base_url="http://upstream")
    proxy = ProxyApp("http://upstream", client=inner)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://proxy") as client:
        headers = {
            "authorization": "Bearer decoy",
            "x-api-key": "real",
            "connection": "authorization, x-extra",
        }
        await client.get("/v1/models", headers={**headers, "x-extra": "1"})
    assert seen[0]["authorization"] == "Bearer decoy" and seen[0]["x-api-key"] == "real"
    assert "x-extra" not in seen[0]
    await inner.aclose()


async def _drive(
    app: Any, path: str, headers: list[tuple[bytes, bytes]], *body: bytes, raw: bytes = b""
) -> int:
    """One POST of ``body`` (in those chunks) to ``path`` through ``app`` from 1.2.3.4, built by hand (an
    httpx client would normalise the path itself); the status answered."""
    chunks = list(body) or [b""]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": path, "raw_path": raw or path.encode(), "query_string": b"",
        "headers": headers, "client": ("1.2.3.4", 5), "root_path": "",
    }  # fmt: skip
    await app(scope, receive, send)
    status: int = sent[0]["status"]
    return status


def _recording_upstream(seen: list[tuple[str, list[tuple[str, str]], bytes]]) -> Any:
    async def upstream(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_all(receive)
        seen.append((scope["path"], [(k.decode(), v.decode()) for k, v in scope["headers"]], body))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    return upstream


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/chat/completions/.", b"/v1/chat/completions/."),
        ("/v1/chat/completions/x/..", b"/v1/chat/completions/x/.."),
        ("/v1/chat/completions/.", b"/v1/chat/completions/%2e"),  # uvicorn decodes scope["path"]
        ("/v1//chat//completions", b"/v1//chat//completions"),
        ("/v1\\messages", b"/v1\\messages"),
    ],
)
async def test_proxy_inspects_paths_an_upstream_may_normalise_into_an_inspected_route(
    path: str, raw: bytes
) -> None:
    """httpx (and many servers) drop dot segments and merge slashes: ``/v1/chat/completions/.`` reaches
    the chat route upstream, so guardrail matches it as that route and inspects it."""
    seen: list[tuple[str, list[tuple[str, str]], bytes]] = []
    upstream = httpx.ASGITransport(app=_recording_upstream(seen))
    inner = httpx.AsyncClient(transport=upstream, base_url="http://u")
    guard = AsyncScriptedGuard(rpm=1000)
    proxy = Guardrail(ProxyApp("http://u", client=inner), guard=guard)
    body = json.dumps(chat("inspect me")).encode()
    status = await _drive(proxy, path, [(b"authorization", b"Bearer k")], body, raw=raw)
    assert status == 200 and len(guard.seen) == 1 and guard.seen[0].body == body
    await inner.aclose()


@pytest.mark.parametrize("header", ["x-forwarded-for", "forwarded"])
@pytest.mark.parametrize("trusted", [False, True])
async def test_proxy_passes_on_the_address_chain_only_from_trusted_proxies(
    trusted: bool, header: str
) -> None:
    """Every client-writable address header is dropped; from a trusted proxy the one header it writes goes
    on as one line with that proxy appended, from anyone else the socket peer alone."""
    seen: list[tuple[str, list[tuple[str, str]], bytes]] = []
    inner = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_recording_upstream(seen)), base_url="http://u"
    )
    options: dict[str, Any] = {"trusted_proxies": "127.0.0.1", "proxy_header": header} if trusted else {}
    proxy_app = ProxyApp("http://u", client=inner)
    proxy = Guardrail(proxy_app, guard=AsyncScriptedGuard(rpm=1000), **options)
    proxy_app.trusted = proxy.core.trusted
    spoof = [
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-for", "7.7.7.7"),
        ("forwarded", "for=6.6.6.6"),
        ("x-real-ip", "6.6.6.6"),
        ("true-client-ip", "6.6.6.6"),
        ("x_forwarded_for", "6.6.6.6"),
        ("x-forwarded", "for=6.6.6.6"),
        ("forwarded-for", "6.6.6.6"),
    ]
    transport = httpx.ASGITransport(app=proxy, client=("127.0.0.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        await client.get("/v1/models", headers=spoof)
    addresses = [(k, v) for k, v in seen[0][1] if "6.6" in v or "7.7" in v or "127.0.0.1" in v]
    if not trusted:
        assert addresses == [("x-forwarded-for", "127.0.0.1")]
    elif header == "x-forwarded-for":
        assert addresses == [("x-forwarded-for", "6.6.6.6, 7.7.7.7, 127.0.0.1")]
    else:
        assert addresses == [("forwarded", "for=6.6.6.6, for=127.0.0.1")]
    await inner.aclose()


async def test_proxy_forwards_the_canonical_path_it_inspected() -> None:
    """An Azure-looking raw path that normalises to ``/v1/chat/completions``: the guard reads it as the
    chat path (Authorization first, as the upstream authenticates) and the upstream gets that very path,
    so a rotating ``api-key`` decoy counts for nothing."""
    seen: list[tuple[str, list[tuple[str, str]], bytes]] = []
    inner = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_recording_upstream(seen)), base_url="http://u"
    )
    proxy = Guardrail(ProxyApp("http://u", client=inner), guard=AsyncScriptedGuard(rpm=1000), account_rpm=2)
    path = "/openai/deployments/x/../../../v1/chat/completions"
    codes = [
        await _drive(proxy, path, [(b"authorization", b"Bearer REAL"), (b"api-key", f"decoy{i}".encode())])
        for i in range(4)
    ]
    assert codes == [200, 200, 429, 429]
    assert {p for p, _, _ in seen} == {"/v1/chat/completions"}
    await inner.aclose()


async def test_proxy_forwards_a_chunked_body_without_the_clients_content_length() -> None:
    """Transfer-Encoding with a Content-Length beside it (which it overrides): forwarding both made h11
    refuse the request (a 500); the body goes upstream whole, framed by httpx."""
    seen: list[tuple[str, list[tuple[str, str]], bytes]] = []
    inner = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_recording_upstream(seen)), base_url="http://u"
    )
    proxy = ProxyApp("http://u", client=inner)
    framing = [(b"content-length", b"4"), (b"transfer-encoding", b"chunked")]
    assert await _drive(proxy, "/v1/other", framing, b'{"a": ', b"1}") == 200
    assert seen[0][2] == b'{"a": 1}'
    assert ("content-length", "4") not in seen[0][1]
    await inner.aclose()


async def test_litellm_hook_quota_with_a_duck_typed_guard() -> None:
    hook = GuardrailLiteLLM(guard=AsyncScriptedGuard(rpm=1000), account_rpm=2)
    alice = SimpleNamespace(user_id="alice")
    for _ in range(2):
        await hook.async_pre_call_hook(alice, None, {"messages": []}, "completion")
    with pytest.raises(HTTPException) as refused:
        await hook.async_pre_call_hook(alice, None, {"messages": []}, "completion")
    assert refused.value.status_code == 429


async def test_litellm_hook_with_a_sync_engine_guard() -> None:
    """The hook awaits what an async guard returns and takes a sync guard's answer as it is."""
    from guardrail.engine import Guard, Policy, RequestFacts
    from guardrail.limiter import Limit

    data = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    cost = (
        Guard().core.prepare(RequestFacts(account="x", ip=None, path="/v1/chat/completions", body=data)).cost
    )
    guard = Guard(policy=Policy(account_limit=Limit(rate=1e-6, burst=cost)))  # room for one request
    hook = GuardrailLiteLLM(guard=guard)  # type: ignore[arg-type]
    alice = SimpleNamespace(user_id="alice")
    outcomes = []
    for _ in range(2):
        try:
            await hook.async_pre_call_hook(alice, None, dict(data), "completion")
            outcomes.append("allowed")
        except HTTPException as exc:
            outcomes.append(str(exc.status_code))
    guard.close()
    assert outcomes == ["allowed", "429"]


@pytest.mark.parametrize(
    ("raw", "forwarded"),
    [
        (b"/v1/chat/completions", b"/v1/chat/completions"),  # not ambiguous: byte for byte
        (b"/v1beta/models/gemini-1.5-pro:generateContent", b"/v1beta/models/gemini-1.5-pro:generateContent"),
        (b"/model/arn%3Aaws%2Fabc/converse", b"/model/arn%3Aaws%2Fabc/converse"),
        (b"//model/arn%3Aaws%2Fabc/converse", b"/model/arn%3Aaws%2Fabc/converse"),  # %2F stays in its segment
        (b"/v1//chat/completions/", b"/v1/chat/completions/"),  # the trailing slash stays
        (b"/v1/chat/completions/%2e", b"/v1/chat/completions"),
        (b"/v1/x/%2E%2E/chat/completions", b"/v1/chat/completions"),
        (b"/v1%5Cmessages", b"/v1/messages"),
        (b"/v1/%FF//x", b"/v1/%FF/x"),  # an undecodable escape kept as sent
    ],
)
def test_the_proxy_forwards_the_canonical_path_segment_by_segment(raw: bytes, forwarded: bytes) -> None:
    from urllib.parse import unquote

    from guardrail.cli._proxy import _forwarded_path
    from guardrail.extract import canonical_path

    path = unquote(raw.decode("latin-1"))  # what uvicorn puts in scope["path"]
    assert _forwarded_path(path, raw) == forwarded
    # The upstream, decoding what it gets and normalising, routes where the guard matched.
    assert canonical_path(unquote(forwarded.decode("latin-1"))) == canonical_path(path)


_RAW_PIECES = st.sampled_from(
    [
        "/",
        "\\",
        "%2F",
        "%5C",
        "%2e",
        ".",
        "..",
        "a%2Fb",
        "v1",
        "chat",
        "completions",
        "messages",
        "g:generateContent",
        "x",
    ]
)


@given(st.lists(_RAW_PIECES, max_size=10))
def test_the_upstream_routes_what_the_guard_matched(pieces: list[str]) -> None:
    """For any raw path, an upstream that decodes what the proxy forwards and normalises it reaches the
    path the guard read (so a route it reaches is one the guard matched); unambiguous paths go as sent."""
    from urllib.parse import unquote

    from guardrail.cli._proxy import _forwarded_path
    from guardrail.extract import ambiguous_path, canonical_path

    raw = "/" + "".join(pieces)
    path = unquote(raw)  # scope["path"]; the guard reads canonical_path(path) when ambiguous
    forwarded = _forwarded_path(path, raw.encode("latin-1")).decode("latin-1")
    if ambiguous_path(path) or ambiguous_path(raw):
        assert canonical_path(unquote(forwarded)) == canonical_path(path)
    else:
        assert forwarded == raw


async def test_proxy_refuses_fragments_and_keeps_underscored_credentials_back() -> None:
    """A fragment is no part of a request target: "/v1/chat/completions#" matched no route and httpx
    would drop the "#" upstream. ``x_api_key`` is not forwarded: the guard never counted it."""
    seen: list[tuple[str, list[tuple[str, str]], bytes]] = []
    upstream = httpx.ASGITransport(app=_recording_upstream(seen))
    inner = httpx.AsyncClient(transport=upstream, base_url="http://u")
    proxy = Guardrail(ProxyApp("http://u", client=inner), guard=AsyncScriptedGuard(rpm=1000))
    assert await _drive(proxy, "/v1/chat/completions#", [(b"authorization", b"Bearer k")], b"{}") == 400
    headers = [(b"authorization", b"Bearer k"), (b"x_api_key", b"REAL"), (b"x-api-key", b"seen")]
    assert await _drive(proxy, "/v1/chat/completions", headers, b"{}") == 200
    assert len(seen) == 1 and ("x_api_key", "REAL") not in seen[0][1] and ("x-api-key", "seen") in seen[0][1]
    await inner.aclose()


async def test_proxy_reuse_trace_decides_per_attempt() -> None:
    """httpcore's pool may send on a pooled connection, find it gone and open another for the same
    request: the last attempt decides. HTTP/2 streams are never taken as stale; a trace the request
    already had is still called."""
    from guardrail.cli._proxy import _Reuse

    seen: list[str] = []

    async def earlier(event: str, info: dict[str, Any]) -> None:
        seen.append(event)

    cases = [
        (["http11.send_request_headers.started"], True),
        (["connection.connect_tcp.started", "http11.send_request_headers.started"], False),
        (["http11.send_request_headers.started", "connection.connect_tcp.started",
          "http11.send_request_headers.started"], False),
        (["http2.send_request_headers.started"], False),
    ]  # fmt: skip
    for events, reused in cases:
        trace = _Reuse(earlier)
        for event in events:
            await trace(event, {})
        assert trace.reused is reused, events
    assert len(seen) == sum(len(events) for events, _ in cases)
