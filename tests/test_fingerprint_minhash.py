"""Fingerprints: exact XXH3 shingles, similarity properties, accuracy against exact Jaccard, byte format,
determinism across processes, parameter checks."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.fingerprint import Fingerprint, Fingerprinter, PromptFingerprint
from guardrail.fingerprint.shingles import shingle_hashes

VOCAB = (
    "you are a helpful assistant think step by step reason carefully answer the question below show work "
    "prove that integral sum of all numbers train leaves station code function returns list python bug fix"
).split()

FP = Fingerprinter()
texts = st.text(max_size=400)
sentences = st.lists(st.sampled_from(VOCAB), min_size=0, max_size=120).map(" ".join)


def exact_jaccard(fpr: Fingerprinter, a: str, b: str) -> float:
    sa, sb = set(fpr.shingle_hashes(a).tolist()), set(fpr.shingle_hashes(b).tolist())
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def mutate(rng: random.Random, words: list[str], rate: float) -> list[str]:
    out: list[str] = []
    for w in words:
        r = rng.random()
        if r < rate / 2:
            out.append(rng.choice(VOCAB))
        elif r < rate:
            continue
        else:
            out.append(w)
    return out


@settings(deadline=None)
@given(st.binary(max_size=64), st.integers(4, 8), st.integers(0, 2**64 - 1))
def test_shingle_hashes_are_xxh3(data: bytes, size: int, seed: int) -> None:
    got = shingle_hashes(data, size, seed).tolist()
    if len(data) < size:
        expected = [xxhash.xxh3_64_intdigest(data, seed)] if data else []
    else:
        expected = [xxhash.xxh3_64_intdigest(data[i : i + size], seed) for i in range(len(data) - size + 1)]
    assert got == expected


@settings(deadline=None)
@given(texts, texts)
def test_similarity_symmetric_and_bounded(a: str, b: str) -> None:
    fa, fb = FP.fingerprint(a), FP.fingerprint(b)
    assert fa.similarity(fb) == fb.similarity(fa)
    assert 0.0 <= fa.similarity(fb) <= 1.0
    assert 0.0 <= fa.containment(fb) <= 1.0


@settings(deadline=None)
@given(texts)
def test_identical_text_similarity_one(text: str) -> None:
    assert FP.fingerprint(text).similarity(FP.fingerprint(text)) == 1.0
    assert FP.fingerprint(text) == FP.fingerprint(text)


@settings(deadline=None)
@given(sentences, st.data())
def test_evasions_do_not_change_the_fingerprint(text: str, data: st.DataObject) -> None:
    noisy = "".join(
        c
        + (
            data.draw(st.sampled_from(["\u200b", "\u200d", "\u2060", "\ufe0f"]))
            if data.draw(st.booleans())
            else ""
        )
        for c in text
    )
    homoglyphs = text.replace("a", "\u0430").replace("o", "\u03bf").replace("e", "\u0435")
    shouting = "   ".join(text.upper().split(" "))
    base = FP.fingerprint(text)
    for variant in (noisy, homoglyphs, shouting):
        assert FP.fingerprint(variant).similarity(base) == 1.0


@settings(deadline=None, max_examples=60)
@given(st.integers(0, 2**32), st.sampled_from([0.02, 0.1, 0.3, 0.6]), st.integers(20, 120))
def test_estimate_within_statistical_error(seed: int, rate: float, length: int) -> None:
    rng = random.Random(seed)
    words = [rng.choice(VOCAB) for _ in range(length)]
    a, b = " ".join(words), " ".join(mutate(rng, words, rate))
    for fpr in (FP, Fingerprinter(scheme="kperm")):
        exact = exact_jaccard(fpr, a, b)
        estimate = fpr.fingerprint(a).similarity(fpr.fingerprint(b))
        bound = 4 * math.sqrt(exact * (1 - exact) / fpr.params.num_perm) + 0.03
        assert abs(estimate - exact) <= bound


def test_estimator_unbiased_over_many_pairs() -> None:
    rng = random.Random(2024)
    errors: list[float] = []
    beyond_3_sigma = 0
    for _ in range(300):
        words = [rng.choice(VOCAB) for _ in range(rng.randint(10, 200))]
        a, b = " ".join(words), " ".join(mutate(rng, words, rng.choice([0.05, 0.2, 0.5])))
        exact = exact_jaccard(FP, a, b)
        error = FP.fingerprint(a).similarity(FP.fingerprint(b)) - exact
        errors.append(error)
        beyond_3_sigma += abs(error) > 3 * math.sqrt(exact * (1 - exact) / 128) + 1e-9
    # Mean error of an unbiased estimator over 300 pairs: standard error ~0.003.
    assert abs(float(np.mean(errors))) < 0.012
    assert beyond_3_sigma <= 9  # 0.3% expected; 3% allowed


def test_empty_and_tiny_texts() -> None:
    empty = FP.fingerprint("")
    assert empty.is_empty and empty.cardinality == 0
    assert empty.similarity(FP.fingerprint("\u200b  \n")) == 1.0
    assert empty.similarity(FP.fingerprint("hi")) == 0.0
    assert FP.fingerprint("hi").similarity(FP.fingerprint("HI")) == 1.0
    assert FP.fingerprint("hi").similarity(FP.fingerprint("ho")) == 0.0
    assert empty.containment(FP.fingerprint("hello world")) == 1.0


@settings(deadline=None)
@given(texts)
def test_bytes_round_trip(text: str) -> None:
    fp = FP.fingerprint(text)
    data = fp.to_bytes()
    assert data[:4] == b"GRFP" and len(data) == 24 + 4 * 128
    again = Fingerprint.from_bytes(data)
    assert again == fp and hash(again) == hash(fp) and again.to_bytes() == data


@settings(deadline=None)
@given(st.binary(max_size=600))
def test_from_bytes_rejects_garbage_cleanly(data: bytes) -> None:
    try:
        Fingerprint.from_bytes(data)
    except ValueError:
        pass


def test_from_bytes_errors() -> None:
    good = FP.fingerprint("hello world").to_bytes()
    for bad in (
        b"",
        good[:-1],
        b"XXXX" + good[4:],
        good[:4] + b"\x09" + good[5:],
        good[:5] + b"\x07" + good[6:],
    ):
        with pytest.raises(ValueError):
            Fingerprint.from_bytes(bad)


def test_mismatched_parameters_raise() -> None:
    fp = FP.fingerprint("hello world")
    for other in (
        Fingerprinter(seed=1),
        Fingerprinter(num_perm=64),
        Fingerprinter(shingle_size=6),
        Fingerprinter(mask_ids=False),
        Fingerprinter(scheme="kperm"),
    ):
        with pytest.raises(ValueError):
            fp.similarity(other.fingerprint("hello world"))
    with pytest.raises(TypeError):
        fp.similarity("hello world")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_perm": 0},
        {"num_perm": 5000},
        {"seed": -1},
        {"seed": 2**64},
        {"shingle_size": 3},
        {"scheme": "x"},
    ],
)
def test_invalid_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Fingerprinter(**kwargs)  # type: ignore[arg-type]


def test_immutable_and_hashable() -> None:
    fp = FP.fingerprint("hello world")
    with pytest.raises(AttributeError):
        fp._values = b""  # type: ignore[misc]
    with pytest.raises(ValueError):
        fp.values[0] = 1
    assert len({fp, FP.fingerprint("HELLO   world"), FP.fingerprint("bye")}) == 2


@settings(deadline=None, max_examples=30)
@given(st.lists(texts, max_size=8))
def test_batch_equals_single(batch: list[str]) -> None:
    for fpr in (
        FP,
        Fingerprinter(num_perm=100),
        Fingerprinter(num_perm=1),
        Fingerprinter(scheme="kperm", num_perm=32),
    ):
        assert fpr.fingerprint_many(batch) == [fpr.fingerprint(t) for t in batch]


def test_segments() -> None:
    a = FP.segments("You are a tutor. Think step by step.\nTask 12: add 3 and 4.")
    b = FP.segments("YOU ARE A TUTOR.  Think step by step.\nTask 99: prove Fermat's last theorem.")
    assert len(a) == 4 and all(0 <= s < 2**64 for s in a)
    assert a[:3] == b[:3] and a[3] != b[3]
    assert FP.segments("") == ()
    assert FP.segments("same. same. same.") == FP.segments("same.")


class _Prompt:
    system = "You are a tutor. Think step by step."
    user = "Task 7: add 3 and 4."

    @property
    def text(self) -> str:
        return self.system + "\n" + self.user


def test_prompt_fingerprint() -> None:
    pf = FP.fingerprint_prompt(_Prompt())
    assert isinstance(pf, PromptFingerprint)
    assert pf.system == FP.fingerprint(_Prompt.system)
    assert pf.user == FP.fingerprint(_Prompt.user)
    assert pf.whole == FP.fingerprint(_Prompt().text)
    assert pf.segments == FP.segments(_Prompt().text)

    class NoSystem(_Prompt):
        system = ""

    assert FP.fingerprint_prompt(NoSystem()).system is None


def test_equal_across_processes() -> None:
    samples = [
        "Hello, world!",
        "Think step by step: \u0430\u0435 \u200b 42",
        "",
        "x" * 5000,
        "\U0001f600 emoji",
    ]
    script = textwrap.dedent(
        """
        import sys
        from guardrail.fingerprint import Fingerprinter
        samples = {samples!r}
        for fpr in (Fingerprinter(), Fingerprinter(scheme="kperm", seed=7, num_perm=64)):
            for fp in fpr.fingerprint_many(samples):
                print(fp.to_bytes().hex())
            for s in samples:
                print(fpr.segments(s))
        """
    ).format(samples=samples)
    expected = []
    for fpr in (FP, Fingerprinter(scheme="kperm", seed=7, num_perm=64)):
        expected += [fp.to_bytes().hex() for fp in fpr.fingerprint_many(samples)]
        expected += [str(fpr.segments(s)) for s in samples]
    for hashseed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.split("\n")[:-1] == expected


def test_batch_spanning_several_chunks() -> None:
    rng = random.Random(9)
    batch = [" ".join(rng.choice(VOCAB) for _ in range(rng.choice([0, 1, 400, 1500]))) for _ in range(40)]
    assert FP.fingerprint_many(batch) == [FP.fingerprint(t) for t in batch]
    assert FP.fingerprint_many([]) == []


def test_prompt_fingerprint_of_an_extracted_prompt() -> None:
    extract = pytest.importorskip("guardrail.extract")
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are a tutor. Think step by step."},
            {"role": "user", "content": "Task 7: add 3 and 4."},
        ],
    }
    prompt = extract.extract("/v1/chat/completions", body)
    if not isinstance(prompt, extract.Prompt):
        pytest.skip(f"extract gave {prompt!r}")
    pf = FP.fingerprint_prompt(prompt)
    assert pf.system == FP.fingerprint("You are a tutor. Think step by step.")
    assert pf.user == FP.fingerprint("Task 7: add 3 and 4.")
    assert pf.whole == FP.fingerprint(prompt.text)


def test_golden_values_pin_the_format() -> None:
    """Fingerprints stored by one release must compare with the next: any change here is a format change
    (bump FORMAT_VERSION or NORMALIZATION_VERSION instead of editing these values)."""
    text = "You are a helpful assistant. Think step by step: what is 17 * 23?"
    oph = FP.fingerprint(text).to_bytes()
    kperm = Fingerprinter(scheme="kperm").fingerprint(text).to_bytes()
    assert oph[:24].hex() == "47524650010101050101800000000000000000003a000000"
    assert xxhash.xxh3_64_hexdigest(oph) == "1dc275414d5f8abb"
    assert xxhash.xxh3_64_hexdigest(kperm) == "e8c9b366ab008b78"
    assert FP.segments(text) == (3788859046732937537, 17790768838554560888, 11202080215641526859)


@settings(deadline=None, max_examples=60)
@given(
    st.lists(st.integers(0, 2**64 - 1), max_size=300),
    st.sampled_from([1, 7, 64, 100, 128, 256]),
    st.integers(0, 2**64 - 1),
)
def test_single_text_path_equals_batch_path(values: list[int], num_perm: int, seed: int) -> None:
    from guardrail.fingerprint.minhash import signature_one, signatures_concat

    params = Fingerprinter(num_perm=num_perm, seed=seed).params
    h = np.array(values, dtype=np.uint64)
    other = np.array([1, 2, 3], dtype=np.uint64)
    one = signature_one(h.copy(), params, owned=True)
    assert one == signature_one(h, params) == signatures_concat(h, None, 1, params)[0]
    doc_ids = np.repeat(np.arange(2, dtype=np.uint64), [len(h), len(other)])
    assert one == signatures_concat(np.concatenate((h, other)), doc_ids, 2, params)[0]
    assert h.tolist() == values  # not owned: left untouched


@settings(deadline=None, max_examples=20)
@given(st.lists(st.one_of(texts, sentences, sentences.map(lambda s: s + " " + s)), max_size=8))
def test_batch_of_long_and_short_texts_equals_single(batch: list[str]) -> None:
    assert FP.fingerprint_many(batch) == [FP.fingerprint(t) for t in batch]
