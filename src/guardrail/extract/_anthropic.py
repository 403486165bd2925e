"""Anthropic Messages (``POST /v1/messages``), also as Bedrock/Vertex ``invoke`` bodies carry it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._build import Builder, as_count, as_model, get_bool, parts_text
from ._model import NoPrompt, Prompt

__all__ = ["messages"]


def messages(body: Mapping[str, Any], max_chars: int, model_hint: str | None = None) -> Prompt | NoPrompt:
    """System string or text blocks; message content as a string or blocks.

    ``tool_result`` blocks ride in user messages but are tool output, not what the person typed, so
    they become tool turns (placed before the message's own text, as the API requires them first);
    the latest user turn is then the latest human text.
    """
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return NoPrompt("Anthropic body has no 'messages' list")
    b = Builder()
    b.add_system(parts_text(body.get("system")))
    for msg in b.split(msgs)[1]:  # no system text among the messages: the older ones are not read
        if not isinstance(msg, dict):
            continue
        role = msg.get("role")
        if role not in ("user", "assistant"):
            continue
        content = msg.get("content")
        if isinstance(content, list):
            _blocks(b, role, content)
        else:
            b.add_turn(role, content if isinstance(content, str) else "")
    return b.finish(
        "anthropic.messages",
        model=as_model(body.get("model")) or model_hint,
        max_output_tokens=as_count(body.get("max_tokens")),
        stream=get_bool(body, "stream"),
        max_chars=max_chars,
    )


def _blocks(b: Builder, role: str, blocks: list[Any]) -> None:
    texts: list[str] = []
    tools: list[str] = []
    for block in blocks:
        if isinstance(block, str):
            texts.append(block)
            continue
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" or kind is None:
            text = block.get("text")
            if isinstance(text, str):
                texts.append(text)
        elif kind == "tool_result":
            tools.append(parts_text(block.get("content")))
        elif kind == "document":
            source = block.get("source")
            if isinstance(source, dict):
                if source.get("type") == "text" and isinstance(source.get("data"), str):
                    texts.append(source["data"])
                elif source.get("type") == "content":
                    texts.append(parts_text(source.get("content")))
            if isinstance(block.get("text"), str):
                texts.append(block["text"])  # a document given as text: read, as a lenient server may
        elif isinstance(block.get("text"), str):
            texts.append(block["text"])  # a block of another type with text: read, as a lenient server may
        # image, tool_use, thinking, redacted_thinking, ...: not prompt text.
    for t in tools:
        b.add_turn("tool", t)
    if texts or not tools:
        b.add_turn(role, texts[0] if len(texts) == 1 else "\n".join(texts))
