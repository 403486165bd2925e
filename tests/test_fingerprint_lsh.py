"""LSH banding: parameter choice, promised recall (statistical), band keys, bounded memory."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.fingerprint import Fingerprint, Fingerprinter, LSHIndex, optimal_bands
from guardrail.fingerprint.lsh import collision_probability

FP = Fingerprinter()
PARAMS = FP.params


def fingerprint_from(values: np.ndarray) -> Fingerprint:
    return Fingerprint(PARAMS, 100, values.astype("<u4").tobytes())


def pair_with_similarity(rng: np.random.Generator, similarity: float) -> tuple[Fingerprint, Fingerprint]:
    """Two signatures whose values agree independently with probability ``similarity`` each: exactly the
    model under which MinHash values of two sets with that Jaccard similarity agree."""
    a = rng.integers(0, 2**32 - 1, size=128, dtype=np.uint64)
    b = rng.integers(0, 2**32 - 1, size=128, dtype=np.uint64)
    same = rng.random(128) < similarity
    b[same] = a[same]
    return fingerprint_from(a), fingerprint_from(b)


@settings(deadline=None, max_examples=30)
@given(st.floats(0.05, 0.95), st.sampled_from([32, 64, 128, 256]))
def test_optimal_bands_fit_and_straddle_threshold(threshold: float, num_perm: int) -> None:
    bands, rows = optimal_bands(threshold, num_perm)
    assert 1 <= bands * rows <= num_perm
    assert collision_probability(min(1.0, threshold + 0.25), bands, rows) > collision_probability(
        max(0.0, threshold - 0.25), bands, rows
    )


def test_optimal_bands_known_values() -> None:
    # Same criterion and the same answers as datasketch's _optimal_param for these inputs.
    assert optimal_bands(0.5, 128) == (25, 5)
    assert optimal_bands(0.8, 128) == (9, 13)
    with pytest.raises(ValueError):
        optimal_bands(1.0, 128)


@pytest.mark.parametrize("threshold", [0.5, 0.8])
@pytest.mark.parametrize("offset", [-0.2, 0.0, 0.1])
def test_recall_matches_promise(threshold: float, offset: float) -> None:
    rng = np.random.default_rng(int(threshold * 100 + offset * 1000 + 1000))
    similarity = threshold + offset
    index = LSHIndex(threshold=threshold, num_perm=128, capacity=10_000)
    trials = 600
    found = 0
    for i in range(trials):
        a, b = pair_with_similarity(rng, similarity)
        index.insert(i, a)
        found += i in index.query(b)
    promised = index.collision_probability(similarity)
    sigma = math.sqrt(promised * (1 - promised) / trials)
    assert abs(found / trials - promised) <= 4 * sigma + 0.01


def test_finds_near_duplicate_texts() -> None:
    rng = random.Random(3)
    vocab = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi".split()
    index = LSHIndex(threshold=0.5, num_perm=128)
    bases = [" ".join(rng.choice(vocab) for _ in range(80)) for _ in range(50)]
    for i, text in enumerate(bases):
        index.insert(i, FP.fingerprint(text))
    hits = 0
    for i, text in enumerate(bases):
        near = text.upper().replace(" ", "  ", 3) + " extra words"
        fp = FP.fingerprint(near)
        assert fp.similarity(FP.fingerprint(text)) >= 0.7
        hits += i in index.query(fp)
    assert hits == len(bases)


def test_band_keys_are_stable_bytes() -> None:
    index = LSHIndex(threshold=0.5, num_perm=128)
    fp = FP.fingerprint("hello world, think step by step")
    keys = index.band_keys(fp)
    assert len(keys) == index.bands
    assert all(isinstance(k, bytes) and len(k) == 2 + 4 * index.rows for k in keys)
    assert len(set(keys)) == len(keys)
    assert keys == LSHIndex(threshold=0.5, num_perm=128).band_keys(
        FP.fingerprint("HELLO world, think step by step")
    )
    assert keys[0][:2] == b"\x00\x00" and keys[1][:2] == b"\x01\x00"


def test_insert_query_remove_and_replace() -> None:
    index = LSHIndex(threshold=0.8, num_perm=128)
    a, b = FP.fingerprint("the quick brown fox jumps"), FP.fingerprint("completely different text here")
    index.insert("a", a)
    index.insert("b", b)
    assert index.query(a) == ["a"] and index.query(b) == ["b"]
    assert "a" in index and len(index) == 2
    index.insert("a", b)  # re-insert under a new fingerprint replaces the old bands
    assert index.query(a) == [] and sorted(map(str, index.query(b))) == ["a", "b"]
    assert index.remove("a") and not index.remove("a")
    assert index.query(b) == ["b"] and len(index) == 1


def test_large_buckets() -> None:
    index = LSHIndex(threshold=0.8, num_perm=128)
    fp = FP.fingerprint("the same prompt every time")
    for i in range(100):
        index.insert(i, fp)
    assert sorted(map(int, index.query(fp))) == list(range(100))
    for i in range(0, 100, 2):
        assert index.remove(i)
    assert sorted(map(int, index.query(fp))) == list(range(1, 100, 2))


def test_capacity_evicts_least_recently_used() -> None:
    evicted: list[object] = []
    index = LSHIndex(threshold=0.8, num_perm=128, capacity=3, on_evict=evicted.append)
    fps = [FP.fingerprint(f"prompt number {'x' * i} about topic {chr(97 + i) * 6}") for i in range(5)]
    for i in range(3):
        index.insert(i, fps[i])
    index.touch(0)  # 0 becomes most recently used
    index.insert(3, fps[3])
    assert evicted == [1] and 1 not in index
    index.insert(4, fps[4])
    assert evicted == [1, 2] and len(index) == 3
    assert index.query(fps[1]) == [] and index.query(fps[0]) == [0]
    assert sum(len(t) for t in index._tables) <= 3 * index.bands


def test_parameter_checks() -> None:
    index = LSHIndex(threshold=0.5, num_perm=128)
    index.insert("a", FP.fingerprint("text"))
    with pytest.raises(ValueError):
        index.query(Fingerprinter(num_perm=64).fingerprint("text"))
    with pytest.raises(ValueError):
        index.query(Fingerprinter(seed=3).fingerprint("text"))
    with pytest.raises(TypeError):
        index.query("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LSHIndex(capacity=0)


@settings(deadline=None, max_examples=40)
@given(
    st.lists(
        st.tuples(st.sampled_from(["insert", "insert", "remove"]), st.integers(0, 7), st.integers(0, 5)),
        max_size=40,
    ),
    st.sampled_from([0.5, 0.8]),
)
def test_query_equals_brute_force_band_comparison(ops: list[tuple[str, int, int]], threshold: float) -> None:
    # Signature values from {0, 1}: bands collide often, so buckets of one, a few and many keys all occur.
    rng = np.random.default_rng(5)
    pool = [fingerprint_from(rng.integers(0, 2, size=128, dtype=np.uint64)) for _ in range(6)]
    index = LSHIndex(threshold=threshold, num_perm=128, capacity=5)
    model: dict[int, Fingerprint] = {}
    for op, key, which in ops:
        if op == "insert":
            index.insert(key, pool[which])
            model.pop(key, None)
            model[key] = pool[which]
            while len(model) > 5:
                del model[next(iter(model))]
        else:
            assert index.remove(key) == (model.pop(key, None) is not None)
    assert set(index._entries) == set(model)
    for fp in pool:
        bands = index.band_keys(fp)
        expected = {k for k, other in model.items() if set(bands) & set(index.band_keys(other))}
        result = index.query(fp)
        assert len(result) == len(set(result)) and set(result) == expected
    # A bucket of several keys is a set of at least two; one key is held bare.
    assert all(len(b) >= 2 for table in index._tables for b in table.values() if isinstance(b, set))
    with pytest.raises(TypeError):
        index.insert({1, 2}, pool[0])  # type: ignore[arg-type]


def test_band_keys_carry_the_in_memory_band_values() -> None:
    index = LSHIndex(threshold=0.5, num_perm=128)
    fp = FP.fingerprint("some prompt text to index")
    values = fp.signature_bytes
    width = 4 * index.rows
    assert index.band_keys(fp) == [
        i.to_bytes(2, "little") + values[i * width : (i + 1) * width] for i in range(index.bands)
    ]
