"""The report's input: one JSON-able mapping that every renderer (text, JSON, HTML) reads.

The renderers never see engine objects, only this plain structure, so a report can be produced by the demo,
by ``guardrail analyze`` or by anyone's own pipeline, saved as JSON and rendered again later. Only
``title`` is required; every section is optional and a renderer shows what it is given.

``validate_report`` checks the shape once, at the boundary, and raises ``ReportError`` with the path of the
first bad field, so a renderer can index the data without defensive checks everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

__all__ = [
    "SCHEMA",
    "AccountRow",
    "ClusterRow",
    "PopulationRow",
    "ReportData",
    "ReportError",
    "TemplateRow",
    "Timeline",
    "validate_report",
]

SCHEMA = "guardrail.report/1"


class ReportError(ValueError):
    """The report data does not have the documented shape; the message names the offending field."""


class PopulationRow(TypedDict):
    """Requests of one population (in a demo, the simulation's truth; in a log, e.g. "all")."""

    name: str
    requests: int
    served: int
    throttled: int
    blocked: int


class _TimelineRequired(TypedDict):
    start: float  # seconds since epoch of the first bucket
    bucket_seconds: float
    series: dict[str, list[int]]  # all requests of the population per bucket
    refused: dict[str, list[int]]  # throttled + blocked per bucket (same keys, same lengths)


class Timeline(_TimelineRequired, total=False):
    """Requests per time bucket and population: ``series[name]`` has one count per bucket.

    ``groups`` (optional) splits the populations over several charts, e.g. honest and campaign.
    """

    groups: dict[str, list[str]]


class _ClusterRequired(TypedDict):
    id: str
    accounts: list[str]


class ClusterRow(_ClusterRequired, total=False):
    """A group of linked accounts with the evidence that linked them."""

    score: float
    action: str  # the cluster's verdict: "allow" (linked but left alone), "throttle" or "block"
    caught_at: float | None  # ts the cluster was caught (flagged, or its first refusal)
    templates: list[str]
    requests: int
    reasons: list[str]
    evidence: dict[str, Any]
    label: str  # e.g. the simulation's campaign name, when known


class _TemplateRequired(TypedDict):
    id: str


class TemplateRow(_TemplateRequired, total=False):
    """A recurring prompt template (a wrapper seen with many fills)."""

    fingerprint: str  # short hex of the template's fingerprint
    accounts: int
    requests: int
    concentration: float  # share of its accounts' traffic that uses it, 0..1
    sample: str  # always shown redacted
    cluster: str | None
    # account -> requests on this template, for the account-template graph
    account_requests: dict[str, int]


class _AccountRequired(TypedDict):
    id: str


class AccountRow(_AccountRequired, total=False):
    """One account's drill-down."""

    population: str
    cluster: str | None
    requests: int
    served: int
    throttled: int
    blocked: int
    first_ts: float
    last_ts: float
    templates: dict[str, int]  # template id -> requests
    reasons: list[str]
    first_refused_after: int | None  # requests sent before its first refusal


class _ReportRequired(TypedDict):
    title: str


class ReportData(_ReportRequired, total=False):
    """The whole report; see the module docstring."""

    schema: str
    generated_at: str  # ISO 8601
    source: dict[str, Any]  # e.g. {"kind": "demo", "scale": 0.05, "seed": 7, "storage": "memory://"}
    figures: dict[str, Any]  # headline numbers: precision, recall, latency, ... (name -> number or None)
    populations: list[PopulationRow]
    timeline: Timeline
    clusters: list[ClusterRow]
    templates: list[TemplateRow]
    accounts: list[AccountRow]
    notes: list[str]


def _fail(path: str, expected: str, value: object) -> ReportError:
    shown = type(value).__name__
    return ReportError(f"report field {path}: expected {expected}, got {shown}")


def _check_str(path: str, value: object) -> None:
    if not isinstance(value, str):
        raise _fail(path, "a string", value)


def _check_num(path: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, "a number", value)
    if not math.isfinite(value):
        raise ReportError(f"report field {path}: expected a finite number, got {value!r}")


def _check_int(path: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, "an integer", value)
    if value < 0:
        raise ReportError(f"report field {path}: expected a non-negative integer, got {value}")


def _check_list(path: str, value: object) -> Sequence[Any]:
    if not isinstance(value, list):
        raise _fail(path, "a list", value)
    return value


def _check_map(path: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "an object", value)
    for key in value:
        if not isinstance(key, str):
            raise ReportError(f"report field {path}: keys must be strings, got {type(key).__name__}")
    return value


_INT_FIELDS = ("requests", "served", "throttled", "blocked", "accounts")


def _check_row(path: str, row: Mapping[str, Any], required: Sequence[str]) -> None:
    for name in required:
        if name not in row:
            raise ReportError(f"report field {path}: missing required key {name!r}")
    for name, value in row.items():
        where = f"{path}.{name}"
        if name == "accounts" and path.startswith("clusters"):
            for j, account in enumerate(_check_list(where, value)):
                _check_str(f"{where}[{j}]", account)
        elif name in _INT_FIELDS:
            _check_int(where, value)
        elif name in ("score", "concentration", "first_ts", "last_ts"):
            _check_num(where, value)
        elif name == "caught_at":
            _check_num(where, value, optional=True)
        elif name == "first_refused_after":
            _check_int(where, value, optional=True)
        elif name in ("id", "name", "fingerprint", "sample", "population", "label", "action"):
            _check_str(where, value)
        elif name == "cluster" and value is not None:
            _check_str(where, value)
        elif name in ("reasons", "templates") and isinstance(value, list):
            for i, item in enumerate(value):
                _check_str(f"{where}[{i}]", item)
        elif name in ("templates", "account_requests"):
            for key, count in _check_map(where, value).items():
                _check_int(f"{where}[{key!r}]", count)
        elif name == "evidence":
            _check_map(where, value)


def _check_timeline(value: object) -> None:
    tl = _check_map("timeline", value)
    for name in ("start", "bucket_seconds", "series", "refused"):
        if name not in tl:
            raise ReportError(f"report field timeline: missing required key {name!r}")
    _check_num("timeline.start", tl["start"])
    _check_num("timeline.bucket_seconds", tl["bucket_seconds"])
    if tl["bucket_seconds"] <= 0:
        raise ReportError("report field timeline.bucket_seconds: must be positive")
    lengths = set()
    for part in ("series", "refused"):
        for pop, counts in _check_map(f"timeline.{part}", tl[part]).items():
            for i, n in enumerate(_check_list(f"timeline.{part}[{pop!r}]", counts)):
                _check_int(f"timeline.{part}[{pop!r}][{i}]", n)
            lengths.add(len(counts))
    if "groups" in tl:
        for group, names in _check_map("timeline.groups", tl["groups"]).items():
            for i, name in enumerate(_check_list(f"timeline.groups[{group!r}]", names)):
                _check_str(f"timeline.groups[{group!r}][{i}]", name)
    if len(lengths) > 1:
        raise ReportError("report field timeline: every series must have the same number of buckets")


def validate_report(data: object) -> ReportData:
    """Check ``data`` against the schema and return it typed; raise ``ReportError`` on the first problem."""
    top = _check_map("<root>", data)
    if "title" not in top:
        raise ReportError("report field <root>: missing required key 'title'")
    _check_str("title", top["title"])
    for name in ("schema", "generated_at"):
        if name in top:
            _check_str(name, top[name])
    for name in ("source", "figures"):
        if name in top:
            _check_map(name, top[name])
    if "notes" in top:
        for i, note in enumerate(_check_list("notes", top["notes"])):
            _check_str(f"notes[{i}]", note)
    sections: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("populations", ("name", "requests", "served", "throttled", "blocked")),
        ("clusters", ("id", "accounts")),
        ("templates", ("id",)),
        ("accounts", ("id",)),
    )
    for section, required in sections:
        if section not in top:
            continue
        for i, row in enumerate(_check_list(section, top[section])):
            _check_row(f"{section}[{i}]", _check_map(f"{section}[{i}]", row), required)
    if "timeline" in top:
        _check_timeline(top["timeline"])
    return top  # type: ignore[return-value]
