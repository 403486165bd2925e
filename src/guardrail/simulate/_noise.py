"""Evasion noise a campaign adds to dodge exact-match filters.

Each transform keeps the text readable for the model while changing its bytes: request ids, zero-width
characters, look-alike letters from other scripts, synonym swaps and whitespace changes. A detector that
normalises and fingerprints the parts of a prompt should see through them; an exact hash should not.
"""

from __future__ import annotations

import random
import re

from guardrail.simulate._bank_prompts import SYNONYMS
from guardrail.simulate._rng import random_id

_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
# Latin letter -> a Cyrillic or Greek look-alike.
_HOMOGLYPHS = {
    "a": "\u0430", "c": "\u0441", "e": "\u0435", "o": "\u043e", "p": "\u0440", "x": "\u0445", "y": "\u0443",
    "i": "\u0456", "s": "\u0455", "A": "\u0391", "B": "\u0392", "E": "\u0395", "O": "\u039f", "T": "\u03a4",
}  # fmt: skip
_KNOWN = re.compile(r"\b(?:" + "|".join(sorted(SYNONYMS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def _count(rng: random.Random, n: int, rate: float) -> int:
    """How many of ``n`` positions a transform touches at ``rate`` (expected value, randomly rounded)."""
    x = n * rate
    return min(n, int(x) + (rng.random() < x - int(x)))


def zero_width(rng: random.Random, text: str, rate: float = 0.03) -> str:
    """Insert invisible characters after a fraction ``rate`` of the characters."""
    if not text:
        return text
    cuts = sorted(rng.sample(range(1, len(text) + 1), _count(rng, len(text), rate)))
    out, last = [], 0
    for cut in cuts:
        out.append(text[last:cut])
        out.append(rng.choice(_ZERO_WIDTH))
        last = cut
    out.append(text[last:])
    return "".join(out)


def homoglyphs(rng: random.Random, text: str, rate: float = 0.04) -> str:
    """Swap a fraction ``rate`` of the letters that have look-alikes for characters from other scripts."""
    candidates = [i for i, ch in enumerate(text) if ch in _HOMOGLYPHS]
    chosen = rng.sample(candidates, _count(rng, len(candidates), rate))
    if not chosen:
        return text
    chars = list(text)
    for i in chosen:
        chars[i] = _HOMOGLYPHS[chars[i]]
    return "".join(chars)


def paraphrase(rng: random.Random, text: str, rate: float = 0.5) -> str:
    """Replace known words by synonyms with probability ``rate`` each (case of the first letter kept)."""

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        options = SYNONYMS.get(word.lower())
        if options is None or rng.random() >= rate:
            return word
        new = rng.choice(options)
        return new[0].upper() + new[1:] if word[0].isupper() else new

    return _KNOWN.sub(swap, text)


def request_id(rng: random.Random, text: str) -> str:
    """Prefix or suffix a random request id, in one of several styles."""
    rid = random_id(rng, rng.choice((6, 8, 12, 32)))
    style = rng.randrange(4)
    if style == 0:
        return f"[{rid}] {text}"
    if style == 1:
        return f"{text}\n\n(ref: {rid})"
    if style == 2:
        return f"ID: {rid}\n{text}"
    return f"{text}\n<!-- {rid} -->"


def whitespace(rng: random.Random, text: str) -> str:
    """Vary blank lines and trailing spaces."""
    lines = text.split("\n")
    out = []
    for line in lines:
        out.append(line + (" " * rng.randint(1, 3) if rng.random() < 0.1 else ""))
        if rng.random() < 0.05:
            out.append("")
    return "\n".join(out)


def add_noise(rng: random.Random, text: str, level: float) -> str:
    """Apply each transform with probability ``level`` (0 = none, 1 = all of them)."""
    if rng.random() < level:
        text = paraphrase(rng, text)
    if rng.random() < level:
        text = homoglyphs(rng, text)
    if rng.random() < level:
        text = zero_width(rng, text)
    if rng.random() < level:
        text = whitespace(rng, text)
    if rng.random() < level:
        text = request_id(rng, text)
    return text
