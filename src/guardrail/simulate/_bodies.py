"""Request bodies in each provider API's real shape.

A prompt is built as a system text plus a conversation (user and assistant turns, agent tool steps); a
:class:`Client` (one per account, as an SDK is) renders it as an OpenAI chat / responses, Anthropic messages
or Gemini ``generateContent`` request with that client's habits (content as a string or as parts, system vs
developer role, streaming, token limits).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, TypeAlias

from guardrail.simulate._rng import random_id, weighted

API_CHAT = "openai.chat"
API_RESPONSES = "openai.responses"
API_ANTHROPIC = "anthropic.messages"
API_GEMINI = "gemini"
APIS = (API_CHAT, API_RESPONSES, API_ANTHROPIC, API_GEMINI)
API_MIX = ((API_CHAT, 0.62), (API_ANTHROPIC, 0.16), (API_RESPONSES, 0.12), (API_GEMINI, 0.10))

_MODELS = {
    API_CHAT: (
        ("gpt-4o", 0.35),
        ("gpt-4o-mini", 0.3),
        ("gpt-4.1", 0.2),
        ("o4-mini", 0.1),
        ("gpt-4.1-mini", 0.05),
    ),
    API_RESPONSES: (("gpt-4.1", 0.4), ("gpt-4o", 0.3), ("o3", 0.2), ("gpt-4.1-mini", 0.1)),
    API_ANTHROPIC: (("claude-sonnet-4-5", 0.5), ("claude-haiku-4-5", 0.3), ("claude-opus-4-1", 0.2)),
    API_GEMINI: (("gemini-2.5-pro", 0.5), ("gemini-2.5-flash", 0.5)),
}


@dataclass(frozen=True, slots=True)
class ToolStep:
    """One agent tool call and its output (rendered as the API's own tool-call shapes)."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    output: str


Turn: TypeAlias = "tuple[str, str] | ToolStep"  # ("user" | "assistant", text) or a tool step


@dataclass(frozen=True, slots=True)
class Client:
    """An account's API client: which API and model, and how its SDK shapes requests."""

    api: str
    model: str
    parts: bool  # content as a list of typed parts rather than a plain string
    developer_role: bool  # OpenAI chat: "developer" instead of "system"
    stream: bool
    max_tokens: int | None
    temperature: float | None

    @classmethod
    def pick(cls, rng: random.Random, api: str | None = None) -> Client:
        """A client drawn from the usual mix of APIs, models and SDK habits."""
        api = api or weighted(rng, API_MIX)
        return cls(
            api=api,
            model=weighted(rng, _MODELS[api]),
            parts=rng.random() < 0.25,
            developer_role=rng.random() < 0.2,
            stream=rng.random() < 0.4,
            max_tokens=rng.choice((None, 512, 1024, 2048, 4096, 8192))
            if api != API_ANTHROPIC
            else rng.choice((1024, 2048, 4096, 8192, 16000)),
            temperature=rng.choice((None, None, 0.0, 0.2, 0.7, 1.0)),
        )


def render(client: Client, system: str, turns: list[Turn]) -> tuple[str, dict[str, Any]]:
    """The (path, body) of one request carrying ``system`` and ``turns`` as ``client`` sends it."""
    if client.api == API_CHAT:
        return "/v1/chat/completions", _chat(client, system, turns)
    if client.api == API_RESPONSES:
        return "/v1/responses", _responses(client, system, turns)
    if client.api == API_ANTHROPIC:
        return "/v1/messages", _anthropic(client, system, turns)
    method = "streamGenerateContent" if client.stream else "generateContent"
    return f"/v1beta/models/{client.model}:{method}", _gemini(client, system, turns)


def _tool_schema(names: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "name": n,
            "description": f"Run the {n} tool.",
            "parameters": {"type": "object", "properties": {"arg": {"type": "string"}}},
        }
        for n in names
    ]


def _tool_names(turns: list[Turn]) -> list[str]:
    names: list[str] = []
    for t in turns:
        if isinstance(t, ToolStep) and t.name not in names:
            names.append(t.name)
    return names


def _chat(client: Client, system: str, turns: list[Turn]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "developer" if client.developer_role else "system", "content": system})
    for t in turns:
        if isinstance(t, ToolStep):
            call = {
                "id": t.call_id,
                "type": "function",
                "function": {"name": t.name, "arguments": json.dumps(t.arguments)},
            }
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": t.call_id, "content": t.output})
        else:
            role, text = t
            content: Any = [{"type": "text", "text": text}] if client.parts and role == "user" else text
            messages.append({"role": role, "content": content})
    body: dict[str, Any] = {"model": client.model, "messages": messages}
    names = _tool_names(turns)
    if names:
        body["tools"] = [{"type": "function", "function": s} for s in _tool_schema(names)]
    if client.max_tokens is not None:
        body["max_completion_tokens" if client.developer_role else "max_tokens"] = client.max_tokens
    if client.temperature is not None:
        body["temperature"] = client.temperature
    if client.stream:
        body["stream"] = True
    return body


def _responses(client: Client, system: str, turns: list[Turn]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": client.model}
    if system:
        body["instructions"] = system
    if len(turns) == 1 and not isinstance(turns[0], ToolStep) and not client.parts:
        body["input"] = turns[0][1]
    else:
        items: list[dict[str, Any]] = []
        for t in turns:
            if isinstance(t, ToolStep):
                items.append(
                    {
                        "type": "function_call",
                        "call_id": t.call_id,
                        "name": t.name,
                        "arguments": json.dumps(t.arguments),
                    }
                )
                items.append({"type": "function_call_output", "call_id": t.call_id, "output": t.output})
            else:
                role, text = t
                kind = "input_text" if role == "user" else "output_text"
                items.append({"role": role, "content": [{"type": kind, "text": text}]})
        body["input"] = items
    names = _tool_names(turns)
    if names:
        body["tools"] = [{"type": "function", **s} for s in _tool_schema(names)]
    if client.max_tokens is not None:
        body["max_output_tokens"] = client.max_tokens
    if client.temperature is not None:
        body["temperature"] = client.temperature
    if client.stream:
        body["stream"] = True
    return body


def _anthropic(client: Client, system: str, turns: list[Turn]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for t in turns:
        if isinstance(t, ToolStep):
            messages.append(
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": t.call_id, "name": t.name, "input": t.arguments}],
                }
            )
            messages.append(
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": t.call_id, "content": t.output}],
                }
            )
        else:
            role, text = t
            content: Any = [{"type": "text", "text": text}] if client.parts else text
            messages.append({"role": role, "content": content})
    body: dict[str, Any] = {"model": client.model, "max_tokens": client.max_tokens or 1024}
    if system:
        body["system"] = [{"type": "text", "text": system}] if client.parts else system
    body["messages"] = messages
    names = _tool_names(turns)
    if names:
        body["tools"] = [
            {"name": s["name"], "description": s["description"], "input_schema": s["parameters"]}
            for s in _tool_schema(names)
        ]
    if client.temperature is not None:
        body["temperature"] = client.temperature
    if client.stream:
        body["stream"] = True
    return body


def _gemini(client: Client, system: str, turns: list[Turn]) -> dict[str, Any]:
    contents: list[dict[str, Any]] = []
    for t in turns:
        if isinstance(t, ToolStep):
            contents.append(
                {"role": "model", "parts": [{"functionCall": {"name": t.name, "args": t.arguments}}]}
            )
            contents.append(
                {
                    "role": "user",
                    "parts": [{"functionResponse": {"name": t.name, "response": {"content": t.output}}}],
                }
            )
        else:
            role, text = t
            contents.append({"role": "model" if role == "assistant" else "user", "parts": [{"text": text}]})
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    names = _tool_names(turns)
    if names:
        body["tools"] = [{"functionDeclarations": _tool_schema(names)}]
    config: dict[str, Any] = {}
    if client.max_tokens is not None:
        config["maxOutputTokens"] = client.max_tokens
    if client.temperature is not None:
        config["temperature"] = client.temperature
    if config:
        body["generationConfig"] = config
    return body


def new_call_id(rng: random.Random, api: str) -> str:
    """A tool-call id in the style of ``api``."""
    if api == API_ANTHROPIC:
        return "toolu_" + random_id(rng, 24, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    return "call_" + random_id(rng, 24, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
