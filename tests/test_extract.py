"""Request bodies of every supported API, read as typed prompts; hostile input never raises."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardrail.extract import NoPrompt, Prompt, Turn, estimate_tokens, extract


def ok(path: str, body: bytes | str | Mapping[str, Any], **kw: Any) -> Prompt:
    out = extract(path, body, **kw)
    assert isinstance(out, Prompt), out
    return out


def no(path: str, body: bytes | str | Mapping[str, Any], **kw: Any) -> str:
    out = extract(path, body, **kw)
    assert isinstance(out, NoPrompt), out
    assert isinstance(out.reason, str) and 0 < len(out.reason) < 120
    return out.reason


# --- OpenAI chat completions -------------------------------------------------------------------

CHAT = {
    "model": "gpt-4o-2024-08-06",
    "messages": [
        {"role": "system", "content": "You are a meticulous math tutor."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": "What is 17 * 23?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "calc", "arguments": '{"expr": "17*23"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "391"},
        {"role": "assistant", "content": "17 * 23 = 391."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Now explain it step by step."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-abc"}},
                {"type": "text", "text": "Be brief."},
            ],
        },
    ],
    "max_completion_tokens": 512,
    "stream": True,
    "temperature": 0.2,
}


def test_openai_chat_full() -> None:
    p = ok("/v1/chat/completions", json.dumps(CHAT).encode())
    assert p.api == "openai.chat"
    assert p.system == "You are a meticulous math tutor.\nAnswer in English."
    assert p.turns == (
        Turn("user", "What is 17 * 23?"),
        Turn("assistant", ""),
        Turn("tool", "391"),
        Turn("assistant", "17 * 23 = 391."),
        Turn("user", "Now explain it step by step.\nBe brief."),
    )
    assert p.user == "Now explain it step by step.\nBe brief."
    assert p.model == "gpt-4o-2024-08-06"
    assert p.max_output_tokens == 512
    assert p.stream is True
    assert p.truncated is False
    assert p.text.startswith("You are a meticulous math tutor.\nAnswer in English.\nWhat is 17 * 23?\n391\n")


def test_openai_chat_max_tokens_and_n() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100, "n": 3}
    p = ok("/v1/chat/completions", body)
    assert p.max_output_tokens == 300
    assert p.stream is False
    # max_completion_tokens wins over the deprecated max_tokens
    p = ok("/v1/chat/completions", {**body, "max_completion_tokens": 50, "n": 1})
    assert p.max_output_tokens == 50


def test_openai_chat_no_limit_and_bad_types() -> None:
    body = {
        "model": 42,
        "messages": [
            "not a message",
            {"role": 7, "content": "dropped"},
            {"role": "user", "content": 12},
            {
                "role": "user",
                "content": [None, 3, {"type": "text", "text": 5}, {"type": "text", "text": "x"}],
            },
        ],
        "max_tokens": "100",
        "stream": "yes",
    }
    p = ok("/v1/chat/completions", body)
    assert p.turns == (Turn("user", ""), Turn("user", "x"))
    assert p.model is None and p.max_output_tokens is None and p.stream is False


@pytest.mark.parametrize("value", [True, -1, 1.5, float("nan"), float("inf"), [1], None])
def test_malformed_limits_are_none(value: object) -> None:
    p = ok("/v1/chat/completions", {"messages": [], "max_tokens": value})
    assert p.max_output_tokens is None


def test_integral_float_limit_accepted() -> None:
    assert ok("/v1/chat/completions", {"messages": [], "max_tokens": 256.0}).max_output_tokens == 256


def test_openai_chat_requires_messages() -> None:
    assert "messages" in no("/v1/chat/completions", {"model": "gpt-4o"})
    assert "messages" in no("/v1/chat/completions", {"messages": "hello"})


def test_unknown_role_is_a_tool_turn_not_the_user() -> None:
    p = ok(
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "a"}, {"role": "ipython", "content": "b"}]},
    )
    assert p.turns == (Turn("user", "a"), Turn("tool", "b"))
    assert p.user == "a"


# --- OpenAI responses ----------------------------------------------------------------------------


def test_openai_responses_string_input() -> None:
    body = {
        "model": "gpt-4.1",
        "instructions": "Talk like a pirate.",
        "input": "Are semicolons optional in JS?",
    }
    p = ok("/v1/responses", body)
    assert p.api == "openai.responses"
    assert p.system == "Talk like a pirate."
    assert p.turns == (Turn("user", "Are semicolons optional in JS?"),)
    assert p.user == "Are semicolons optional in JS?"
    assert p.max_output_tokens is None


def test_openai_responses_item_list() -> None:
    body = {
        "model": "o4-mini",
        "instructions": "Be terse.",
        "input": [
            {"role": "developer", "content": "Never reveal the key."},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Weather in Paris?"}],
            },
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "c1", "output": '{"temp": 18}'},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "It is 18 C.", "annotations": []}],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "And tomorrow?"},
                    {"type": "input_image", "image_url": "https://example.com/a.png"},
                ],
            },
        ],
        "max_output_tokens": 1024,
        "stream": True,
    }
    p = ok("/openai/v1/responses", body)
    assert p.system == "Be terse.\nNever reveal the key."
    assert p.turns == (
        Turn("user", "Weather in Paris?"),
        Turn("tool", '{"temp": 18}'),
        Turn("assistant", "It is 18 C."),
        Turn("user", "And tomorrow?"),
    )
    assert p.user == "And tomorrow?"
    assert p.max_output_tokens == 1024 and p.stream is True and p.model == "o4-mini"


def test_openai_responses_bad_input() -> None:
    assert "input" in no("/v1/responses", {"model": "x", "input": 5})
    assert "input" in no("/v1/responses", {"model": "x"})
    p = ok("/v1/responses", {"instructions": "only instructions"})
    assert p.system == "only instructions" and p.turns == ()


# --- legacy completions --------------------------------------------------------------------------


def test_completions_string_and_batch() -> None:
    p = ok(
        "/v1/completions",
        {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 7},
    )
    assert p.api == "openai.completions"
    assert p.turns == (Turn("user", "Say this is a test"),) and p.user == "Say this is a test"
    assert p.max_output_tokens == 7
    p = ok("/v1/completions", {"prompt": ["Q: one", "Q: two"], "max_tokens": 10, "n": 2, "best_of": 3})
    assert p.turns == (Turn("user", "Q: one"), Turn("user", "Q: two"))
    assert p.user == "Q: two"
    assert p.max_output_tokens == 10 * 3 * 2


@pytest.mark.parametrize("prompt", [[1, 2, 3], [[1, 2], [3]], ["text", 5]])
def test_completions_token_ids(prompt: object) -> None:
    assert "token ids" in no("/v1/completions", {"prompt": prompt})


def test_completions_missing_prompt() -> None:
    assert "prompt" in no("/v1/completions", {"model": "x"})


# --- Anthropic messages ---------------------------------------------------------------------------

ANTHROPIC = {
    "model": "claude-sonnet-4-20250514",
    "max_tokens": 2048,
    "system": [
        {"type": "text", "text": "You are an expert analyst.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Cite sources."},
    ],
    "messages": [
        {"role": "user", "content": "Find the population of Lyon."},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should search.", "signature": "sig"},
                {"type": "text", "text": "Let me look that up."},
                {"type": "tool_use", "id": "tu_1", "name": "search", "input": {"q": "Lyon population"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "tu_1",
                    "content": [
                        {"type": "text", "text": "Lyon: 522,250 (2021)"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
                        },
                    ],
                },
                {"type": "text", "text": "Explain your reasoning before answering."},
            ],
        },
    ],
    "stream": True,
}


def test_anthropic_messages() -> None:
    p = ok("/v1/messages", json.dumps(ANTHROPIC))
    assert p.api == "anthropic.messages"
    assert p.system == "You are an expert analyst.\nCite sources."
    assert p.turns == (
        Turn("user", "Find the population of Lyon."),
        Turn("assistant", "Let me look that up."),
        Turn("tool", "Lyon: 522,250 (2021)"),
        Turn("user", "Explain your reasoning before answering."),
    )
    assert p.user == "Explain your reasoning before answering."
    assert p.model == "claude-sonnet-4-20250514" and p.max_output_tokens == 2048 and p.stream is True


def test_anthropic_string_system_and_tool_result_only() -> None:
    body = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 10,
        "system": "Be kind.",
        "messages": [
            {"role": "user", "content": "hello"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "42"}]},
            {"role": "user", "content": [{"type": "image", "source": {}}]},
            {"role": "system", "content": "not a valid anthropic role"},
        ],
    }
    p = ok("/anthropic/v1/messages", body)
    assert p.system == "Be kind."
    assert p.turns == (Turn("user", "hello"), Turn("tool", "42"), Turn("user", ""))
    assert p.user == ""


def test_anthropic_text_document() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "DOC"},
                    },
                    {"type": "text", "text": "Summarise."},
                ],
            }
        ]
    }
    assert ok("/v1/messages", body).user == "DOC\nSummarise."


# --- Gemini ---------------------------------------------------------------------------------------

GEMINI = {
    "systemInstruction": {"parts": [{"text": "You are a cat."}, {"text": "Your name is Neko."}]},
    "contents": [
        {"role": "user", "parts": [{"text": "Hello there"}]},
        {"role": "model", "parts": [{"text": "thinking...", "thought": True}, {"text": "Meow."}]},
        {"role": "model", "parts": [{"functionCall": {"name": "nap", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "nap", "response": {"output": "slept"}}}]},
        {
            "role": "user",
            "parts": [{"text": "Why?"}, {"inlineData": {"mimeType": "image/jpeg", "data": "AA"}}],
        },
    ],
    "generationConfig": {"maxOutputTokens": 800, "temperature": 1.0, "candidateCount": 2},
}


def test_gemini_generate_content() -> None:
    p = ok("/v1beta/models/gemini-2.5-flash:generateContent?key=REDACTED", GEMINI)
    assert p.api == "gemini"
    assert p.model == "gemini-2.5-flash"
    assert p.stream is False
    assert p.system == "You are a cat.\nYour name is Neko."
    assert p.turns == (
        Turn("user", "Hello there"),
        Turn("assistant", "Meow."),
        Turn("assistant", ""),
        Turn("tool", "slept"),
        Turn("user", "Why?"),
    )
    assert p.user == "Why?"
    assert p.max_output_tokens == 1600


def test_gemini_stream_snake_case_and_vertex_path() -> None:
    body = {
        "system_instruction": {"parts": {"text": "sys"}},
        "contents": [{"parts": [{"text": "hi"}]}],
        "generation_config": {"max_output_tokens": 5},
    }
    path = (
        "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-pro:streamGenerateContent"
    )
    p = ok(path + "?alt=sse", body)
    assert p.stream is True and p.model == "gemini-2.0-pro"
    assert p.system == "sys" and p.user == "hi" and p.max_output_tokens == 5
    assert ok("/v1beta/models/gemini-x%3AgenerateContent", body).model == "gemini-x"


def test_gemini_requires_contents() -> None:
    assert "contents" in no("/v1beta/models/gemini-pro:generateContent", {"prompt": "x"})


# --- routing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/v1/chat/completions", "openai.chat"),
        ("/openai/v1/chat/completions/", "openai.chat"),
        ("/api/v1/chat/completions?foo=bar", "openai.chat"),
        ("/openai/deployments/my-gpt4/chat/completions?api-version=2024-06-01", "openai.chat"),
        ("/api/chat", "openai.chat"),
        ("/V1/CHAT/COMPLETIONS", "openai.chat"),
    ],
)
def test_chat_routing(path: str, api: str) -> None:
    assert ok(path, {"messages": [{"role": "user", "content": "x"}]}).api == api


def test_azure_deployment_is_the_model_when_body_has_none() -> None:
    p = ok("/openai/deployments/my-gpt4/chat/completions?api-version=2024-06-01", {"messages": []})
    assert p.model == "my-gpt4"


def test_path_wins_over_body_shape() -> None:
    # An Anthropic-looking body on a chat path is read as chat (system key ignored), not re-routed.
    p = ok("/v1/chat/completions", {"system": "s", "messages": [{"role": "user", "content": "u"}]})
    assert p.api == "openai.chat" and p.system == ""


@pytest.mark.parametrize(
    ("body", "api"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "openai.chat"),
        ({"system": "s", "messages": [{"role": "user", "content": "x"}]}, "anthropic.messages"),
        ({"anthropic_version": "bedrock-2023-05-31", "messages": [], "max_tokens": 5}, "anthropic.messages"),
        ({"contents": [{"parts": [{"text": "x"}]}]}, "gemini"),
        ({"input": "x"}, "openai.responses"),
        ({"prompt": "x"}, "openai.completions"),
    ],
)
def test_sniffing_unknown_paths(body: dict[str, Any], api: str) -> None:
    assert ok("/my/custom/route", body).api == api


def test_sniffing_gives_up_with_reason() -> None:
    assert "unrecognised" in no("/my/custom/route", {"foo": 1})


def test_bedrock_invoke_path() -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 9,
        "messages": [{"role": "user", "content": "q"}],
    }
    p = ok("/model/anthropic.claude-3-haiku-20240307-v1:0/invoke-with-response-stream", body)
    assert p.api == "anthropic.messages" and p.stream is True
    assert p.model == "anthropic.claude-3-haiku-20240307-v1:0"


def test_ollama_generate_has_system() -> None:
    p = ok("/api/generate", {"model": "llama3", "system": "sys", "prompt": "why is the sky blue?"})
    assert p.system == "sys" and p.user == "why is the sky blue?"


# --- custom extractors -----------------------------------------------------------------------------


def my_extractor(path: str, body: Mapping[str, Any]) -> Prompt | NoPrompt | None:
    if not path.endswith("/ask"):
        return None
    q = body.get("question")
    if not isinstance(q, str):
        return NoPrompt("no question")
    return Prompt("custom", "", (Turn("user", q),), q, None, None, False, False)


def test_custom_extractor_first_then_builtin() -> None:
    p = ok("/ask", {"question": "hello"}, custom=my_extractor)
    assert p.api == "custom" and p.user == "hello"
    assert no("/ask", {"q": 1}, custom=my_extractor) == "no question"
    assert ok("/v1/chat/completions", {"messages": []}, custom=my_extractor).api == "openai.chat"


def test_custom_receives_clean_path_and_parsed_body() -> None:
    seen: list[tuple[str, Mapping[str, Any]]] = []

    def spy(path: str, body: Mapping[str, Any]) -> None:
        seen.append((path, body))

    ok("/v1/chat/completions?x=1", b'{"messages": []}', custom=spy)
    assert seen == [("/v1/chat/completions", {"messages": []})]


def test_custom_exceptions_and_bad_results_become_noprompt() -> None:
    def boom(path: str, body: Mapping[str, Any]) -> Prompt | None:
        raise KeyError("question")

    def wrong(path: str, body: Mapping[str, Any]) -> Any:
        return 42

    def malformed(path: str, body: Mapping[str, Any]) -> Any:
        return Prompt("custom", None, [], "", None, None, False, False)  # type: ignore[arg-type]

    assert no("/ask", {}, custom=boom) == "custom extractor raised KeyError"
    assert "int" in no("/ask", {}, custom=wrong)
    assert "malformed" in no("/ask", {}, custom=malformed)


def test_custom_prompt_is_held_to_the_budget() -> None:
    def big(path: str, body: Mapping[str, Any]) -> Prompt:
        return Prompt("custom", "s" * 100, (Turn("user", "u" * 100),), "u" * 100, None, None, False, False)

    p = ok("/x", {}, custom=big, max_chars=50)
    assert p.truncated and len(p.system) + len(p.user) <= 50 and p.turns[0].text == p.user


# --- hostile and malformed input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        ("", "empty"),
        (b"{", "invalid JSON"),
        (b'{"messages": [}', "invalid JSON at position 14"),
        (b"[1, 2]", "array"),
        (b'"just a string"', "string"),
        (b"null", "literal"),
        (b"3.5", "number"),
        (b'{"a": 1}\xff', "not valid UTF-8 at byte 8"),
        (b"\xc3\x28", "not valid UTF-8 at byte 0"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a":' * 50_000, "nested too deeply"),
        (b'{"n": 1' + b"0" * 5000 + b"}", "invalid JSON"),
        (b"\xff\xfe\x00\xd8", "invalid JSON"),  # a lone surrogate decodes (as json.loads has it)
        ('{"prompt": "x"'.encode("utf-16-le") + b"\x00", "not valid UTF-16-LE"),
    ],
)
def test_bad_bodies_give_reasons(body: bytes | str, needle: str) -> None:
    assert needle in no("/v1/chat/completions", body)


def test_non_body_types() -> None:
    assert "not bytes" in no("/v1/chat/completions", 12)  # type: ignore[arg-type]
    assert "not bytes" in no("/v1/chat/completions", None)  # type: ignore[arg-type]


def test_bom_and_utf16_are_accepted() -> None:
    raw = '{"messages": [{"role": "user", "content": "héllo 你好"}]}'
    for body in (
        raw.encode("utf-8-sig"),
        raw.encode("utf-16"),
        b"\xfe\xff" + raw.encode("utf-16-be"),
        raw.encode("utf-32"),
        raw.encode("utf-16-le"),  # no byte order mark: read as json.loads(bytes) reads it
        raw.encode("utf-16-be"),
        raw.encode("utf-32-le"),
        raw.encode("utf-32-be"),
        "\ufeff" + raw,
        bytearray(raw.encode()),
        memoryview(raw.encode()),
    ):
        assert ok("/v1/chat/completions", body).user == "héllo 你好"  # type: ignore[arg-type]


def test_a_raw_lone_surrogate_is_read_as_json_loads_reads_it() -> None:
    """``json.loads(bytes)`` (Starlette's ``request.json()``) accepts an encoded lone surrogate: so does
    the extractor, or one such byte sequence in a field the app ignores would hide the prompt from it."""
    body = b'{"messages": [{"role": "user", "content": "Explain tides."}], "user": "\xed\xa0\x80"}'
    assert json.loads(body)["user"] == "\ud800"
    assert ok("/v1/chat/completions", body).user == "Explain tides."


def test_lone_surrogates_are_replaced() -> None:
    p = ok("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "a\\ud800b \\ud83d\\ude00"}]}')
    assert p.user == "a\ufffdb \U0001f600"
    p.text.encode("utf-8")


def test_deep_nesting_inside_a_valid_body_is_ignored() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = {"content": deep}
    p = ok(
        "/v1/messages",
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": deep}]}]},
    )
    assert p.turns == (Turn("tool", ""),)


def test_cyclic_mapping_does_not_loop() -> None:
    msg: dict[str, Any] = {"role": "user"}
    msg["content"] = [msg]
    body: dict[str, Any] = {"messages": [msg]}
    body["self"] = body
    assert ok("/v1/chat/completions", body).user == ""


# --- the text budget -------------------------------------------------------------------------------


def test_giant_user_text_is_capped_keeping_head_and_tail() -> None:
    text = "HEAD " + "x" * 1_000_000 + " TAIL think step by step"
    p = ok("/v1/chat/completions", {"messages": [{"role": "user", "content": text}]}, max_chars=1000)
    assert p.truncated
    assert len(p.user) == 1000
    assert p.user.startswith("HEAD ") and p.user.endswith("TAIL think step by step")


def test_budget_protects_system_and_user_from_padded_history() -> None:
    history = [{"role": "assistant", "content": "h" * 5000} for _ in range(20)]
    body = {
        "messages": [
            {"role": "system", "content": "S" * 3000},
            *history,
            {"role": "user", "content": "U" * 3000},
        ]
    }
    p = ok("/v1/chat/completions", body, max_chars=4000)
    assert p.truncated
    assert len(p.system) == 2000 and len(p.user) == 2000
    assert len(p.turns) == 21
    assert sum(len(t.text) for t in p.turns if t.role == "assistant") == 0


def test_budget_water_fills_between_system_and_user() -> None:
    body = {"messages": [{"role": "system", "content": "S" * 100}, {"role": "user", "content": "U" * 10_000}]}
    p = ok("/v1/chat/completions", body, max_chars=1000)
    assert p.system == "S" * 100 and len(p.user) == 900


def test_budget_fills_newest_history_first() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "old" * 100},
            {"role": "assistant", "content": "new" * 10},
            {"role": "user", "content": "now"},
        ]
    }
    p = ok("/v1/chat/completions", body, max_chars=50)
    assert p.turns[1].text == "new" * 10 and p.turns[2].text == "now"
    assert len(p.turns[0].text) == 50 - 33 and p.truncated


def test_too_many_turns_keeps_the_newest() -> None:
    body = {"messages": [{"role": "user", "content": str(i)} for i in range(3000)]}
    p = ok("/v1/chat/completions", body)
    assert p.truncated and len(p.turns) == 1024 and p.user == "2999"


def test_zero_and_negative_budget() -> None:
    body = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}
    for m in (0, -5):
        p = ok("/v1/chat/completions", body, max_chars=m)
        assert p.system == "" and p.user == "" and p.truncated


def test_model_name_is_bounded() -> None:
    p = ok("/v1/chat/completions", {"model": "m" * 10_000, "messages": []})
    assert p.model is not None and len(p.model) == 256


def test_prompt_text_skips_empty_parts() -> None:
    p = Prompt(
        "x", "", (Turn("user", "a"), Turn("assistant", ""), Turn("user", "b")), "b", None, None, False, False
    )
    assert p.text == "a\nb"


# --- estimate_tokens -------------------------------------------------------------------------------


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 4000) == 1000
    assert 900 <= estimate_tokens("你" * 1000) <= 1100  # CJK: about a token per character
    assert 500 <= estimate_tokens("д" * 1000) <= 700
    assert estimate_tokens("\ud800") >= 1  # lone surrogate: no crash


# -- bodies built to cost: many messages, many containers -------------------------------------------


@pytest.mark.parametrize(
    ("path", "make"),
    [
        ("/v1/chat/completions", lambda msgs: {"messages": msgs}),
        ("/v1/responses", lambda msgs: {"input": msgs}),
        ("/v1/messages", lambda msgs: {"messages": [m for m in msgs if m["role"] != "system"]}),
    ],
)
def test_only_the_newest_messages_are_read_for_turns(path: str, make: Any) -> None:
    """A million tiny messages cost a walk of their roles: the newest MAX_TURNS give the turns (as
    before: older turns were dropped after reading), a system message among the older ones still counts
    (OpenAI), and the prompt is marked truncated."""
    from guardrail.extract._build import MAX_TURNS

    old = [{"role": "user", "content": f"old {i}"} for i in range(50_000)]
    old[7] = {"role": "system", "content": "be terse"}
    recent = [{"role": "user" if i % 2 else "assistant", "content": f"new {i}"} for i in range(MAX_TURNS)]
    prompt = extract(path, {"model": "m", **make(old + recent)})
    assert isinstance(prompt, Prompt) and prompt.truncated
    assert prompt.user == f"new {MAX_TURNS - 1}" and len(prompt.turns) == MAX_TURNS
    assert all(t.text.startswith("new") for t in prompt.turns)
    assert ("be terse" in prompt.system) is (path != "/v1/messages")
    short = extract(path, {"model": "m", **make(recent[-10:])})
    assert isinstance(short, Prompt) and not short.truncated


def test_a_body_with_too_many_arrays_and_objects_is_not_parsed() -> None:
    from guardrail.extract import MAX_CONTAINERS, too_complex

    def body(n: int) -> bytes:  # n containers in all: the object, the list, n - 2 empty arrays
        return b'{"model":"m","messages":[' + b",".join([b"[]"] * (n - 2)) + b"]}"

    assert not too_complex(body(MAX_CONTAINERS)) and too_complex(body(MAX_CONTAINERS + 1))
    assert too_complex(body(MAX_CONTAINERS + 1).decode())
    refused = extract("/v1/chat/completions", body(MAX_CONTAINERS + 1))
    assert isinstance(refused, NoPrompt) and "too complex" in refused.reason
    # Brackets inside strings (code) are not containers, escaped quotes included.
    code = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": 'x = [{"a": [1]}] \\" [' * 90_000}]}
    )
    assert not too_complex(code.encode()) and not too_complex(code)
    assert isinstance(extract("/v1/chat/completions", code.encode()), Prompt)


@given(st.lists(st.text(alphabet='[]{}"\\ab', max_size=12), max_size=30), st.integers(0, 40))
def test_container_count_ignores_strings(strings: list[str], empties: int) -> None:
    """The count is of arrays and objects the JSON really holds, whatever its strings contain."""
    from guardrail.extract import _decode

    doc = json.dumps({"s": strings, "e": [[] for _ in range(empties)]}).encode()
    real = 2 + empties + 1  # the object, the "s" list, the "e" list and its empties
    for limit in (real - 1, real):
        original = _decode.MAX_CONTAINERS
        _decode.MAX_CONTAINERS = limit
        try:
            assert _decode.too_complex(doc) is (real > limit)
            assert _decode.too_complex(doc.decode()) is (real > limit)
            cut = _decode._STRING.sub(b"", doc)  # the regex path (bodies with very many strings)
            assert cut.count(b"[") + cut.count(b"{") == real
        finally:
            _decode.MAX_CONTAINERS = original
