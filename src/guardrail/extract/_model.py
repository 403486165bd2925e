"""The value objects every other part of guardrail reads: what a request asked the model.

They are plain frozen dataclasses so the engine can hash, compare and log them cheaply, and so a
user-supplied extractor can build one without importing anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Extractor", "NoPrompt", "Prompt", "Turn", "estimate_tokens"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn of the conversation; system text is not a turn (it lives in ``Prompt.system``)."""

    role: str  # "user" | "assistant" | "tool"
    text: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """A request body read as a prompt.

    ``system`` and ``user`` are kept apart because the engine fingerprints them separately: a
    distillation template often sits in one while the varying task sits in the other.
    ``max_output_tokens`` is an upper bound on what the request may generate (per-choice limit times
    the number of choices or batched prompts), or ``None`` when the request sets no limit.
    """

    api: str  # "openai.chat" | "openai.responses" | "openai.completions" | "anthropic.messages" | ...
    system: str
    turns: tuple[Turn, ...]
    user: str
    model: str | None
    max_output_tokens: int | None
    stream: bool
    truncated: bool

    @property
    def text(self) -> str:
        """System text and every turn, newline-joined: the whole prompt as the model reads it."""
        parts = [self.system] if self.system else []
        parts.extend(t.text for t in self.turns if t.text)
        return "\n".join(parts)


@dataclass(frozen=True, slots=True)
class NoPrompt:
    """A body that carries no prompt we can read, with a short human-readable reason (server-side only)."""

    reason: str


Extractor = Callable[[str, Mapping[str, Any]], Prompt | NoPrompt | None]
"""A user-supplied extractor: ``(path, parsed_body) -> Prompt | NoPrompt | None``.

It is tried before the built-in formats; returning ``None`` hands the body on to them. Anything it
raises becomes a ``NoPrompt`` (an extractor bug must not take the request path down).
"""


def estimate_tokens(text: str) -> int:
    """Cheap, deterministic token estimate used for cost before the real usage is known.

    About four characters per token for ASCII text; each extra UTF-8 byte of a non-ASCII character adds
    3/8 of a token, so CJK text (3 bytes per character) counts about one token per character and
    Cyrillic or Greek about 0.6, which is roughly what BPE tokenizers charge.
    """
    n = len(text)
    if n == 0:
        return 0
    if text.isascii():
        return (n + 3) // 4
    extra = len(text.encode("utf-8", "surrogatepass")) - n
    return (2 * n + 3 * extra + 7) // 8
