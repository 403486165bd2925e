"""The HTML report: content, escaping, redaction, self-containment, and schema errors."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from _sample import HOSTILE, SECRET_TAIL, sample_report
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.report import ReportError, redact, render_html, validate_report


def test_report_has_every_section() -> None:
    page = render_html(sample_report())
    for table in ("populations", "clusters", "templates", "accounts"):
        assert f'<table id="{table}">' in page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 3  # 2 groups + refused
    assert page.count('class="graph"') == 1
    assert page.count('<polyline class="series"') == 4  # 1 + 1 in the groups, 2 refused
    assert page.count('<g class="marker">') == 3  # the cluster's catch, on every chart
    assert '<span class="pill bad">throttle</span>' in page
    assert page.count('<circle class="acct"') == 6 and page.count('<rect class="tmpl"') == 1
    assert page.count("<tr data-search=") == 12
    assert "0.970" not in page and "0.97" in page  # concentration shown with two decimals


def test_figures_are_shown_as_given() -> None:
    data = sample_report()
    data["figures"] = {"precision": 0.875, "served campaign share": 0.125, "requests": 12345, "x (%)": 0.25}
    page = render_html(data)
    assert ">0.875<" in page and ">0.125<" in page and ">12,345<" in page and ">0.2%<" in page


def test_every_string_is_escaped() -> None:
    page = render_html(sample_report())
    assert HOSTILE not in page
    assert "<script>alert" not in page
    assert page.count("<script>") == 1  # only our own filter script
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_samples_are_redacted() -> None:
    page = render_html(sample_report())
    assert SECRET_TAIL not in page
    assert "must never reach" not in page
    assert "You are a careful tutor." in page


def test_nothing_is_fetched_from_the_network() -> None:
    page = render_html(sample_report())
    urls = set(re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]+)""", page))
    assert urls == set()
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page


def test_minimal_report_renders() -> None:
    page = render_html({"title": "empty"})
    assert "<h1>empty</h1>" in page
    assert "No cluster of linked accounts was found." in page


def test_tables_are_capped_and_say_so() -> None:
    data = sample_report()
    data["clusters"].append({"id": "c2", "accounts": ["x", "y"]})
    page = render_html(data, max_accounts=3, max_templates=1, max_clusters=1)
    assert "Showing the first 1 clusters of 2." in page and "<td>c2</td>" not in page
    assert page.count("<tr data-search=") == 3
    assert "3</span> of 12 accounts shown" in page
    assert "Showing the first 1 templates of 2." in page


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("title"), "missing required key 'title'"),
        (lambda d: d["populations"][0].update(served="10"), r"populations\[0\]\.served: expected an integer"),
        (lambda d: d["clusters"][0].update(accounts="a,b"), r"clusters\[0\]\.accounts: expected a list"),
        (lambda d: d["timeline"]["series"]["organic"].append(5), "same number of buckets"),
        (lambda d: d["timeline"].update(bucket_seconds=0), "must be positive"),
        (lambda d: d["templates"][0].update(concentration=float("nan")), "finite number"),
        (lambda d: d["accounts"][1].update(requests=-1), "non-negative"),
        (lambda d: d["accounts"][1].update(requests=True), "expected an integer, got bool"),
    ],
)
def test_bad_data_gets_a_clear_error(mutate: Any, message: str) -> None:
    data = copy.deepcopy(sample_report())
    mutate(data)
    with pytest.raises(ReportError, match=message):
        validate_report(data)


def test_not_a_mapping_is_an_error() -> None:
    with pytest.raises(ReportError, match="expected an object, got list"):
        render_html([1, 2])  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=0, max_value=12))
def test_redact_is_idempotent_and_bounded(text: str, keep: int) -> None:
    once = redact(text, keep_words=keep)
    assert redact(once, keep_words=keep) == once
    head = re.sub(r"(^| )\u2026 \[\+\d+ words? masked\]$", "", once)
    assert len(head.split()) <= keep
    assert not re.search(r"\d", head)  # id-like words are masked


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["请", "一步", "思考", "推理", "คิด", "You", "are", " ", "sk-1", "x9"]), max_size=40
    ),
    st.integers(min_value=0, max_value=12),
)
def test_redact_counts_unspaced_scripts_by_character(pieces: list[str], keep: int) -> None:
    """A sentence of Chinese or Thai is not one word shown whole: each character counts, as in the
    fingerprints; mixed text stays idempotent and bounded."""
    text = "".join(pieces)
    once = redact(text, keep_words=keep)
    assert redact(once, keep_words=keep) == once
    head = re.sub(r"(^| )\u2026 \[\+\d+ words? masked\]$", "", once)
    cjk = sum(1 for ch in head if "\u2e80" <= ch <= "\u9fff" or "\u0e00" <= ch <= "\u0e7f")
    assert cjk <= keep
    assert redact("请一步一步地思考并解释你的推理过程然后给出最终答案").startswith("请一步一步地 \u2026")


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40), st.text(max_size=200))
def test_any_strings_render_escaped(account: str, label: str, sample: str) -> None:
    data = sample_report()
    data["accounts"][0]["id"] = account
    data["clusters"][0]["accounts"][0] = account
    data["clusters"][0]["label"] = label
    data["templates"][0]["sample"] = sample
    page = render_html(data)
    assert page.count("<script") == 1
    for text in (account, label):
        if "<" in text:
            assert text not in page


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=100))
def test_escaped_text_is_inert(text: str) -> None:
    from guardrail.report._escape import esc

    out = esc(text)
    assert not set(out) & set("<>\"'")
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]", out)
    assert "&" not in out.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "").replace(
        "&quot;", ""
    ).replace("&#x27;", "")
