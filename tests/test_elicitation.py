# ruff: noqa: RUF001  (multilingual examples: the "ambiguous" characters are the point)
"""``elicitation_score``: explicit requests for written-out reasoning score high in every language;
plain questions and code requests score low; the score is bounded, total and case/width-insensitive."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.elicitation import SCAN_CHARS, elicitation_score

STRONG = [
    # English
    "Think step by step.",
    "Let's think step-by-step before answering.",
    "Explain your reasoning before answering.",
    "Show your reasoning.",
    "Walk me through your thought process.",
    "Put your reasoning inside <thinking></thinking> tags, then give the final answer.",
    "Use <think> tags for your chain of thought.",
    "Provide a detailed rationale for each grade, following the rubric.",
    "Solve the problem and show all of your work.",
    "Q: What is 17*23? A: Let's work it out step by step.",
    # Chinese (simplified, traditional)
    "请一步一步地思考，并写出你的推理过程。",
    "請逐步說明你的推理過程。",
    "请展示你的思路，然后给出最终答案。",
    # Spanish
    "Piensa paso a paso y muestra tu razonamiento.",
    "Explica tu razonamiento antes de responder.",
    # French
    "Réfléchis étape par étape et explique ton raisonnement.",
    "Montrez votre raisonnement avant de répondre.",
    # German
    "Denke Schritt für Schritt nach.",
    "Erkläre deinen Gedankengang ausführlich.",
    # Portuguese
    "Explique seu raciocínio passo a passo.",
    "Mostre o seu raciocínio antes de responder.",
    # Russian
    "Покажи ход рассуждений шаг за шагом.",
    "Объясни своё рассуждение подробно.",
    # Japanese
    "ステップバイステップで考えてください。",
    "思考過程を詳しく説明してください。",
    # Korean
    "단계별로 생각해 보세요.",
    "추론 과정을 자세히 설명해 주세요.",
    # Arabic
    "فكر خطوة بخطوة واشرح تفكيرك.",
    "اشرح استدلالك بالتفصيل قبل الإجابة.",
    # Hindi
    "चरण दर चरण सोचें और अपना तर्क समझाइए।",
    "उत्तर देने से पहले अपनी विचार प्रक्रिया बताइए।",
    # Italian
    "Ragiona passo dopo passo.",
    "Spiega il tuo ragionamento prima di rispondere.",
    # Turkish
    "Adım adım düşün ve akıl yürütmeni göster.",
    "ADIM ADIM düşün.",
    # Vietnamese
    "Hãy suy nghĩ từng bước và trình bày lập luận.",
    # Indonesian
    "Jelaskan penalaranmu langkah demi langkah.",
]

NEGATIVE = [
    "What is the capital of France?",
    "Write a Python function that reverses a linked list.",
    "Translate this sentence to French: the cat sleeps.",
    "Summarise this article in three bullet points.",
    "Give me your thoughts on this essay.",
    "Generate a SQL query that counts orders per customer.",
    "footstep by footstep",
    "法国的首都是哪里？",
    "¿Cuál es la capital de Francia?",
    "Quelle est la capitale de la France ?",
    "Wie spät ist es?",
    "Какая столица Франции?",
    "フランスの首都はどこですか？",
    "프랑스의 수도는 어디입니까?",
    "ما هي عاصمة فرنسا؟",
    "फ्रांस की राजधानी क्या है?",
    "",
]

MODERATE = [
    "Explain photosynthesis.",
    "Why is the sky blue?",
    "解释光合作用的过程",
    "Explain in detail how TCP handshakes work.",
]


@pytest.mark.parametrize("text", STRONG)
def test_strong_cues_score_high(text: str) -> None:
    assert elicitation_score(text) >= 0.8, text


@pytest.mark.parametrize("text", NEGATIVE)
def test_plain_requests_score_low(text: str) -> None:
    assert elicitation_score(text) <= 0.15, text


@pytest.mark.parametrize("text", MODERATE)
def test_honest_explain_questions_score_moderately(text: str) -> None:
    assert 0.05 <= elicitation_score(text) <= 0.6, text


def test_more_evidence_scores_higher() -> None:
    one = elicitation_score("Think step by step.")
    more = elicitation_score(
        "Think step by step, show your reasoning in <thinking> tags, then the final answer:"
    )
    assert 0.8 <= one < more <= 1.0


def test_case_width_and_diacritics_insensitive() -> None:
    base = elicitation_score("think step by step")
    assert elicitation_score("THINK STEP BY STEP") == base
    assert elicitation_score("ｔｈｉｎｋ ＳＴＥＰ ＢＹ ＳＴＥＰ") == base
    assert elicitation_score("فكّر خطوةً بخطوة") == elicitation_score("فكر خطوة بخطوة")


def test_cue_at_the_end_of_a_long_prompt_is_seen() -> None:
    text = "Context: " + "lorem ipsum dolor sit amet " * 10_000 + "\nThink step by step."
    assert len(text) > SCAN_CHARS
    assert elicitation_score(text) >= 0.8


def test_show_needs_verb_and_noun_in_one_sentence() -> None:
    assert elicitation_score("Show your reasoning.") >= 0.8
    assert elicitation_score("Show me the table. Reasoning models are popular.") < 0.5


def test_odd_strings() -> None:
    assert elicitation_score("\ud800 think step by step \udfff") >= 0.8  # lone surrogates
    assert elicitation_score("\x00" * 10_000) == 0.0
    assert elicitation_score("step " * 50_000) == 0.0


def test_non_str_scores_zero() -> None:
    assert elicitation_score(None) == 0.0  # type: ignore[arg-type]
    assert elicitation_score(b"think step by step") == 0.0  # type: ignore[arg-type]


CUES = st.sampled_from([*STRONG[:6], *NEGATIVE[:4], " ", "\n", "why", "<thinking>", "Schritt", "步"])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_range_and_total(text: str) -> None:
    s = elicitation_score(text)
    assert 0.0 <= s <= 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(CUES | st.text(alphabet="abcdefghijklmnopqrstuvwxyz .", max_size=20), max_size=8))
def test_case_insensitive(parts: list[str]) -> None:
    text = " ".join(parts)
    assert elicitation_score(text.upper()) == pytest.approx(elicitation_score(text.lower()))


@settings(max_examples=200, deadline=None)
@given(st.lists(CUES | st.text(alphabet="abcdefghijklmnopqrstuvwxyz .", max_size=20), max_size=8))
def test_width_insensitive(parts: list[str]) -> None:
    text = " ".join(parts)
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
    assert unicodedata.normalize("NFKC", wide) == text
    assert elicitation_score(wide) == pytest.approx(elicitation_score(text))


@settings(max_examples=200, deadline=None)
@given(st.lists(CUES, max_size=6), st.lists(CUES, max_size=6))
def test_adding_text_never_lowers_a_short_score(a: list[str], b: list[str]) -> None:
    # Concept evidence only accumulates (within the scanned window and across sentence breaks).
    left = "\n".join(a)
    both = left + "\n" + "\n".join(b)
    if len(both) <= SCAN_CHARS:
        assert elicitation_score(both) >= elicitation_score(left) - 1e-12


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=200))
def test_ascii_word_starts_match_the_regex_definition(text: str) -> None:
    from guardrail import elicitation as el

    fast = {w[:4] for w in set(text.translate(el._ASCII_NON_WORD).split())}
    assert fast == set(el._WORD_START.findall(text))


def test_score_is_identical_across_hash_seeds() -> None:
    """Float products over an unordered set would differ in the last bits between processes."""
    import os
    import subprocess
    import sys

    code = (
        "from guardrail.elicitation import elicitation_score as s;"
        "print(repr(s('Think step by step, show your reasoning, justify each step and explain why.')))"
    )
    outs = set()
    for seed in ("0", "1", "2", "3", "4", "5"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout)
    assert len(outs) == 1, outs


def _shows_brute_force(verbs: list[tuple[int, int]], nouns: list[tuple[int, int]], text: str) -> bool:
    """The definition: some verb and noun, in either order, at most the gap apart, no sentence break."""
    import re

    from guardrail.elicitation import _SHOW_GAP

    for vs, ve in verbs:
        for ns, ne in nouns:
            a, b = (ve, ns) if ve <= ns else (ne, vs) if ne <= vs else (0, -1)
            if 0 <= b - a <= _SHOW_GAP and re.search(r"[.!?。！？\n]", text[a:b]) is None:
                return True
    return False


_spans = st.lists(
    st.tuples(st.integers(0, 300), st.integers(1, 12)).map(lambda t: (t[0], t[0] + t[1])), max_size=12
)


@given(_spans, _spans, st.text(alphabet="ab .\n", min_size=320, max_size=320))
def test_show_pairing_matches_its_definition(
    verbs: list[tuple[int, int]], nouns: list[tuple[int, int]], text: str
) -> None:
    from guardrail.elicitation import _shows

    assert _shows(verbs, nouns, text) == _shows_brute_force(verbs, nouns, text)
