"""A toy "model" speaking the OpenAI and Anthropic wire formats, shared by the FastAPI and Flask apps.

It answers with a few paragraphs of prose (80+ words) that vary with the prompt yet are deterministic for a
given prompt (seeded by its SHA-256), with a code block when asked for code. Enough to exercise the whole
path (bodies, streaming, usage) without a GPU. Framework-neutral: functions take the parsed JSON body and
return a JSON-able dict, or an iterator of server-sent-event strings; ``answer`` serves one route from the
raw body, so the FastAPI and Flask apps are thin wrappers.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

from guardrail.adapters import settings_from_env

MODEL = "toy-1"

_OPENERS = (
    "Here is a careful answer about {topic}.",
    "Let us think about {topic} step by step.",
    "Good question: {topic} has a few sides worth separating.",
    "In short, {topic} comes down to a handful of ideas.",
)
_SENTENCES = (
    "The first thing to notice is that the simplest explanation usually covers most of the cases.",
    "A useful habit is to write the assumptions down before drawing any conclusion from them.",
    "Small examples make the general rule much easier to see and to check.",
    "Where the evidence is thin, it is better to say so than to guess with confidence.",
    "Most practical systems trade a little accuracy for a great deal of simplicity.",
    "It helps to compare the expected cost of being wrong in each direction.",
    "History shows that the details matter more than the slogans around them.",
    "Measuring before optimising saves time that would otherwise go to the wrong problem.",
    "The boundary cases are where a definition shows whether it was well chosen.",
    "A second opinion from a different angle often reveals what the first one missed.",
    "Clear names and short steps make an argument easy to follow and to verify.",
    "When two goals conflict, stating the priority explicitly avoids endless debate.",
    "The same pattern appears in many fields, from engineering to cooking.",
    "Testing the idea on a tiny case first is cheaper than fixing a large mistake later.",
    "Nothing here requires special tools; patience and a notebook go a long way.",
    "Finally, revisit the conclusion after a pause, because fresh eyes catch errors.",
)
_CLOSERS = (
    "I hope this helps you take the next step with {topic}.",
    "That is the core of it; the rest is practice with {topic}.",
    "If you want, we can go deeper into any part of {topic}.",
)
#: A request for code: the words people use for it, and the names of common languages and tools.
_CODE_WORDS = re.compile(
    r"\b(code|coding|function|snippet|script|program|implement|algorithm|regex|python|java|javascript|js|"
    r"typescript|rust|golang|c\+\+|cpp|c#|ruby|php|swift|kotlin|scala|sql|bash|shell|powershell|html|css)"
    r"(?![\w+#])|代码|函数|程序|脚本|コード|関数|코드|함수",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")


def _text(content: Any) -> str:
    """Text of an OpenAI / Anthropic message content: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return ""


def prompt_of(body: Mapping[str, Any], api: str = "chat") -> str:
    """The latest user text of a body, read where ``api`` puts it, as the real API does ("" when none):
    ``messages`` for chat completions and Anthropic messages, ``input`` for responses, ``contents`` for
    Gemini. A field of another API's shape is ignored, as the real APIs ignore or refuse it."""
    if api == "gemini":
        contents = body.get("contents")
        if isinstance(contents, list):
            for item in reversed(contents):
                if isinstance(item, Mapping) and item.get("role", "user") == "user":
                    parts = item.get("parts")
                    return _text(parts if isinstance(parts, list) else [])
        return ""
    if api == "responses":
        value = body.get("input")
        if isinstance(value, str):
            return value
        items = value if isinstance(value, list) else []
    else:
        messages = body.get("messages")
        items = messages if isinstance(messages, list) else []
    for item in reversed(items):
        if isinstance(item, Mapping) and item.get("role", "user") == "user" and "content" in item:
            return _text(item.get("content"))
    return ""


def reply(prompt: str) -> str:
    """Deterministic prose for ``prompt``: three paragraphs, plus a code block when code is asked for."""
    seed = int.from_bytes(hashlib.sha256(prompt.encode("utf-8", "replace")).digest()[:8], "big")
    rng = random.Random(seed)
    words = _WORD.findall(prompt)
    topic = " ".join(sorted(set(words), key=lambda w: (-len(w), w))[:2]) if words else "your question"
    paragraphs = []
    for i in range(3):
        sentences = rng.sample(_SENTENCES, 4)
        if i == 0:
            sentences.insert(0, rng.choice(_OPENERS).format(topic=topic))
        if i == 2:
            sentences.append(rng.choice(_CLOSERS).format(topic=topic))
        paragraphs.append(" ".join(sentences))
    if _CODE_WORDS.search(prompt):
        name = (words[0].lower() if words else "answer").replace("-", "_").replace("'", "")
        paragraphs.insert(
            2,
            f"```python\ndef {name}(values):\n    total = 0\n    for v in values:\n        total += v\n"
            f"    return total / max(1, len(values))\n```",
        )
    return "\n\n".join(paragraphs)


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer (about four characters per token)."""
    return max(1, (len(text) + 3) // 4)


def _pieces(text: str, words_per_piece: int = 8) -> Iterator[str]:
    tokens = re.split(r"(\s+)", text)
    for i in range(0, len(tokens), words_per_piece * 2):
        yield "".join(tokens[i : i + words_per_piece * 2])


def _sse(data: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"


def _ident(prefix: str, prompt: str) -> str:
    return f"{prefix}-{hashlib.sha256(prompt.encode('utf-8', 'replace')).hexdigest()[:24]}"


# -- OpenAI chat completions -----------------------------------------------------------------------


def chat_completion(body: Mapping[str, Any]) -> dict[str, Any]:
    prompt = prompt_of(body, "chat")
    text = reply(prompt)
    prompt_tokens, completion_tokens = count_tokens(prompt), count_tokens(text)
    return {
        "id": _ident("chatcmpl", prompt),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model") or MODEL),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def chat_completion_stream(body: Mapping[str, Any]) -> Iterator[str]:
    prompt = prompt_of(body, "chat")
    text = reply(prompt)
    ident, created, model = _ident("chatcmpl", prompt), int(time.time()), str(body.get("model") or MODEL)
    base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
    yield _sse(
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
    )
    for piece in _pieces(text):
        yield _sse({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    options = body.get("stream_options")
    if isinstance(options, Mapping) and options.get("include_usage"):
        p, c = count_tokens(prompt), count_tokens(text)
        usage = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        yield _sse({**base, "choices": [], "usage": usage})
    yield "data: [DONE]\n\n"


# -- OpenAI responses ------------------------------------------------------------------------------


def response(body: Mapping[str, Any]) -> dict[str, Any]:
    prompt = prompt_of(body, "responses")
    text = reply(prompt)
    p, c = count_tokens(prompt), count_tokens(text)
    ident = _ident("resp", prompt)
    return {
        "id": ident,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": str(body.get("model") or MODEL),
        "output": [
            {
                "type": "message",
                "id": _ident("msg", prompt),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": p,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": c,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": p + c,
        },
    }


def response_stream(body: Mapping[str, Any]) -> Iterator[str]:
    """The Responses API's streamed events for :func:`response`, usage in ``response.completed``."""
    done = response(body)
    item = done["output"][0]
    text = item["content"][0]["text"]
    seq = 0

    def event(kind: str, **fields: Any) -> str:
        nonlocal seq
        seq += 1
        return _sse({"type": kind, "sequence_number": seq - 1, **fields}, kind)

    started = {**done, "status": "in_progress", "output": [], "usage": None}
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    yield event(
        "response.output_item.added", output_index=0, item={**item, "status": "in_progress", "content": []}
    )

    def in_part(kind: str, **fields: Any) -> str:  # an event about the message's one text part
        return event(kind, item_id=item["id"], output_index=0, content_index=0, **fields)

    yield in_part("response.content_part.added", part={"type": "output_text", "text": "", "annotations": []})
    for piece in _pieces(text):
        yield in_part("response.output_text.delta", delta=piece, logprobs=[])
    yield in_part("response.output_text.done", text=text, logprobs=[])
    yield in_part("response.content_part.done", part=item["content"][0])
    yield event("response.output_item.done", output_index=0, item=item)
    yield event("response.completed", response=done)


# -- Anthropic messages ----------------------------------------------------------------------------


def message(body: Mapping[str, Any]) -> dict[str, Any]:
    prompt = prompt_of(body, "messages")
    text = reply(prompt)
    return {
        "id": _ident("msg", prompt),
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model") or MODEL),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": count_tokens(prompt), "output_tokens": count_tokens(text)},
    }


def message_stream(body: Mapping[str, Any]) -> Iterator[str]:
    prompt = prompt_of(body, "messages")
    text = reply(prompt)
    start = message(body)
    start["content"] = []
    start["stop_reason"] = None
    start["usage"] = {"input_tokens": count_tokens(prompt), "output_tokens": 1}
    yield _sse({"type": "message_start", "message": start}, "message_start")
    yield _sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start",
    )
    for piece in _pieces(text):
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        yield _sse(delta, "content_block_delta")
    yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    yield _sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": count_tokens(text)},
        },
        "message_delta",
    )
    yield _sse({"type": "message_stop"}, "message_stop")


# -- Gemini generateContent -------------------------------------------------------------------------


def _gemini_chunk(
    text: str, model: str, prompt_tokens: int, output_tokens: int, final: bool
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens,
        },
        "modelVersion": model,
    }


def generate_content(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    prompt = prompt_of(body, "gemini")
    text = reply(prompt)
    return _gemini_chunk(text, model, count_tokens(prompt), count_tokens(text), final=True)


def generate_content_stream(body: Mapping[str, Any], model: str) -> Iterator[str]:
    """``streamGenerateContent?alt=sse``: one GenerateContentResponse per event, usage on every chunk."""
    prompt = prompt_of(body, "gemini")
    text = reply(prompt)
    pieces = list(_pieces(text))
    sent = ""
    for i, piece in enumerate(pieces):
        sent += piece
        yield _sse(
            _gemini_chunk(piece, model, count_tokens(prompt), count_tokens(sent), i == len(pieces) - 1)
        )


def gemini_error(message_text: str) -> dict[str, Any]:
    return {"error": {"code": 400, "message": message_text, "status": "INVALID_ARGUMENT"}}


# -- errors ----------------------------------------------------------------------------------------


def openai_error(message_text: str) -> dict[str, Any]:
    return {"error": {"message": message_text, "type": "invalid_request_error", "param": None, "code": None}}


def anthropic_error(message_text: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message_text}}


def parse(raw: bytes) -> Mapping[str, Any] | None:
    """The JSON object of a request body, or ``None`` when it is not one."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# -- one route, framework-neutral ------------------------------------------------------------------

ROUTES = ("chat", "responses", "messages", "gemini")
_ERRORS = {"chat": openai_error, "responses": openai_error, "messages": anthropic_error}


def answer(route: str, raw: bytes, model_action: str = "") -> tuple[int, dict[str, Any] | Iterator[str]]:
    """The reply to one POST: ``(status, JSON object)``, or ``(200, server-sent events)`` when streamed.

    ``route`` is one of ``ROUTES``; ``model_action`` is Gemini's ``{model}:{action}`` path segment. The
    FastAPI and Flask apps only wrap the result in their own response types, so both answer alike.
    """
    body = parse(raw)
    if route == "gemini":
        model, _, action = model_action.partition(":")
        if body is None or action not in ("generateContent", "streamGenerateContent"):
            return 400, gemini_error("expected a JSON object and :generateContent")
        if action == "streamGenerateContent":
            return 200, generate_content_stream(body, model)
        return 200, generate_content(body, model)
    if body is None:
        return 400, _ERRORS[route]("body must be a JSON object")
    stream = bool(body.get("stream"))
    if route == "responses":
        return 200, response_stream(body) if stream else response(body)
    if route == "chat":
        return 200, chat_completion_stream(body) if stream else chat_completion(body)
    return 200, message_stream(body) if stream else message(body)


def middleware_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``GUARDRAIL_*`` environment's middleware options, overridden by ``options``."""
    settings = settings_from_env()
    if "guard" in options:
        settings.pop("storage", None)  # a given guard brings its own storage
    settings.update(options)
    return settings
