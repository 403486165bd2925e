"""Tally: the counts behind the populations table, the timeline and the account drill-down."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.report import render_html, validate_report
from guardrail.report._tally import Tally


def test_counts_and_first_refusal() -> None:
    pops = {"a1": "organic", "c1": "hydra", "c2": "hydra"}
    t = Tally(start=0.0, bucket_seconds=10.0, population_of=pops.__getitem__)
    for i, action in enumerate(["allow", "allow", "throttle", "allow", "block"]):
        t.add(ts=float(i * 7), account="c1", action=action, template="t1")
    t.add(ts=1.0, account="a1", action="allow")
    t.add(ts=25.0, account="c2", action="throttle")
    rows = {p["name"]: p for p in t.populations(order=("organic", "hydra"))}
    assert list(rows) == ["organic", "hydra"]
    assert rows["hydra"] == {"name": "hydra", "requests": 6, "served": 3, "throttled": 2, "blocked": 1}
    c1 = t.accounts["c1"]
    assert (c1.first_refused_ts, c1.refused_after, c1.templates) == (14.0, 2, {"t1": 5})
    assert t.accounts["c2"].refused_after == 0 and t.accounts["a1"].refused_after is None
    tl = t.timeline()
    assert tl["series"] == {"hydra": [2, 1, 3], "organic": [1, 0, 0]}  # ts 0 7 | 14 | 21 28 25
    assert tl["refused"] == {"hydra": [0, 1, 2], "organic": [0, 0, 0]}
    accounts = t.account_rows(cluster_of={"c1": "k1"}, label=str.upper)
    assert {a["id"]: a.get("cluster") for a in accounts} == {"C1": "k1", "A1": None, "C2": None}
    validate_report({"title": "x", "populations": t.populations(), "timeline": tl, "accounts": accounts})


def test_untracked_accounts_still_count() -> None:
    t = Tally(start=0.0, bucket_seconds=1.0, max_accounts=1)
    t.add(ts=0.0, account="a", action="allow")
    t.add(ts=0.0, account="b", action="served")
    assert list(t.accounts) == ["a"] and t.untracked == 1
    assert t.populations() == [{"name": "all", "requests": 2, "served": 2, "throttled": 0, "blocked": 0}]


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        Tally(start=0, bucket_seconds=1).add(ts=0, account="a", action="drop")
    with pytest.raises(ValueError, match="bucket_seconds"):
        Tally(start=0, bucket_seconds=0)


events = st.lists(
    st.tuples(
        st.floats(min_value=-50, max_value=5000, allow_nan=False),
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from(["allow", "throttle", "block"]),
    ),
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(events)
def test_totals_timeline_and_accounts_agree(seq: list[tuple[float, str, str]]) -> None:
    t = Tally(
        start=0.0, bucket_seconds=60.0, population_of=lambda a: "x" if a in "ab" else "y", max_buckets=50
    )
    for ts, account, action in seq:
        t.add(ts=ts, account=account, action=action)
    tl = t.timeline()
    pops = t.populations()
    for p in pops:
        assert p["requests"] == p["served"] + p["throttled"] + p["blocked"] == sum(tl["series"][p["name"]])
        assert sum(tl["refused"][p["name"]]) == p["throttled"] + p["blocked"]
    assert sum(p["requests"] for p in pops) == len(seq) == sum(a.requests for a in t.accounts.values())
    assert len({len(v) for v in [*tl["series"].values(), *tl["refused"].values()]}) <= 1
    render_html({"title": "t", "populations": pops, "timeline": tl, "accounts": t.account_rows()})
