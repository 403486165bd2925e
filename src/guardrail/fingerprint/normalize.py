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
from itertools import repeat

from .._unicode import in_pieces

__all__ = ["NORMALIZATION_VERSION", "normalize", "normalize_bytes", "normalize_lines", "segment_bytes"]

#: Bumped whenever the output of :func:`normalize` changes for some input; part of the fingerprint header.
NORMALIZATION_VERSION = 1

PLACEHOLDER = "#"

# Id masking in two linear passes, each starting on a rare character so the regex engine's fast scan does
# the work: (1) from a digit to the end of its token becomes NUL (NUL cannot survive folding, so it is a
# safe marker); (2) in the reversed text, NUL plus the rest of the token (its letters before the first
# digit) becomes the placeholder. One hostile megabyte-long token costs one pass, not a quadratic scan.
_DIGIT_TAIL = re.compile(r"\d[\w\-]*")
_MARKED_HEAD = re.compile(r"\x00[\w\-]*")
# What ``[\w\-]`` matches in ASCII (the id masking of bytes, see ``_mask_nul``).
_WORD_BYTES = bytes(range(0x30, 0x3A)) + bytes(range(0x41, 0x5B)) + bytes(range(0x61, 0x7B)) + b"_-"
_SPACE_RUN = re.compile(rb"  +")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_UNICODE_WORD = re.compile(r"\w")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")

# ASCII fast path: lower case and delete control characters (tab and line breaks kept) in one C pass; the
# same pass maps digits to NUL for the id masking and, for the flat form, every whitespace to a space.
_ASCII_UPPER = bytes(range(ord("A"), ord("Z") + 1))
_ASCII_LOWER = _ASCII_UPPER.lower()
_ASCII_DELETE = bytes(range(0x00, 0x09)) + bytes(range(0x0E, 0x20)) + b"\x7f"
_DIGITS = b"0123456789"
_NULS = b"\x00" * len(_DIGITS)
_WHITESPACE = b"\t\n\x0b\x0c\r"  # all that bytes.split() and str.split() see after folding
_SPACES = b" " * len(_WHITESPACE)
# (mask_ids, flat) -> table
_FOLD = {
    (False, False): bytes.maketrans(_ASCII_UPPER, _ASCII_LOWER),
    (True, False): bytes.maketrans(_ASCII_UPPER + _DIGITS, _ASCII_LOWER + _NULS),
    (False, True): bytes.maketrans(_ASCII_UPPER + _WHITESPACE, _ASCII_LOWER + _SPACES),
    (True, True): bytes.maketrans(_ASCII_UPPER + _DIGITS + _WHITESPACE, _ASCII_LOWER + _NULS + _SPACES),
}
_FLATTEN = bytes.maketrans(_WHITESPACE, _SPACES)
# Segments: tab -> space, every line break -> NUL (the boundary marker: no NUL survives folding and masking).
_LINES = bytes.maketrans(b"\t\n\r\x0b\x0c", b" \x00\x00\x00\x00")
_SENTENCE_ENDS = {c: (bytes([c]) + b" ", bytes([c]) + b"\x00") for c in b".!?;:"}
_NOT_SENTENCE_END = bytes(c for c in range(256) if c not in _SENTENCE_ENDS)
# Deleting these from UTF-8 leaves what ``_translate`` may change: non-ASCII characters, ASCII controls.
_PLAIN_ASCII = bytes(range(0x09, 0x0E)) + bytes(range(0x20, 0x7F))
_ALL_ASCII = bytes(range(0x80))
# Beyond this many distinct such characters, one regex pass over the non-ASCII runs beats a replace each.
_MAX_REPLACES = 24

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
    ~10x slower than the whole ASCII path) replaces each distinct non-ASCII or control character instead:
    they are found by one C pass over the UTF-8 bytes, and ``str.replace`` is a fast search. Every
    replacement is printable ASCII or a line break, never a character replaced here, so the order of the
    replacements does not matter."""
    table = translation_table()
    data = text.encode("utf-8", "surrogatepass")
    if (len(data) - len(text)) * 8 > len(text):
        return text.translate(table)
    special = set(data.translate(None, _PLAIN_ASCII).decode("utf-8", "surrogatepass"))
    if len(special) > _MAX_REPLACES:
        text = _NON_ASCII_RUN.sub(_translate_run, text)
        if _ASCII_CONTROL.search(text):
            text = _ASCII_CONTROL.sub("", text)
        return text
    for char in special:
        replacement = table.get(ord(char), char)
        if replacement != char:
            text = text.replace(char, replacement or "")
    return text


def _mask_nul(data: bytes) -> bytes:
    """Id masking (step 5) of folded bytes whose digits the folding translate already turned into NUL.

    Split at the NULs, a token holding digits is the word characters (``[\\w-]``) before its first NUL,
    its NULs and the word characters between and after them: the piece before each token loses its word
    tail (``rstrip``), the piece after it its word head (``lstrip``), pieces that are nothing but word
    characters lie inside a token and vanish, and ``#`` joins what is left. All C-level passes (``map``,
    ``filter``, ``join``), measured about 3x faster than the two regex passes of the Unicode path, and
    linear on a hostile megabyte-long token.
    """
    parts = data.split(b"\x00")
    if len(parts) == 1:
        return data
    between = filter(None, map(bytes.lstrip, parts[1:-1], repeat(_WORD_BYTES)))
    return b"#".join(
        [
            parts[0].rstrip(_WORD_BYTES),
            *map(bytes.rstrip, between, repeat(_WORD_BYTES)),
            parts[-1].lstrip(_WORD_BYTES),
        ]
    )


def _folded_bytes(text: str, mask_ids: bool, flat: bool) -> bytes:
    """Steps 1-5 (all but whitespace collapse) as UTF-8. ``flat``: every whitespace becomes a space (for
    :func:`normalize_bytes`); otherwise line breaks are kept (for :func:`segment_bytes`)."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    if not text.isascii():
        text = _translate(in_pieces(text, _unicode_fold))
        if not text.isascii() and _has_word_characters(text):
            # Letters or digits without an ASCII look-alike remain (Cyrillic, CJK, Arabic-Indic digits):
            # the id masking must see them as word characters, as Unicode regexes do.
            text = text.casefold()  # the ASCII letters _casefold left (the rest is folded: idempotent)
            if mask_ids:
                text = _MARKED_HEAD.sub(PLACEHOLDER, _DIGIT_TAIL.sub("\x00", text)[::-1])[::-1]
            data = text.encode("utf-8", "surrogatepass")
            return data.translate(_FLATTEN) if flat else data
    # ASCII text, or only non-word characters beyond ASCII (dashes, symbols, emoji), which separate tokens
    # in the byte masking as they do in the Unicode regexes.
    data = text.encode("utf-8", "surrogatepass").translate(_FOLD[mask_ids, flat], _ASCII_DELETE)
    return _mask_nul(data) if mask_ids else data


def _unicode_fold(text: str) -> str:
    """NFKC, case folding, NFKD: applied in bounded pieces (``guardrail._unicode``), never quadratic."""
    return unicodedata.normalize("NFKD", _casefold(unicodedata.normalize("NFKC", text)))


def _casefold(text: str) -> str:
    """``str.casefold`` of the non-ASCII characters only; ASCII letters are lowered later by the byte
    translate (or by ``casefold`` on the Unicode path). Case folding maps each character on its own and is
    idempotent, so on mostly-ASCII text a ``replace`` per distinct non-ASCII character gives the same
    result as folding the whole text, for a fraction of the cost (the fold was the costliest step of a
    prompt with typographic punctuation)."""
    data = text.encode("utf-8", "surrogatepass")
    if (len(data) - len(text)) * 8 > len(text):
        return text.casefold()
    for char in set(data.translate(None, _ALL_ASCII).decode("utf-8", "surrogatepass")):
        folded = char.casefold()
        if folded != char:
            text = text.replace(char, folded)
    return text


def _has_word_characters(text: str) -> bool:
    """Whether a non-ASCII character of ``text`` is a word character (``\\w``) for Unicode regexes."""
    rest = text.encode("utf-8", "surrogatepass").translate(None, _ALL_ASCII)
    return _UNICODE_WORD.search(rest.decode("utf-8", "surrogatepass")) is not None


def _collapse(data: bytes) -> bytes:
    """Step 6 on bytes whose whitespace is all spaces: runs become one space, none at either end."""
    if b"  " in data:
        data = _SPACE_RUN.sub(b" ", data)
    return data.strip(b" ")


def normalize_bytes(text: str, *, mask_ids: bool = True) -> bytes:
    """:func:`normalize` as UTF-8 bytes (what shingles are cut from), without a decode round trip."""
    return _collapse(_folded_bytes(text, mask_ids, True))


def normalize(text: str, *, mask_ids: bool = True) -> str:
    """Canonical form of ``text`` for fingerprinting: see the module docstring for each step and why.

    ``mask_ids=False`` keeps digits and ids. Raises ``TypeError`` for a non-``str``.
    """
    return _collapse(_folded_bytes(text, mask_ids, True)).decode("utf-8", "surrogatepass")


def segment_bytes(text: str, *, mask_ids: bool = True) -> list[bytes]:
    """The normalised, non-empty lines and sentences of ``text`` as UTF-8, in order (for segment hashes).

    A sentence ends after ``. ! ? ; :`` followed by whitespace. Done with whole-text C passes (translate,
    replace, one split, ``map``) rather than a regex per line: line breaks and sentence ends become NUL
    markers, spaces are collapsed, and the pieces between markers are stripped.
    """
    data = _folded_bytes(text, mask_ids, False).translate(_LINES)
    for mark in set(data.translate(None, _NOT_SENTENCE_END)):  # the marks present, found in one pass
        end, boundary = _SENTENCE_ENDS[mark]
        data = data.replace(end, boundary)
    return list(filter(None, map(bytes.strip, _collapse(data).split(b"\x00"))))


def normalize_lines(text: str, *, mask_ids: bool = True) -> list[str]:
    """The normalised, non-empty lines and sentences of ``text``, in order (see :func:`segment_bytes`)."""
    return [part.decode("utf-8", "surrogatepass") for part in segment_bytes(text, mask_ids=mask_ids)]
