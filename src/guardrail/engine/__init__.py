"""The detection engine: per-request facts in, decisions out; accounts linked into campaigns off the hot path.

See docs/detection.md for the threat model, the signals and the policy defaults, and docs/architecture.md
for the contract (``Guard``, ``AsyncGuard``, ``RequestFacts``, ``Decision``, ``Action``).
"""

from __future__ import annotations

from ._guard import STORE_DOWN_REASON, STORE_ERROR_REASON, AsyncGuard, Guard, open_store, settle_needed
from ._linkage import Cluster, GroupFeatures, LinkageSettings
from ._memory import MemoryEngineStore
from ._policy import Policy, Rule
from ._report import analysis_report
from ._types import Action, Decision, Event, RequestFacts
from .store import (
    AccountProfile,
    ClusterTable,
    ClusterVerdict,
    EngineStore,
    Observation,
    Observed,
    StoreSettings,
    TemplateStats,
)

__all__ = [
    "STORE_DOWN_REASON",
    "STORE_ERROR_REASON",
    "AccountProfile",
    "Action",
    "AsyncGuard",
    "Cluster",
    "ClusterTable",
    "ClusterVerdict",
    "Decision",
    "EngineStore",
    "Event",
    "GroupFeatures",
    "Guard",
    "LinkageSettings",
    "MemoryEngineStore",
    "Observation",
    "Observed",
    "Policy",
    "RequestFacts",
    "Rule",
    "StoreSettings",
    "TemplateStats",
    "analysis_report",
    "open_store",
    "settle_needed",
]
