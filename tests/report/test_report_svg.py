"""The SVG charts: well-formed for any input, ticks that cover the data, nodes and edges as given."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.report._svg import graph_svg, nice_ticks, timeline_svg

NS = "{http://www.w3.org/2000/svg}"
names = st.text(min_size=1, max_size=12)


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_ticks_start_at_zero_cover_the_data_and_are_few(high: float) -> None:
    ticks = nice_ticks(high)
    assert ticks[0] == 0 and ticks[-1] >= high
    assert 2 <= len(ticks) <= 6
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        names, st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30), max_size=5
    ),
    st.lists(st.tuples(st.floats(min_value=0, max_value=1e5), names), max_size=6),
)
def test_timeline_is_well_formed_svg(series: dict[str, list[int]], markers: list[tuple[float, str]]) -> None:
    svg = timeline_svg(series, start=0.0, bucket_seconds=3600.0, markers=markers, title="t <&>")
    root = ET.fromstring(svg)
    assert len(root.findall(f"{NS}polyline")) == len(series)
    assert len(root.findall(f"{NS}g")) == len(markers)
    for line in root.findall(f"{NS}polyline"):
        for point in line.get("points", "").split():
            x, y = (float(v) for v in point.split(","))
            assert 0 <= x <= 920 and 0 <= y <= 260


@settings(max_examples=60, deadline=None)
@given(
    st.lists(names, unique=True, max_size=20),
    st.lists(names, unique=True, min_size=1, max_size=5),
    st.integers(min_value=1, max_value=10**6),
)
def test_graph_is_well_formed_svg(accounts: list[str], templates: list[str], n: int) -> None:
    edges = {(a, t): n for a in accounts for t in templates[:1]}
    edges[("not-a-member", templates[0])] = 5  # ignored: not drawn
    root = ET.fromstring(graph_svg("c<1>", accounts, templates, edges))
    assert len(root.findall(f"{NS}circle")) == len(accounts)
    assert len(root.findall(f"{NS}rect")) == len(templates)
    assert len(root.findall(f"{NS}line")) == len(accounts)
