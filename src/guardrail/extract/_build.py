"""Shared building blocks of the format readers: type-safe field access and the text budget.

Format readers only *reference* strings of the parsed body while they walk it; the one place that
copies text (joining parts, capping) is ``Builder.finish``, so a big body is copied at most once
after ``json.loads``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ._model import Prompt, Turn

__all__ = ["MAX_TURNS", "Builder", "as_count", "as_model", "cap_text", "parts_text"]

MAX_TURNS = 1024
"""Turns kept per request (the newest); older ones are dropped and the prompt marked truncated."""

_MAX_MODEL_CHARS = 256
_MAX_COUNT = 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


def canonical_path(path: str) -> str:
    """``path`` as a normalising server routes it: dot segments resolved, empty segments merged,
    backslashes read as slashes (``/v1//chat/completions/.`` is ``/v1/chat/completions``)."""
    out: list[str] = []
    for segment in path.replace("\\", "/").split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment and segment != ".":
            out.append(segment)
    return "/" + "/".join(out)


def ambiguous_path(path: str) -> bool:
    """Whether a server may route ``path`` as another (its :func:`canonical_path`): cheap, for every
    request."""
    return "//" in path or "/." in path or "\\" in path


def as_count(value: object) -> int | None:
    """A non-negative integer field (``max_tokens`` and kin), or None when absent or malformed.

    JSON numbers such as ``256.0`` are accepted when integral; booleans, NaN and infinities are not.
    """
    if type(value) is int:  # the common case first
        return min(value, _MAX_COUNT) if value >= 0 else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return min(value, _MAX_COUNT) if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0 and value.is_integer():
        return min(int(value), _MAX_COUNT)
    return None


def as_model(value: object) -> str | None:
    """A model name, bounded in length because it is logged and used as a key."""
    if isinstance(value, str) and value:
        return clean(value[:_MAX_MODEL_CHARS])
    return None


def times(limit: int | None, *factors: object) -> int | None:
    """``limit`` multiplied by the positive integer ``factors`` (n, best_of, batch size), bounded."""
    if limit is None:
        return None
    for f in factors:
        k = as_count(f)
        if k is not None and k > 1:
            limit = min(limit * k, _MAX_COUNT)
    return limit


def clean(text: str) -> str:
    """Replace lone surrogates (legal in JSON ``\\ud800`` escapes) so later UTF-8 encoding cannot fail."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


def parts_text(content: object) -> str:
    """Text of a content value: a string, or a list of parts whose text parts are kept.

    Parts are ``{"type": "text"|"input_text"|"output_text", "text": str}``, a bare string, or (Bedrock,
    Gemini style) an untyped ``{"text": str}``. A part of any other type that carries a string ``text`` is
    read too: a lenient server may read it, and a prompt must not pass unread by naming a new type.
    Images, audio, files and anything malformed are skipped.
    """
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    out: list[str] = []
    for part in content:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, dict):
            text = part.get("text")
            if isinstance(text, str):
                out.append(text)
    return out[0] if len(out) == 1 else "\n".join(out)


def cap_text(text: str, limit: int) -> str:
    """Keep at most ``limit`` characters: the head and the last quarter, joined by a newline.

    Keeping the tail matters: templates often end with their instructions ("answer step by step").
    """
    if len(text) <= limit:
        return text
    if limit < 8:
        return text[: max(limit, 0)]
    tail = limit // 4
    head = limit - tail - 1
    return text[:head] + "\n" + text[len(text) - tail :]


def _share(a: int, b: int, budget: int) -> tuple[int, int]:
    """Split ``budget`` between two texts of lengths a and b, each getting at least half if it needs it."""
    if a + b <= budget:
        return a, b
    half = budget // 2
    if a <= half:
        return a, budget - a
    if b <= half:
        return budget - b, b
    return half, budget - half


class Builder:
    """Collects system text and turns while a reader walks a body; ``finish`` applies the budget."""

    __slots__ = ("dropped", "system", "turns")

    def __init__(self) -> None:
        self.system: list[str] = []
        self.turns: list[tuple[str, str]] = []
        self.dropped = False  # messages before the newest MAX_TURNS were not read for turns

    def split(self, items: list[Any]) -> tuple[list[Any], list[Any]]:
        """``(older, recent)``: ``recent`` the newest ``MAX_TURNS`` messages, the only ones whose turns
        could be kept, ``older`` the rest (a reader takes their system text alone, never their turns:
        a body of a million tiny messages costs a walk of their roles, not of their texts)."""
        if len(items) <= MAX_TURNS:
            return [], items
        self.dropped = True
        return items[:-MAX_TURNS], items[-MAX_TURNS:]

    def add_system(self, text: str) -> None:
        if text:
            self.system.append(text)

    def add_turn(self, role: str, text: str) -> None:
        self.turns.append((role, text))

    def finish(
        self,
        api: str,
        *,
        model: str | None,
        max_output_tokens: int | None,
        stream: bool,
        max_chars: int,
        user_hint: str = "",
    ) -> Prompt:
        """Build the Prompt within ``max_chars`` characters of text.

        The system text and the latest user turn share the budget first (each is guaranteed half of
        it when it needs that much): they are what the engine fingerprints, and a padded history must
        not push them out. Older turns fill what is left, newest first; turns beyond ``MAX_TURNS``
        are dropped.
        """
        budget = max(max_chars, 0)
        turns = self.turns
        truncated = self.dropped
        if len(turns) > MAX_TURNS:
            turns = turns[-MAX_TURNS:]
            truncated = True
        system = self.system[0] if len(self.system) == 1 else "\n".join(self.system)
        last_user = -1
        for i in range(len(turns) - 1, -1, -1):
            if turns[i][0] == "user":
                last_user = i
                break
        user = turns[last_user][1] if last_user >= 0 else user_hint
        cs, cu = _share(len(system), len(user), budget)
        if cs < len(system) or cu < len(user):
            truncated = True
            system = cap_text(system, cs)
            user = cap_text(user, cu)
        system = clean(system)
        user = clean(user)
        left = budget - len(system) - len(user)
        out: list[Turn] = [Turn("", "")] * len(turns)
        for i in range(len(turns) - 1, -1, -1):
            role, text = turns[i]
            if i == last_user:
                out[i] = Turn(role, user)
                continue
            if len(text) > left:
                text = cap_text(text, left)
                truncated = True
            left -= len(text)
            out[i] = Turn(role, clean(text))
        return Prompt(
            api=api,
            system=system,
            turns=tuple(out),
            user=user,
            model=model,
            max_output_tokens=max_output_tokens,
            stream=stream,
            truncated=truncated,
        )


def get_str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    return value if isinstance(value, str) else ""


def get_bool(body: Mapping[str, Any], key: str) -> bool:
    return body.get(key) is True
