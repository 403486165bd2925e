"""Text normalisation that defeats cheap evasion before a prompt is fingerprinted.

A campaign that wants its templated prompts to look unrelated has a menu of almost free tricks: change case
or spacing, sprinkle zero-width or bidi characters, swap Latin letters for Cyrillic or Greek look-alikes, use
fullwidth or "mathematical bold" letters, stack combining marks, or stamp a fresh request id or counter on
every prompt. Each step below removes one of them, so that the shingles of two such variants coincide:

1. NFKC folds compatibility forms (fullwidth, ligatures, mathematical alphanumerics, superscripts).
2. Case folding (``str.casefold``) removes case changes, including non-ASCII ones (``ß`` -> ``ss``).
3. NFKD then exposes combining marks, which are dropped with the invisible and format characters
   (zero-width, bidi controls, variation selectors, soft hyphen, tag characters, control characters).
4. Look-alike letters map to their ASCII prototype from the Unicode confusables data shipped by the
   ``confusable-homoglyphs`` package (Cyrillic small a, U+0430, -> ``a``; Greek small rho, U+03C1, -> ``p``).
5. Tokens containing a digit (counters, ids, hex digests, UUIDs) become one placeholder ``#``.
6. Runs of whitespace collapse to one space.

Pure ASCII text (most traffic) takes a fast path: steps 1, 3 and 4 cannot change it.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

__all__ = ["NORMALIZATION_VERSION", "normalize", "normalize_bytes", "normalize_lines"]

#: Bumped whenever the output of :func:`normalize` changes for some input; part of the fingerprint header.
NORMALIZATION_VERSION = 1

PLACEHOLDER = "#"

# Id masking in two linear passes, each starting on a rare character so the regex engine's fast scan does
# the work: (1) from a digit to the end of its token becomes NUL (NUL cannot survive folding, so it is a
# safe marker); (2) in the reversed text, NUL plus the rest of the token (its letters before the first
# digit) becomes the placeholder. One hostile megabyte-long token costs one pass, not a quadratic scan.
_DIGIT_TAIL = re.compile(r"\d[\w\-]*")
_MARKED_HEAD = re.compile(r"\x00[\w\-]*")
_DIGIT_TAIL_B = re.compile(rb"\d[\w\-]*")
_MARKED_HEAD_B = re.compile(rb"\x00[\w\-]*")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")

# ASCII fast path: lower case and delete control characters (tab and line breaks kept) in one C pass.
_ASCII_UPPER = bytes(range(ord("A"), ord("Z") + 1))
_ASCII_FOLD = bytes.maketrans(_ASCII_UPPER, _ASCII_UPPER.lower())
_ASCII_DELETE = bytes(range(0x00, 0x09)) + bytes(range(0x0E, 0x20)) + b"\x7f"

# Characters that render as nothing yet are not whitespace, beyond the categories dropped wholesale.
_EXTRA_INVISIBLE = (0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F, 0x3164, 0xFFA0)
_DROPPED_CATEGORIES = frozenset({"Cf", "Mn", "Me", "Cc"})


def _confusables_data() -> dict[str, list[dict[str, str]]]:
    from confusable_homoglyphs import confusables

    data: dict[str, list[dict[str, str]]] = confusables.confusables_data
    return data


def _ascii_prototype(char: str, data: dict[str, list[dict[str, str]]]) -> str | None:
    """Follow the confusables entries of ``char`` (a few hops at most) to an ASCII prototype."""
    seen = {char}
    current = char
    for _ in range(4):
        entries = data.get(current)
        if not entries:
            return None
        target = entries[0]["c"].replace("\u200e", "").replace("\u200f", "")
        if target.isascii():
            return target if target.strip() and len(target) <= 3 else None
        if target in seen:
            return None
        seen.add(target)
        current = target
    return None


@functools.lru_cache(maxsize=1)
def translation_table() -> dict[int, str | None]:
    """The ``str.translate`` table of steps 3 and 4, built once on first use (about 0.2 s).

    Keys are non-ASCII code points only, so ASCII text is never altered by it; digits are left to the id
    masking. A lower-case form is looked up first, then its upper case (Cyrillic small en, U+043D, has
    no ASCII prototype but its capital U+041D has ``H``), so both cases of a look-alike reach the same
    ASCII letter.
    """
    table: dict[int, str | None] = {}
    for cp in _ASCII_DELETE:
        table[cp] = None
    for cp in range(0x80, sys.maxunicode + 1):
        category = unicodedata.category(chr(cp))
        if category in _DROPPED_CATEGORIES:
            table[cp] = None
        elif category == "Zs":
            table[cp] = " "
        elif category in ("Zl", "Zp"):
            table[cp] = "\n"
    table[0x85] = "\n"
    for cp in _EXTRA_INVISIBLE:
        table[cp] = None
    data = _confusables_data()
    candidates = {key for key in data if len(key) == 1 and not key.isascii()}
    candidates |= {c.casefold() for c in candidates if len(c.casefold()) == 1}
    for char in sorted(candidates):
        cp = ord(char)
        if char.isascii() or cp in table or unicodedata.category(char) == "Nd":
            continue
        target = _ascii_prototype(char, data)
        upper = char.upper()
        if target is None and len(upper) == 1 and upper != char:
            target = _ascii_prototype(upper, data)
        if target is not None:
            table[cp] = target.casefold()
    return table


def _translate_run(match: re.Match[str]) -> str:
    return match.group().translate(translation_table())


def _translate(text: str) -> str:
    """Steps 3-4 on Unicode text. ``str.translate`` with a dict costs a lookup per character once the text
    holds any non-ASCII character, so mostly-ASCII text (English with a curly quote or an emoji: measured
    ~10x slower than the whole ASCII path) translates only its non-ASCII runs, plus ASCII controls."""
    extra = len(text.encode("utf-8", "surrogatepass")) - len(text)
    if extra * 8 > len(text):
        return text.translate(translation_table())
    text = _NON_ASCII_RUN.sub(_translate_run, text)
    if _ASCII_CONTROL.search(text):
        text = _ASCII_CONTROL.sub("", text)
    return text


def _folded_bytes(text: str, mask_ids: bool) -> bytes:
    """Steps 1-5 (all but whitespace collapse) as UTF-8; line breaks kept for :func:`normalize_lines`."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    if text.isascii():
        data = text.encode("ascii").translate(_ASCII_FOLD, _ASCII_DELETE)
        if mask_ids:
            data = _MARKED_HEAD_B.sub(b"#", _DIGIT_TAIL_B.sub(b"\x00", data)[::-1])[::-1]
        return data
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    text = _translate(text)
    if mask_ids:
        text = _MARKED_HEAD.sub(PLACEHOLDER, _DIGIT_TAIL.sub("\x00", text)[::-1])[::-1]
    return text.encode("utf-8", "surrogatepass")


def normalize_bytes(text: str, *, mask_ids: bool = True) -> bytes:
    """:func:`normalize` as UTF-8 bytes (what shingles are cut from), without a decode round trip."""
    return b" ".join(_folded_bytes(text, mask_ids).split())


def normalize(text: str, *, mask_ids: bool = True) -> str:
    """Canonical form of ``text`` for fingerprinting: see the module docstring for each step and why.

    ``mask_ids=False`` keeps digits and ids. Raises ``TypeError`` for a non-``str``.
    """
    return normalize_bytes(text, mask_ids=mask_ids).decode("utf-8", "surrogatepass")


def normalize_lines(text: str, *, mask_ids: bool = True) -> list[str]:
    """The normalised, non-empty lines and sentences of ``text``, in order (for segment hashes)."""
    folded = _folded_bytes(text, mask_ids).decode("utf-8", "surrogatepass")
    parts: list[str] = []
    for line in folded.splitlines():
        for sentence in _SENTENCE_END.split(line):
            collapsed = " ".join(sentence.split())
            if collapsed:
                parts.append(collapsed)
    return parts
