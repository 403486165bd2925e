"""Operator-facing output: reports (text, JSON, self-contained HTML), metrics, events, progress.

Everything here reads plain data (``ReportData``, event mappings) rather than engine objects, so it can be
used offline on a saved report and tested without a running engine.
"""

from guardrail.report._events import EVENT_LOGGER, JsonEvents, JsonFormatter
from guardrail.report._explain import explain_account, explain_text
from guardrail.report._html import render_html
from guardrail.report._metrics import Metrics
from guardrail.report._progress import Progress
from guardrail.report._redact import redact
from guardrail.report._schema import (
    SCHEMA,
    AccountRow,
    ClusterRow,
    PopulationRow,
    ReportData,
    ReportError,
    TemplateRow,
    Timeline,
    validate_report,
)
from guardrail.report._text import format_figure, format_table, summary_text

__all__ = [
    "EVENT_LOGGER",
    "SCHEMA",
    "AccountRow",
    "ClusterRow",
    "JsonEvents",
    "JsonFormatter",
    "Metrics",
    "PopulationRow",
    "Progress",
    "ReportData",
    "ReportError",
    "TemplateRow",
    "Timeline",
    "explain_account",
    "explain_text",
    "format_figure",
    "format_table",
    "redact",
    "render_html",
    "summary_text",
    "validate_report",
]
