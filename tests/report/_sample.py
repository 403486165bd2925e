"""A hand-built report with hostile strings, for renderer tests that must not depend on the engine."""

from __future__ import annotations

from typing import Any

HOSTILE = '<script>alert("x")</script>&amp;"\''
SECRET_TAIL = "the secret tail of the prompt that must never reach a report"


def sample_report() -> dict[str, Any]:
    start = 1_700_000_000.0
    accounts: list[dict[str, Any]] = []
    for i in range(12):
        campaign = i < 6
        accounts.append(
            {
                "id": f"acct-{i}" if i else f"acct-{HOSTILE}",
                "population": "campaign:hydra" if campaign else "organic",
                "cluster": "c1" if campaign else None,
                "requests": 100 + i,
                "served": 60 if campaign else 100 + i,
                "throttled": 40 + i if campaign else 0,
                "blocked": 0,
                "first_ts": start,
                "last_ts": start + 3600,
                "templates": {"t1": 90} if campaign else {"t2": 5},
                "reasons": ["shares a rare template with 5 accounts"] if campaign else [],
                "first_refused_after": 60 if campaign else None,
            }
        )
    return {
        "schema": "guardrail.report/1",
        "title": f"guardrail report {HOSTILE}",
        "generated_at": "2026-11-27T03:00:00Z",
        "source": {"kind": "test", "seed": 7},
        "figures": {"precision": 1.0, "recall": 0.5, "requests": 1266, "added latency p50 (ms)": 0.41},
        "populations": [
            {"name": "organic", "requests": 621, "served": 621, "throttled": 0, "blocked": 0},
            {"name": "campaign:hydra", "requests": 645, "served": 360, "throttled": 285, "blocked": 0},
        ],
        "timeline": {
            "start": start,
            "bucket_seconds": 600.0,
            "series": {
                "organic": [100, 110, 105, 98, 104, 104],
                "campaign:hydra": [0, 50, 150, 150, 150, 145],
            },
            "refused": {"organic": [0, 0, 0, 0, 0, 0], "campaign:hydra": [0, 0, 40, 80, 80, 85]},
            "groups": {"honest": ["organic"], "campaigns": ["campaign:hydra"]},
        },
        "clusters": [
            {
                "id": "c1",
                "label": f"hydra {HOSTILE}",
                "accounts": [a["id"] for a in accounts[:6]],
                "score": 0.93,
                "action": "throttle",
                "caught_at": start + 1500,
                "templates": ["t1"],
                "requests": 645,
                "reasons": ["rare template shared by 6 accounts", "flat hourly traffic"],
                "evidence": {"shared_templates": 1, "concentration": 0.97, "note": HOSTILE},
            }
        ],
        "templates": [
            {
                "id": "t1",
                "fingerprint": "9f3a11c2",
                "accounts": 6,
                "requests": 540,
                "concentration": 0.97,
                "sample": f"You are a careful tutor. Think step by step: {SECRET_TAIL}",
                "cluster": "c1",
                "account_requests": {a["id"]: 90 for a in accounts[:6]},
            },
            {
                "id": "t2",
                "fingerprint": "00ab77e1",
                "accounts": 6,
                "requests": 30,
                "concentration": 0.05,
                "sample": f"{HOSTILE} Summarise this document {SECRET_TAIL}",
                "cluster": None,
            },
        ],
        "accounts": accounts,
        "notes": [f"note with {HOSTILE}"],
    }
