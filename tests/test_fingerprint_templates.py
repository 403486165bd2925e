"""Streaming template assignment: near-duplicates grouped, different prompts apart, stable ids, bounded."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.fingerprint import Fingerprinter, TemplateIndex, TemplateMatch
from guardrail.fingerprint.templates import template_id

FP = Fingerprinter()
VOCAB = (
    "solve prove explain derive compute integral matrix prime train graph tree sort search cache network "
    "protein market poem story history river mountain city language model reason careful detail"
).split()


def prompt(rng: random.Random, n: int = 60) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def disguise(rng: random.Random, text: str) -> str:
    out = text.replace("a", "\u0430", rng.randint(0, 5)).upper() if rng.random() < 0.5 else text
    return "\u200b".join(out.split(" ", 3)) + f" request {rng.randint(0, 10**9)}"


def test_groups_near_duplicates_and_separates_different_texts() -> None:
    rng = random.Random(11)
    index = TemplateIndex(threshold=0.5, capacity=1000)
    originals = [prompt(rng) for _ in range(30)]
    ids = [index.assign(FP.fingerprint(text)) for text in originals]
    assert all(m.new and m.similarity == 1.0 for m in ids)
    assert len({m.template_id for m in ids}) == 30
    for _ in range(200):
        i = rng.randrange(30)
        match = index.assign(FP.fingerprint(disguise(rng, originals[i])))
        assert match == TemplateMatch(ids[i].template_id, match.similarity, False)
        assert match.similarity >= 0.5
    assert len(index) == 30


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 2**32))
def test_assignment_is_verified_by_similarity(seed: int) -> None:
    rng = random.Random(seed)
    index = TemplateIndex(threshold=0.6, capacity=100)
    texts = [prompt(rng, rng.randint(5, 60)) for _ in range(8)]
    founders = {}
    for text in texts:
        fp = FP.fingerprint(text)
        match = index.assign(fp)
        if match.new:
            founders[match.template_id] = fp
        else:
            assert match.similarity >= 0.6
            assert founders[match.template_id].similarity(fp) == match.similarity


def test_ids_are_stable_across_instances() -> None:
    fp = FP.fingerprint("You are a tutor. Think step by step. Task: {fill}")
    a, b = TemplateIndex(), TemplateIndex()
    assert a.assign(fp).template_id == b.assign(fp).template_id == template_id(fp)
    assert template_id(fp).startswith("tpl-") and len(template_id(fp)) == 20


def test_empty_prompts_share_one_template() -> None:
    index = TemplateIndex()
    first = index.assign(FP.fingerprint(""))
    second = index.assign(FP.fingerprint("\u200b"))
    assert first.new and not second.new and first.template_id == second.template_id


def test_bounded() -> None:
    rng = random.Random(5)
    index = TemplateIndex(threshold=0.5, capacity=10)
    for _ in range(50):
        index.assign(FP.fingerprint(prompt(rng)))
    assert len(index) == 10 and len(index.lsh) == 10


def test_invalid_threshold() -> None:
    with pytest.raises(ValueError):
        TemplateIndex(threshold=0.0)


def test_matched_templates_stay_while_cold_ones_go() -> None:
    rng = random.Random(8)
    index = TemplateIndex(threshold=0.5, capacity=3)
    a, b, c, d = (prompt(rng) for _ in range(4))
    ids = [index.assign(FP.fingerprint(t)).template_id for t in (a, b, c)]
    assert index.assign(FP.fingerprint(a.upper())).template_id == ids[0]  # A is now the most recent
    index.assign(FP.fingerprint(d))
    assert ids[0] in index and ids[1] not in index and ids[2] in index


def test_concurrent_assignment_keeps_the_index_consistent() -> None:
    import threading

    rng = random.Random(12)
    texts = [prompt(rng, 30) for _ in range(40)]
    fps = FP.fingerprint_many(texts + [t.upper() for t in texts])
    index = TemplateIndex(threshold=0.5, capacity=25)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(200):
                index.assign(fps[(i * 7 + offset) % len(fps)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(index) == len(index.lsh) <= 25
    assert all(template in index for template in index.lsh._entries)
