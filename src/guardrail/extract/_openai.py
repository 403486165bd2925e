"""OpenAI request formats: chat completions, responses, legacy completions.

Also what OpenAI-compatible servers (vLLM, Ollama, OpenRouter, Azure) accept in the same shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._build import Builder, as_count, as_model, get_bool, get_str, parts_text, times
from ._model import NoPrompt, Prompt

__all__ = ["chat", "completions", "responses"]

_SYSTEM = "system"
# Roles as the engine sees them; system/developer text goes to Prompt.system. Unknown roles (some
# servers accept e.g. "ipython") are kept as tool turns: part of the prompt, never the user turn.
_CHAT_ROLES = {
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
    "system": _SYSTEM,
    "developer": _SYSTEM,
}
# A tuple, not a set: ``in`` compares, so an unhashable role (a list) is no error.
_SYSTEM_NAMES = tuple(name for name, role in _CHAT_ROLES.items() if role == _SYSTEM)


def chat(body: Mapping[str, Any], max_chars: int, model_hint: str | None = None) -> Prompt | NoPrompt:
    """``POST /v1/chat/completions``: ``messages`` with string or content-part contents."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return NoPrompt("OpenAI chat body has no 'messages' list")
    b = Builder()
    older, recent = b.split(messages)
    for msg in [m for m in older if isinstance(m, dict) and m.get("role") in _SYSTEM_NAMES]:
        _message(b, msg)
    for msg in recent:
        if not isinstance(msg, dict):
            continue
        _message(b, msg)
    limit = as_count(body.get("max_completion_tokens"))
    if limit is None:
        limit = as_count(body.get("max_tokens"))
    return b.finish(
        "openai.chat",
        model=as_model(body.get("model")) or model_hint,
        max_output_tokens=times(limit, body.get("n")),
        stream=get_bool(body, "stream"),
        max_chars=max_chars,
    )


def responses(body: Mapping[str, Any], max_chars: int, model_hint: str | None = None) -> Prompt | NoPrompt:
    """``POST /v1/responses``: ``input`` (string or item list) plus ``instructions``."""
    items = body.get("input")
    b = Builder()
    b.add_system(get_str(body, "instructions"))
    if isinstance(items, str):
        b.add_turn("user", items)
    elif isinstance(items, list):
        older, recent = b.split(items)
        for item in [i for i in older if isinstance(i, dict) and i.get("role") in _SYSTEM_NAMES]:
            if item.get("type") in (None, "message"):
                _message(b, item)
        for item in recent:
            if isinstance(item, dict):
                _response_item(b, item)
    elif items is not None or "instructions" not in body:
        return NoPrompt("OpenAI responses body has no 'input' string or list")
    return b.finish(
        "openai.responses",
        model=as_model(body.get("model")) or model_hint,
        max_output_tokens=as_count(body.get("max_output_tokens")),
        stream=get_bool(body, "stream"),
        max_chars=max_chars,
    )


def _message(b: Builder, msg: Mapping[str, Any]) -> None:
    """One ``{"role", "content"}`` message (chat ``messages[]`` and responses ``input[]`` alike)."""
    role = msg.get("role")
    if not isinstance(role, str):
        return
    mapped = _CHAT_ROLES.get(role, "tool")
    text = parts_text(msg.get("content"))
    if mapped == _SYSTEM:
        b.add_system(text)
    else:
        b.add_turn(mapped, text)


def _response_item(b: Builder, item: Mapping[str, Any]) -> None:
    kind = item.get("type")
    if kind is None or kind == "message":
        _message(b, item)
    elif isinstance(kind, str) and kind.endswith("_call_output"):
        # function_call_output, custom_tool_call_output, ...: tool results fed back to the model.
        b.add_turn("tool", parts_text(item.get("output")))


def completions(body: Mapping[str, Any], max_chars: int, model_hint: str | None = None) -> Prompt | NoPrompt:
    """``POST /v1/completions``: ``prompt`` as a string or a batch of strings (token ids are refused).

    Ollama's ``/api/generate`` has the same ``prompt`` plus a top-level ``system`` string.
    """
    prompt = body.get("prompt")
    b = Builder()
    b.add_system(get_str(body, "system"))
    batch = 1
    if isinstance(prompt, str):
        b.add_turn("user", prompt)
    elif isinstance(prompt, list):
        for p in prompt:
            if isinstance(p, str):
                b.add_turn("user", p)
            elif isinstance(p, (int, list)):
                return NoPrompt("prompt is token ids, not text")
        batch = len(b.turns)
    else:
        return NoPrompt("completions body has no 'prompt' string or list")
    n, best_of = as_count(body.get("n")) or 1, as_count(body.get("best_of")) or 1
    return b.finish(
        "openai.completions",
        model=as_model(body.get("model")) or model_hint,
        max_output_tokens=times(as_count(body.get("max_tokens")), max(n, best_of), batch),
        stream=get_bool(body, "stream"),
        max_chars=max_chars,
    )
