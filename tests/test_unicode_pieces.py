"""Normalising in pieces gives the whole text's normal form (``guardrail._unicode``)."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail._unicode import MAX_RUN, PIECE, in_pieces

# Letters, marks of several combining classes (and the Mc two-part vowel signs that compose), Hangul
# leading / vowel / trailing jamo and syllables, compatibility characters, CJK, spaces.
_ALPHABET = (
    "aeiouAEIOU\u00e9\u00c5 \n"
    "\u0301\u0316\u0327\u0338\u05b0\u0591\u093c\u094d\u0e48"
    "\u09c7\u09be\u09d7\u0b47\u0b3e\u0bc6\u0bbe"
    "\u1100\u1112\u1161\u1175\u11a8\u11c2\uac00\ud7b0\ud7cb"
    "\ufb01\u2460\uff76\u3099\u309a\u304b\u2126\u212b"
    "\u6c34\u706b\u0130\u00df"
)


def _no_long_mark_run(text: str) -> bool:
    run = 0
    for char in text:
        run = run + 1 if unicodedata.category(char)[0] == "M" else 0
        if run > MAX_RUN:
            return False
    return True


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())


@settings(max_examples=300)
@given(st.text(alphabet=_ALPHABET, min_size=PIECE, max_size=6 * PIECE).filter(_no_long_mark_run))
def test_pieces_join_to_the_whole_texts_normal_form(text: str) -> None:
    for form in ("NFC", "NFKC", "NFD", "NFKD"):
        assert in_pieces(text, lambda t, f=form: unicodedata.normalize(f, t)) == unicodedata.normalize(
            form, text
        )
    assert in_pieces(text, _fold) == _fold(text)


def test_a_long_run_of_marks_is_cut_and_every_character_kept() -> None:
    # 20,000 marks of classes 230 then 220: whole-text normalisation reorders them in quadratic time.
    text = "a" + "\u0301" * 10_000 + "\u0316" * 10_000 + " tail"
    out = in_pieces(text, lambda t: unicodedata.normalize("NFKD", t))
    assert sorted(out) == sorted(unicodedata.normalize("NFKD", text)) and out.endswith(" tail")
