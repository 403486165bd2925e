"""Redacted prompt samples: enough of a template's opening words for an operator to recognise it.

A report travels further than the server (mail, tickets, screenshots), so it must not carry prompts. The
first few words of a template are usually its fixed wrapper ("You are an expert tutor. Think step by
step..."), which is what an operator needs to see; the rest is masked. Words that look like identifiers
(digits, e-mail addresses, long tokens) are masked even among the first words, since a wrapper can carry a
key or a user's name in an id slot.
"""

from __future__ import annotations

import re

from guardrail._unicode import UNSPACED

__all__ = ["MASK", "redact"]

MASK = "\u2588"  # full block: unmistakably a mask in any font
_SUFFIX = re.compile(r"(?:^| )\u2026 \[\+(\d+) words? masked\]$")
_ID_LIKE = re.compile(r"\d|@|^[A-Za-z0-9_\-]{20,}$|^(sk|pk|key|tok)[-_]", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
# Scripts written without spaces count each character as a word, as the fingerprints do: a sentence of
# Chinese or Thai is otherwise one "word" of up to ``max_chars`` characters, shown whole.
_WORD = re.compile(f"[{UNSPACED}]|[^ {UNSPACED}]+")


def _mask_word(word: str) -> str:
    return MASK * min(len(word), 8) if _ID_LIKE.search(word) else word


def redact(text: str, *, keep_words: int = 6, max_chars: int = 80) -> str:
    """The first ``keep_words`` words of ``text`` (id-like words masked), then a count of masked words.

    Idempotent: redacting an already redacted sample returns it unchanged, so a report can be rendered
    again from its own JSON.
    """
    if keep_words < 0:
        raise ValueError(f"keep_words must be >= 0, got {keep_words}")
    flat = _SPACE.sub(" ", text).strip()
    already = 0
    match = _SUFFIX.search(flat)
    if match:
        already = int(match.group(1))
        flat = flat[: match.start()]
    # Each word, and whether a space came before it (none between the characters of an unspaced script).
    words = [(m.group(), m.start() > 0 and flat[m.start() - 1] == " ") for m in _WORD.finditer(flat)]
    kept: list[str] = []
    parts: list[str] = []
    used = 0
    for word, spaced in words[:keep_words]:
        shown = _mask_word(word)
        gap = " " if spaced and parts else ""
        if used + len(gap) + len(shown) > max_chars:
            shown = shown[: max(0, max_chars - used - len(gap))]
            if shown:
                kept.append(shown)
                parts.append(gap + shown)
            break
        kept.append(shown)
        parts.append(gap + shown)
        used += len(gap) + len(shown)
    head = "".join(parts)
    hidden = already + len(words) - len(kept)
    if match is None and kept == [w for w, _ in words]:
        return head
    plural = "word" if hidden == 1 else "words"
    return f"{head} \u2026 [+{hidden} {plural} masked]".lstrip()
