"""Normalisation: each cheap evasion is undone, ASCII and Unicode paths agree, output is canonical."""

from __future__ import annotations

import re
import string
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.fingerprint import normalize
from guardrail.fingerprint.normalize import normalize_bytes, normalize_lines, translation_table

ZERO_WIDTH = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\u200e",
    "\u202e",
    "\ufe0f",
    "\U000e0041",
]
# Latin letter -> a Cyrillic or Greek look-alike.
HOMOGLYPHS = {
    "a": "\u0430",
    "e": "\u0435",
    "o": "\u043e",
    "p": "\u0440",
    "c": "\u0441",
    "x": "\u0445",
    "i": "\u0456",
}

ascii_text = st.text(
    alphabet=string.ascii_letters + string.digits + string.punctuation + " \n\t", max_size=200
)
words = st.lists(
    st.sampled_from("alpha beta gamma delta step think answer reason prove the of a".split()), max_size=30
)


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    translation_table()


def test_examples() -> None:
    assert normalize("  Hello,\tWORLD \n") == "hello, world"
    assert normalize("H\u0435llo W\u043erld") == "hello world"
    assert normalize("\uff28\uff25\uff2c\uff2c\uff2f") == "hello"  # fullwidth
    assert normalize("\U0001d421\U0001d41e\U0001d425\U0001d425\U0001d428") == "hello"  # mathematical bold
    assert normalize("he\u200bl\u00adlo") == "hello"
    assert normalize("Stra\u00dfe") == "strasse"
    assert normalize("z\u0301\u0302\u0303algo") == "zalgo"
    assert normalize("") == ""
    assert normalize("\u200b\u200d ") == ""


def test_ids_are_masked() -> None:
    text = "Request 12345 id 3f2a9c1e-1234-4abc-8def-0123456789ab key req_8f3k2j and gpt-4 at 3.14"
    assert normalize(text) == "request # id # key # and # at #.#"
    assert normalize("order 1") == normalize("order 987654321")
    assert normalize("order 1", mask_ids=False) == "order 1"
    assert normalize("C# and #tags") == "c# and #tags"  # a literal '#' does not swallow its word


def test_hostile_long_token_is_linear() -> None:
    token = "a" * 200_000 + "1"
    assert normalize(token + " b") == "# b"


def test_type_error() -> None:
    with pytest.raises(TypeError):
        normalize(b"bytes")  # type: ignore[arg-type]


@settings(deadline=None)
@given(st.text(max_size=300))
def test_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@settings(deadline=None)
@given(st.text(max_size=300))
def test_canonical_whitespace(text: str) -> None:
    out = normalize(text)
    assert out == out.strip()
    assert "  " not in out
    assert "\n" not in out and "\t" not in out
    assert normalize_bytes(text) == out.encode("utf-8", "surrogatepass")


@settings(deadline=None)
@given(ascii_text, st.data())
def test_zero_width_insertion_is_removed(text: str, data: st.DataObject) -> None:
    chars = list(text)
    for _ in range(data.draw(st.integers(0, 10))):
        pos = data.draw(st.integers(0, len(chars)))
        chars.insert(pos, data.draw(st.sampled_from(ZERO_WIDTH)))
    assert normalize("".join(chars)) == normalize(text)


@settings(deadline=None)
@given(ascii_text, st.data())
def test_case_and_whitespace_changes(text: str, data: st.DataObject) -> None:
    swapped = "".join(c.upper() if data.draw(st.booleans()) else c.lower() for c in text)
    spaced = swapped.replace(" ", data.draw(st.sampled_from(["  ", "\t", " \n ", "\u00a0", "\u3000"])))
    assert normalize(spaced) == normalize(text)


@settings(deadline=None)
@given(words, st.data())
def test_homoglyphs_fold_to_ascii(ws: list[str], data: st.DataObject) -> None:
    text = " ".join(ws)
    disguised = "".join(HOMOGLYPHS[c] if c in HOMOGLYPHS and data.draw(st.booleans()) else c for c in text)
    assert normalize(disguised) == normalize(text)


@settings(deadline=None)
@given(ascii_text)
def test_ascii_fast_path_agrees_with_unicode_path(text: str) -> None:
    # Appending a non-ASCII character forces the Unicode path on the same ASCII content.
    assert normalize(text + " \u00e9") == normalize(normalize(text) + " e")


def test_lines_and_sentences() -> None:
    text = "You are a tutor. Think step by step!\n\nTask 12: add 3 and 4\u2028Answer in a box."
    assert normalize_lines(text) == [
        "you are a tutor.",
        "think step by step!",
        "task #:",  # a label and its fill are separate segments
        "add # and #",
        "answer in a box.",
    ]
    assert normalize_lines("") == []


@settings(deadline=None)
@given(st.text(max_size=300), st.text(alphabet=string.ascii_letters + " .,'\x01", max_size=400))
def test_run_wise_translation_equals_whole_translation(unicode_part: str, ascii_part: str) -> None:
    from guardrail.fingerprint.normalize import _translate

    for text in (unicode_part, ascii_part + unicode_part[:3] + ascii_part):
        assert _translate(text) == text.translate(translation_table())


@settings(deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=100))
def test_any_code_point_including_lone_surrogates(text: str) -> None:
    out = normalize(text)
    assert normalize(out) == out
    assert "\x00" not in out


# --- the fast paths against straightforward reference implementations ------------------------------------

_REF_DIGIT_TAIL = re.compile(r"\d[\w\-]*")
_REF_MARKED_HEAD = re.compile(r"\x00[\w\-]*")
_REF_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def _reference_mask(text: str) -> str:
    """Id masking by the two Unicode regex passes (what ``normalize`` did before its byte fast path)."""
    return _REF_MARKED_HEAD.sub("#", _REF_DIGIT_TAIL.sub("\x00", text)[::-1])[::-1]


def _reference_normalize(text: str) -> str:
    from guardrail.fingerprint.normalize import _translate

    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(_reference_mask(_translate(text)).split())


token_text = st.text(
    alphabet=string.ascii_letters
    + "0123456789_-#./: \n\t\x00\x7f"
    + "\u2014\u2019\u00e9\u0663\u0436\u4e2d\U0001f600",
    max_size=200,
)


@settings(deadline=None, max_examples=300)
@given(token_text)
def test_byte_masking_equals_unicode_regex_masking(text: str) -> None:
    # ASCII text, and text whose non-ASCII characters are separators (dashes, emoji), are masked on bytes
    # with digits pre-mapped to NUL; the result must be what the Unicode regexes give.
    assert normalize(text) == _reference_normalize(text)


@settings(deadline=None, max_examples=300)
@given(st.text(alphabet=string.ascii_letters + ".!?;: \t\n\r\x0b\x0c\x1c\x85\u2028x1", max_size=200))
def test_segments_split_like_lines_then_sentences(text: str) -> None:
    from guardrail.fingerprint.normalize import _folded_bytes

    folded = _folded_bytes(text, True, False).decode("utf-8", "surrogatepass")
    expected = [
        " ".join(sentence.split())
        for line in folded.splitlines()
        for sentence in _REF_SENTENCE_END.split(line)
        if sentence.split()
    ]
    assert normalize_lines(text) == expected


def test_many_distinct_non_ascii_characters_take_the_regex_path() -> None:
    from guardrail.fingerprint.normalize import _MAX_REPLACES, _translate

    rare = "".join(chr(0x0430 + i) for i in range(_MAX_REPLACES + 8))
    text = "plain ascii text " * 20 + rare + "\x01 more"
    assert _translate(text) == text.translate(translation_table())


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=60), st.text(alphabet=string.ascii_letters + " .", max_size=300))
def test_casefold_of_non_ascii_characters_equals_full_casefold(unicode_part: str, ascii_part: str) -> None:
    from guardrail.fingerprint.normalize import _casefold

    def lower_ascii(text: str) -> str:
        return "".join(c.lower() if c.isascii() else c for c in text)

    for text in (unicode_part, ascii_part + unicode_part[:4] + ascii_part + "\u1e9e\u00df\u0130"):
        assert lower_ascii(_casefold(text)) == text.casefold()
