"""The simulator's parts: request shapes per API, evasion noise, clock and addresses."""

from __future__ import annotations

import ipaddress
import json
import random
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.simulate import simulate
from guardrail.simulate._base import sessions
from guardrail.simulate._bodies import APIS, Client, ToolStep, Turn, render
from guardrail.simulate._clock import WINDOW, flat_profile, human_profile, office_profile, sorted_times
from guardrail.simulate._network import HomeAddress, World, proxy_pool
from guardrail.simulate._noise import add_noise, homoglyphs, paraphrase, zero_width
from guardrail.simulate._rng import derive_seed

_ZW = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")


# ------------------------------------------------------------------------------------- request shapes
def _text(x: Any) -> bool:
    return isinstance(x, str) and x != ""


def _check_chat(body: dict[str, Any]) -> str:
    assert _text(body["model"]) and isinstance(body["messages"], list) and body["messages"]
    last_user = ""
    for m in body["messages"]:
        assert m["role"] in {"system", "developer", "user", "assistant", "tool"}
        if m["role"] == "tool":
            assert _text(m["tool_call_id"]) and isinstance(m["content"], str)
        elif m["role"] == "assistant" and m["content"] is None:
            for call in m["tool_calls"]:
                assert call["type"] == "function" and isinstance(
                    json.loads(call["function"]["arguments"]), dict
                )
        elif isinstance(m["content"], list):
            assert all(p["type"] == "text" and _text(p["text"]) for p in m["content"])
        else:
            assert _text(m["content"])
        if m["role"] == "user":
            last_user = m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
    return last_user


def _check_responses(body: dict[str, Any]) -> str:
    assert _text(body["model"])
    if "instructions" in body:
        assert _text(body["instructions"])
    if isinstance(body["input"], str):
        assert _text(body["input"])
        return str(body["input"])
    last_user = ""
    for item in body["input"]:
        if item.get("type") == "function_call":
            assert isinstance(json.loads(item["arguments"]), dict) and _text(item["call_id"])
        elif item.get("type") == "function_call_output":
            assert isinstance(item["output"], str)
        else:
            assert item["role"] in {"user", "assistant"}
            kind = "input_text" if item["role"] == "user" else "output_text"
            assert all(p["type"] == kind and _text(p["text"]) for p in item["content"])
            if item["role"] == "user":
                last_user = item["content"][0]["text"]
    return last_user


def _check_anthropic(body: dict[str, Any]) -> str:
    assert _text(body["model"]) and isinstance(body["max_tokens"], int) and body["max_tokens"] > 0
    if "system" in body:
        system = body["system"]
        assert _text(system) or all(b["type"] == "text" and _text(b["text"]) for b in system)
    last_user = ""
    for m in body["messages"]:
        assert m["role"] in {"user", "assistant"}
        if isinstance(m["content"], str):
            assert _text(m["content"])
            if m["role"] == "user":
                last_user = m["content"]
            continue
        for block in m["content"]:
            assert block["type"] in {"text", "tool_use", "tool_result"}
            if block["type"] == "text":
                assert _text(block["text"])
                if m["role"] == "user":
                    last_user = block["text"]
    assert body["messages"][0]["role"] == "user"
    return last_user


def _check_gemini(path: str, body: dict[str, Any]) -> str:
    assert re.fullmatch(r"/v1beta/models/gemini-[\w.-]+:(generateContent|streamGenerateContent)", path)
    if "systemInstruction" in body:
        assert _text(body["systemInstruction"]["parts"][0]["text"])
    last_user = ""
    for c in body["contents"]:
        assert c["role"] in {"user", "model"}
        for part in c["parts"]:
            assert set(part) <= {"text", "functionCall", "functionResponse"} and len(part) == 1
            if "text" in part:
                assert _text(part["text"])
                if c["role"] == "user":
                    last_user = part["text"]
    return last_user


def check_body(path: str, body: dict[str, Any]) -> str:
    """Validate ``body`` against its API's shape; return the latest user text ("" after a tool result)."""
    if path == "/v1/chat/completions":
        return _check_chat(body)
    if path == "/v1/responses":
        return _check_responses(body)
    if path == "/v1/messages":
        return _check_anthropic(body)
    return _check_gemini(path, body)


def test_every_simulated_body_has_its_api_shape() -> None:
    sim = simulate(scale=0.05, seed=21)
    paths = set()
    for r in sim.records():
        check_body(r["path"], r["body"])
        paths.add(r["path"].split(":")[0] if r["path"].startswith("/v1beta") else r["path"])
    assert {"/v1/chat/completions", "/v1/responses", "/v1/messages"} <= paths
    assert any(p.startswith("/v1beta/models/") for p in paths)


def test_openai_chat_is_the_most_common_api() -> None:
    sim = simulate(scale=0.1, seed=2)
    paths = [r["path"] for r in sim.records()]
    chat = paths.count("/v1/chat/completions") / len(paths)
    assert chat > 0.4 and all(
        paths.count(p) / len(paths) < chat for p in set(paths) - {"/v1/chat/completions"}
    )


def test_the_extractor_reads_every_simulated_body() -> None:
    extract_module = pytest.importorskip("guardrail.extract")
    sim = simulate(scale=0.02, seed=8)
    for r in sim.records():
        prompt = extract_module.extract(r["path"], r["body"])
        assert isinstance(prompt, extract_module.Prompt), (r["path"], prompt)
        assert prompt.text


_TURNS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["user", "assistant"]), st.text(min_size=1, max_size=40)),
        st.builds(ToolStep, st.just("call_1"), st.sampled_from(["run_shell", "search"]),
                  st.fixed_dictionaries({"arg": st.text(max_size=10)}), st.text(max_size=30)),
    ),
    max_size=5,
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(api=st.sampled_from(APIS), seed=st.integers(0, 10_000), system=st.text(max_size=30), turns=_TURNS)
def test_render_always_produces_a_valid_shape(api: str, seed: int, system: str, turns: list[Turn]) -> None:
    client = Client.pick(random.Random(seed), api)
    full: list[Turn] = [("user", "first question"), *turns]
    path, body = render(client, system, full)
    if not system:
        assert not any(k in body for k in ("instructions", "system", "systemInstruction"))
    json.dumps(body)
    check_body(path, body)


# -------------------------------------------------------------------------------------------- noise
@settings(max_examples=80, deadline=None)
@given(text=st.text(max_size=200), seed=st.integers(0, 2**32))
def test_zero_width_only_inserts_invisible_characters(text: str, seed: int) -> None:
    noisy = zero_width(random.Random(seed), _ZW.sub("", text), rate=0.1)
    assert _ZW.sub("", noisy) == _ZW.sub("", text)


@settings(max_examples=80, deadline=None)
@given(text=st.text(alphabet="abcdeopxysiABETO .,", max_size=200), seed=st.integers(0, 2**32))
def test_homoglyphs_keep_length_and_only_swap_look_alikes(text: str, seed: int) -> None:
    noisy = homoglyphs(random.Random(seed), text, rate=0.5)
    assert len(noisy) == len(text)
    assert all(a == b or (a.isascii() and not b.isascii()) for a, b in zip(text, noisy, strict=True))


def test_paraphrase_swaps_known_words_only() -> None:
    text = "Solve the problem and show every step. Unrelated words stay."
    out = paraphrase(random.Random(1), text, rate=1.0)
    assert "problem" not in out and "Solve" not in out and out.endswith("Unrelated words stay.")


def test_noise_level_zero_is_identity() -> None:
    assert add_noise(random.Random(0), "Task: add two numbers.", 0.0) == "Task: add two numbers."


# -------------------------------------------------------------------------------------------- clock
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 300),
    seed=st.integers(0, 2**32),
    bounds=st.tuples(st.floats(0, WINDOW), st.floats(0, WINDOW)).map(sorted),
    tz=st.sampled_from([-8.0, 0.0, 5.5, 9.0]),
    kind=st.sampled_from(["flat", "human", "office"]),
)
def test_sorted_times_are_sorted_counted_and_bounded(
    n: int, seed: int, bounds: list[float], tz: float, kind: str
) -> None:
    profile = {"flat": flat_profile(), "human": human_profile(tz), "office": office_profile(tz)}[kind]
    start, end = bounds
    times = list(sorted_times(random.Random(seed), n, profile, start, end))
    assert len(times) == n
    assert times == sorted(times)
    assert all(start <= t <= end for t in times)


def test_human_profile_sleeps_at_night() -> None:
    times = list(sorted_times(random.Random(0), 5000, human_profile(0.0)))
    hours = [int(t // 3600) % 24 for t in times]
    night = sum(3 <= h < 6 for h in hours) / 3
    afternoon = sum(14 <= h < 17 for h in hours) / 3
    assert night * 5 < afternoon


# ----------------------------------------------------------------------------------- addresses, seeds
def test_addresses_are_valid_and_pools_are_ranges() -> None:
    rng = random.Random(3)
    pool = proxy_pool(rng, 30)
    for r in pool:
        ipaddress.ip_address(r.host(rng))
    world = World(rng, 0.1)
    homes = [HomeAddress(rng, world) for _ in range(200)]
    for h in homes:
        ipaddress.ip_address(h.pick(rng))


def test_derived_seeds_are_stable_constants() -> None:
    # A fixed value: derived seeds must not depend on the process (no salted hash()).
    assert derive_seed(0, "organic") == derive_seed(0, "organic") != derive_seed(1, "organic")
    assert derive_seed(0, "a", "b") != derive_seed(0, "ab")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 500), mean=st.floats(0.5, 20.0), seed=st.integers(0, 2**32))
def test_sessions_partition_the_requests(n: int, mean: float, seed: int) -> None:
    sizes = sessions(random.Random(seed), n, mean)
    assert sum(sizes) == n and all(s >= 1 for s in sizes)
