"""Request body -> ``Prompt | NoPrompt``: what an LLM API request asks the model.

Runs on every request, before anything else in the engine, so it is written to be cheap (one decode,
one ``json.loads``, no copies of the body's strings until the final budgeted join) and total: any
input, however malformed or hostile, yields a ``NoPrompt`` with a short reason instead of an
exception. Formats: OpenAI chat completions / responses / legacy completions, Anthropic messages,
Gemini generateContent, and a user-supplied ``Extractor`` tried first.

Routing is by path suffix, so proxies' prefixes (``/openai/v1/...``, ``/api/v1/...``) and query
strings do not matter; an unknown path falls back to recognising the body's shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from . import _anthropic, _gemini, _openai
from ._build import Builder, ambiguous_path, canonical_path, clean
from ._decode import MAX_CONTAINERS, parse_body, too_complex
from ._model import Extractor, NoPrompt, Prompt, Turn, estimate_tokens

__all__ = [
    "MAX_CONTAINERS",
    "Extractor",
    "NoPrompt",
    "Prompt",
    "Turn",
    "ambiguous_path",
    "canonical_path",
    "estimate_tokens",
    "extract",
    "too_complex",
]

_Reader = Callable[[Mapping[str, Any], int, "str | None"], "Prompt | NoPrompt"]

_GEMINI = re.compile(r"/(?:models|tunedModels)/([^/:]+):(stream)?generateContent$", re.IGNORECASE)
_AZURE_DEPLOYMENT = re.compile(r"/deployments/([^/]+)/", re.IGNORECASE)
_BEDROCK = re.compile(r"/model/([^/]+)/invoke(-with-response-stream)?$", re.IGNORECASE)

_SUFFIXES: tuple[tuple[str, _Reader], ...] = (
    ("/chat/completions", _openai.chat),
    ("/responses", _openai.responses),
    ("/completions", _openai.completions),
    ("/messages", _anthropic.messages),
    ("/api/chat", _openai.chat),  # Ollama
    ("/api/generate", _openai.completions),  # Ollama
)


def extract(
    path: str,
    body: bytes | str | Mapping[str, Any],
    *,
    max_chars: int = 100_000,
    custom: Extractor | None = None,
) -> Prompt | NoPrompt:
    """Read the prompt out of an LLM API request body.

    ``path`` is the request path (query string allowed). ``body`` is the raw body or an already
    parsed JSON object. Text beyond ``max_chars`` characters is cut (``Prompt.truncated``).
    ``custom`` is tried first and may return ``None`` to defer to the built-in formats.
    Never raises.
    """
    try:
        return _extract(path, body, max_chars, custom)
    except Exception as exc:  # a safety net: the readers are written not to need it
        return NoPrompt(f"extraction failed: {type(exc).__name__}")


def _extract(path: object, body: object, max_chars: object, custom: Extractor | None) -> Prompt | NoPrompt:
    parsed = parse_body(body)
    if isinstance(parsed, NoPrompt):
        return parsed
    limit = max_chars if isinstance(max_chars, int) and not isinstance(max_chars, bool) else 100_000
    route = _clean_path(path)
    if custom is not None:
        found = _run_custom(custom, route, parsed, limit)
        if found is not None:
            return found
    m = _GEMINI.search(route)
    if m is not None:
        return _gemini.generate_content(parsed, limit, m.group(1), stream=m.group(2) is not None)
    lowered = route.lower()
    for suffix, reader in _SUFFIXES:
        if lowered.endswith(suffix):
            d = _AZURE_DEPLOYMENT.search(route)
            return reader(parsed, limit, d.group(1) if d else None)
    m = _BEDROCK.search(route)
    if m is not None:
        found = _sniff(parsed, limit, m.group(1))
        if isinstance(found, Prompt) and m.group(2):
            found = _with_stream(found)
        return found
    return _sniff(parsed, limit, None)


def _clean_path(path: object) -> str:
    if isinstance(path, bytes):
        path = path.decode("latin-1")
    if not isinstance(path, str):
        return ""
    for sep in ("?", "#"):
        cut = path.find(sep)
        if cut >= 0:
            path = path[:cut]
    if "%" in path:
        path = unquote(path)
    if ambiguous_path(path):
        path = canonical_path(path)
    return path.rstrip("/")


def _sniff(body: Mapping[str, Any], limit: int, model_hint: str | None) -> Prompt | NoPrompt:
    """Recognise a body by its keys when the path says nothing (custom routes, gateways, Bedrock)."""
    if "contents" in body:
        return _gemini.generate_content(body, limit, model_hint)
    if isinstance(body.get("messages"), list):
        # Anthropic puts system text at top level; OpenAI in a message with role "system".
        if "system" in body or "anthropic_version" in body:
            return _anthropic.messages(body, limit, model_hint)
        return _openai.chat(body, limit, model_hint)
    if "input" in body:
        return _openai.responses(body, limit, model_hint)
    if "prompt" in body:
        return _openai.completions(body, limit, model_hint)
    return NoPrompt("unrecognised request: no 'messages', 'input', 'prompt' or 'contents'")


def _with_stream(p: Prompt) -> Prompt:
    return Prompt(p.api, p.system, p.turns, p.user, p.model, p.max_output_tokens, True, p.truncated)


def _run_custom(
    custom: Extractor, path: str, body: Mapping[str, Any], limit: int
) -> Prompt | NoPrompt | None:
    """Call the user's extractor; its failures and malformed results become NoPrompt."""
    try:
        found = custom(path, body)
    except Exception as exc:
        return NoPrompt(f"custom extractor raised {type(exc).__name__}")
    if found is None or isinstance(found, NoPrompt):
        if isinstance(found, NoPrompt) and not isinstance(found.reason, str):
            return NoPrompt("custom extractor returned a NoPrompt without a string reason")
        return found
    if not isinstance(found, Prompt):
        return NoPrompt(f"custom extractor returned {type(found).__name__}, not Prompt or NoPrompt")
    if not _well_formed(found):
        return NoPrompt("custom extractor returned a malformed Prompt")
    return _bounded(found, limit)


def _well_formed(p: Prompt) -> bool:
    return (
        isinstance(p.api, str)
        and isinstance(p.system, str)
        and isinstance(p.user, str)
        and isinstance(p.turns, tuple)
        and all(isinstance(t, Turn) and isinstance(t.role, str) and isinstance(t.text, str) for t in p.turns)
        and (p.model is None or isinstance(p.model, str))
        and (
            p.max_output_tokens is None
            or (isinstance(p.max_output_tokens, int) and not isinstance(p.max_output_tokens, bool))
        )
        and isinstance(p.stream, bool)
        and isinstance(p.truncated, bool)
    )


def _bounded(p: Prompt, limit: int) -> Prompt:
    """A custom Prompt held to the same budget and text hygiene as the built-in ones."""
    total = len(p.system) + sum(len(t.text) for t in p.turns)
    if total <= limit and len(p.user) <= limit:
        clean_user = clean(p.user)
        if (
            clean_user is p.user
            and clean(p.system) is p.system
            and all(clean(t.text) is t.text for t in p.turns)
        ):
            return p
    b = Builder()
    b.add_system(p.system)
    for t in p.turns:
        b.add_turn(t.role, t.text)
    out = b.finish(
        p.api,
        model=p.model,
        max_output_tokens=p.max_output_tokens,
        stream=p.stream,
        max_chars=limit,
        user_hint=p.user,
    )
    if p.truncated and not out.truncated:
        out = _truncated(out)
    return out


def _truncated(p: Prompt) -> Prompt:
    return Prompt(p.api, p.system, p.turns, p.user, p.model, p.max_output_tokens, p.stream, True)
