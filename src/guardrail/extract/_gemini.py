"""Google Gemini ``generateContent`` / ``streamGenerateContent`` (AI Studio and Vertex AI paths)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._build import Builder, as_count, as_model, get_bool, times
from ._model import NoPrompt, Prompt

__all__ = ["generate_content"]

_ROLES = {"user": "user", "model": "assistant", "function": "tool", "tool": "tool"}


def generate_content(
    body: Mapping[str, Any], max_chars: int, model_hint: str | None = None, stream: bool = False
) -> Prompt | NoPrompt:
    """``contents[].parts[].text`` plus ``systemInstruction``; model and streaming come from the path."""
    contents = body.get("contents")
    if isinstance(contents, dict):  # a lone Content: accepted by some clients, harmless to read
        contents = [contents]
    if not isinstance(contents, list):
        return NoPrompt("Gemini body has no 'contents' list")
    b = Builder()
    system = body.get("systemInstruction", body.get("system_instruction"))
    if isinstance(system, str):
        b.add_system(system)
    elif isinstance(system, dict):
        b.add_system(_parts(system.get("parts"), [], thoughts=True)[0])
    for content in b.split(contents)[1]:  # system text is systemInstruction: the older are not read
        if not isinstance(content, dict):
            continue
        raw_role = content.get("role")
        role = _ROLES.get(raw_role, "user") if isinstance(raw_role, str) else "user"
        tools: list[str] = []
        text, has_text = _parts(content.get("parts"), tools, thoughts=role != "assistant")
        for t in tools:
            b.add_turn("tool", t)
        if has_text or not tools:
            b.add_turn(role, text)
    config = body.get("generationConfig", body.get("generation_config"))
    limit = count = None
    if isinstance(config, dict):
        limit = as_count(config.get("maxOutputTokens", config.get("max_output_tokens")))
        count = config.get("candidateCount", config.get("candidate_count"))
    return b.finish(
        "gemini",
        model=model_hint or as_model(body.get("model")),
        max_output_tokens=times(limit, count),
        stream=stream or get_bool(body, "stream"),
        max_chars=max_chars,
    )


def _parts(parts: object, tools: list[str], *, thoughts: bool) -> tuple[str, bool]:
    """Join the text parts (bare strings too); function responses go to ``tools``. "thought" parts are the
    model's own and skipped in its turns; elsewhere (``thoughts``) they are read like any text, since only
    the model writes real ones and a client could otherwise hide its prompt behind the flag."""
    if isinstance(parts, dict):
        parts = [parts]
    if not isinstance(parts, list):
        return "", False
    texts: list[str] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            continue
        text = part.get("text")
        if isinstance(text, str):
            if thoughts or part.get("thought") is not True:
                texts.append(text)
            continue
        response = part.get("functionResponse", part.get("function_response"))
        if isinstance(response, dict):
            payload = response.get("response")
            # One level of string values (e.g. {"output": "..."}): tool output the model will read.
            if isinstance(payload, dict):
                tools.append("\n".join(v for v in payload.values() if isinstance(v, str)))
            else:
                tools.append("")
    return (texts[0] if len(texts) == 1 else "\n".join(texts)), bool(texts)
