"""Count-min sketch and HyperLogLog of the memory engine store."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.engine._sketch import CountMinSketch, HyperLogLog, cell_indexes

u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)


@given(st.lists(u64, min_size=1, max_size=300))
@settings(max_examples=60, deadline=None)
def test_count_min_never_undercounts_before_halving(values: list[int]) -> None:
    sketch = CountMinSketch(1 << 12, 3)
    truth: Counter[int] = Counter()
    for v in values:
        est = sketch.add(v)
        truth[v] += 1
        assert est >= truth[v]
    for v, n in truth.items():
        assert sketch.estimate(v) >= n


@given(st.lists(u64, min_size=1, max_size=40, unique=True), st.integers(min_value=1, max_value=5))
@settings(max_examples=40, deadline=None)
def test_add_many_matches_add(values: list[int], rounds: int) -> None:
    one, many = CountMinSketch(1 << 10, 3), CountMinSketch(1 << 10, 3)
    for _ in range(rounds):
        a = [one.add(v) for v in values]
        b = many.add_many(values)
        assert all(y >= 1 for y in b)
        # Vectorised conservative update may differ only where two values of one batch share cells.
        assert sum(b) >= sum(1 for _ in values)
        assert len(a) == len(b)
    for v in values:
        assert many.estimate(v) >= rounds


def test_halving_bounds_the_sketch() -> None:
    sketch = CountMinSketch(64, 2)
    for i in range(64 * 20):
        sketch.add(i * 0x9E3779B97F4A7C15 & ((1 << 64) - 1))
    assert max(sketch.estimate(i) for i in range(100)) < 64


def test_cell_indexes_are_in_their_rows() -> None:
    for v in (0, 1, (1 << 64) - 1, 0xDEADBEEF12345678):
        idx = cell_indexes(v, 20, 3)
        assert [i >> 20 for i in idx] == [0, 1, 2]


@given(st.integers(min_value=0, max_value=2000))
@settings(max_examples=25, deadline=None)
def test_hyperloglog_estimates_distinct_counts(n: int) -> None:
    import xxhash

    hll = HyperLogLog()
    for i in range(n):
        h = xxhash.xxh3_64_intdigest(str(i).encode())
        hll.add(h)
        hll.add(h)
    est = hll.count()
    assert abs(est - n) <= max(3, 0.25 * n)


@given(st.lists(u64, min_size=2, max_size=60, unique=True), st.integers(min_value=1, max_value=4))
@settings(max_examples=60, deadline=None)
def test_add_many_raises_a_shared_cell_to_the_largest_estimate(values: list[int], rounds: int) -> None:
    # A tiny sketch forces many values of one batch onto the same cells.
    sketch = CountMinSketch(1 << 6, 2)
    for _ in range(rounds):
        before = list(sketch._view)
        est = sketch.add_many(values)
        want = list(before)
        for v, e in zip(values, est, strict=True):
            for c in cell_indexes(v, 6, 2):
                want[c] = max(want[c], e)
        if sketch._since:  # no halving happened in this batch
            assert list(sketch._view) == want


@given(st.lists(u64, max_size=80), st.integers(min_value=0, max_value=70))
@settings(max_examples=80, deadline=None)
def test_distinct_sorted_is_the_smallest_distinct_values(values: list[int], limit: int) -> None:
    from guardrail.engine._sketch import distinct_sorted

    assert distinct_sorted(values, limit) == sorted(set(values))[:limit]
    assert distinct_sorted(tuple(sorted(set(values))), limit) == sorted(set(values))[:limit]


@given(
    st.lists(st.lists(u64, min_size=1, max_size=40, unique=True), min_size=1, max_size=8),
    st.sampled_from([4, 8, 1 << 12]),
)
@settings(max_examples=80, deadline=None)
def test_small_and_vector_paths_count_alike(batches: list[list[int]], width: int) -> None:
    # Narrow sketches make values share cells, where the two paths could diverge; both must end with the
    # same counters and return the same estimates (the Redis script mirrors them).
    small = CountMinSketch(width, 3)
    vector = CountMinSketch(width, 3)
    for batch in batches:
        values = sorted(batch)
        assert small._add_small3(values) == vector._add_vector(values)
        assert small._cells == vector._cells


@given(st.lists(st.lists(u64, min_size=1, max_size=30, unique=True), min_size=1, max_size=6))
@settings(max_examples=40, deadline=None)
def test_add_many_halves_after_width_insertions_on_either_path(batches: list[list[int]]) -> None:
    a = CountMinSketch(16, 3)
    b = CountMinSketch(16, 3)
    for batch in batches:
        values = sorted(batch)
        assert a.add_many(values) == b.add_many(values)
    assert a._cells == b._cells
    assert max(a._cells) <= sum(len(x) for x in batches)


@given(st.lists(u64, max_size=200))
@settings(max_examples=40, deadline=None)
def test_hyperloglog_position_is_add(values: list[int]) -> None:
    a, b = HyperLogLog(), HyperLogLog()
    for v in values:
        a.add(v)
        b.add_position(*HyperLogLog.position(v))
    assert a.count() == b.count()
    assert a._regs == b._regs
