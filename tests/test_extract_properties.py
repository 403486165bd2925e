"""Property tests: ``extract`` is total, bounded and consistent on arbitrary input."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.extract import NoPrompt, Prompt, estimate_tokens, extract

PATHS = st.sampled_from(
    [
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/completions",
        "/v1/messages",
        "/v1beta/models/gemini-pro:generateContent",
        "/v1beta/models/gemini-pro:streamGenerateContent?alt=sse",
        "/model/x/invoke",
        "/unknown",
        "",
    ]
) | st.text(max_size=40)

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)
KEYS = st.sampled_from(
    [
        "messages",
        "input",
        "prompt",
        "contents",
        "system",
        "instructions",
        "systemInstruction",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "generationConfig",
        "n",
        "best_of",
        "stream",
        "model",
        "role",
        "content",
        "parts",
        "text",
        "type",
        "output",
        "source",
    ]
)
ROLES = st.sampled_from(["user", "assistant", "system", "developer", "tool", "model", "function", "x"])
TYPES = st.sampled_from(
    [
        "text",
        "input_text",
        "output_text",
        "image_url",
        "tool_result",
        "tool_use",
        "function_call_output",
        "message",
    ]
)
# JSON biased towards the shapes the readers look at, so the walk goes deep into them.
SHAPED = st.recursive(
    SCALARS | ROLES | TYPES,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=40,
)
BODIES = st.dictionaries(KEYS, SHAPED, max_size=6)
BUDGETS = st.integers(min_value=-3, max_value=300)


def check(out: Prompt | NoPrompt, max_chars: int) -> None:
    if isinstance(out, NoPrompt):
        assert isinstance(out.reason, str) and out.reason
        assert not out.reason.startswith("extraction failed"), out.reason  # the safety net never fires
        return
    assert isinstance(out, Prompt)
    total = len(out.system) + sum(len(t.text) for t in out.turns)
    assert total <= max(max_chars, 0)
    assert all(t.role in ("user", "assistant", "tool") for t in out.turns)
    users = [t.text for t in out.turns if t.role == "user"]
    assert out.user == (users[-1] if users else "")
    out.text.encode("utf-8")  # no lone surrogates survive
    assert out.max_output_tokens is None or out.max_output_tokens >= 0
    assert isinstance(out.stream, bool) and isinstance(out.truncated, bool)
    assert out.model is None or (isinstance(out.model, str) and len(out.model) <= 256)


@settings(max_examples=300, deadline=None)
@given(PATHS, st.binary(max_size=200), BUDGETS)
def test_arbitrary_bytes(path: str, body: bytes, max_chars: int) -> None:
    check(extract(path, body, max_chars=max_chars), max_chars)


@settings(max_examples=300, deadline=None)
@given(PATHS, JSON, BUDGETS)
def test_arbitrary_json_values(path: str, value: Any, max_chars: int) -> None:
    raw = json.dumps(value)
    check(extract(path, raw.encode(), max_chars=max_chars), max_chars)
    check(extract(path, raw, max_chars=max_chars), max_chars)
    if isinstance(value, dict):
        check(extract(path, value, max_chars=max_chars), max_chars)


@settings(max_examples=250, deadline=None)
@given(PATHS, BODIES, BUDGETS)
def test_shaped_bodies(path: str, body: dict[str, Any], max_chars: int) -> None:
    out = extract(path, body, max_chars=max_chars)
    check(out, max_chars)
    # Parsing is deterministic and the raw body reads the same as the parsed one.
    assert extract(path, json.dumps(body).encode(), max_chars=max_chars) == out or _has_nan(body)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ROLES, st.text(max_size=50)), max_size=8), st.integers(0, 200))
def test_budget_is_exact_for_chat(msgs: list[tuple[str, str]], max_chars: int) -> None:
    body = {"messages": [{"role": r, "content": t} for r, t in msgs]}
    out = extract("/v1/chat/completions", body, max_chars=max_chars)
    assert isinstance(out, Prompt)
    check(out, max_chars)
    full = extract("/v1/chat/completions", body, max_chars=10**9)
    assert isinstance(full, Prompt)
    assert full.truncated is False
    fits = len(full.system) + sum(len(t.text) for t in full.turns) <= max_chars
    assert out.truncated is not fits
    if fits:
        assert out == full


@given(st.text(max_size=200))
def test_estimate_tokens_bounds(text: str) -> None:
    n = estimate_tokens(text)
    assert n >= 0
    assert (n == 0) == (text == "")
    assert n <= 2 * len(text)  # at most two per character (4-byte characters such as emoji)
    assert estimate_tokens(text + text) >= n


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return value != value
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    return False
