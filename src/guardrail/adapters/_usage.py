"""Actual output tokens, read from the response, so the limiter is settled with what was really spent.

Non-streamed responses carry a JSON ``usage`` object; streams carry it in their last events when the
server sends it (OpenAI with ``stream_options.include_usage``, the Responses API's ``response.completed``,
Anthropic's cumulative ``message_delta``, Gemini's ``usageMetadata`` on every chunk). The stream scanner
looks only at ``data:`` lines mentioning usage, keeps at most one partial line, and never holds a copy of
the stream: chunks go on to the client untouched.
"""

from __future__ import annotations

import json
from typing import Any

#: The longest SSE line kept across chunk boundaries; a longer one is skipped, not buffered.
MAX_LINE = 1 << 20


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def output_tokens(obj: Any) -> int | None:
    """Output tokens named by one decoded response object or stream event, else ``None``."""
    if isinstance(obj, list):  # Gemini's non-SSE stream: a JSON array of chunks
        found = None
        for item in obj:
            value = output_tokens(item)
            found = value if value is not None else found
        return found
    if not isinstance(obj, dict):
        return None
    usage = obj.get("usage")
    if isinstance(usage, dict):
        value = _int(usage.get("completion_tokens"))  # OpenAI chat / completions
        if value is None:
            value = _int(usage.get("output_tokens"))  # Anthropic, OpenAI responses
        if value is not None:
            return value
    meta = obj.get("usageMetadata")  # Gemini
    if isinstance(meta, dict):
        candidates = _int(meta.get("candidatesTokenCount"))
        thoughts = _int(meta.get("thoughtsTokenCount")) or 0
        if candidates is not None:
            return candidates + thoughts
    for nested in ("response", "message"):  # responses API events; Anthropic message_start
        inner = obj.get(nested)
        if isinstance(inner, dict):
            value = output_tokens(inner)
            if value is not None:
                return value
    return None


def usage_from_json(body: bytes) -> int | None:
    """Output tokens from a complete JSON response body, else ``None`` (never raises)."""
    try:
        return output_tokens(json.loads(body))
    except (ValueError, RecursionError):
        return None


class SSEUsageScanner:
    """Feed server-sent-event chunks in order; ``tokens`` is the last usage seen, else ``None``."""

    __slots__ = ("_partial", "tokens")

    def __init__(self) -> None:
        self._partial = b""
        self.tokens: int | None = None

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        data = self._partial + chunk if self._partial else chunk
        if b"\n" not in chunk:
            self._partial = data if len(data) <= MAX_LINE else b""
            return
        lines = data.split(b"\n")
        last = lines.pop()
        self._partial = last if len(last) <= MAX_LINE else b""
        for line in lines:
            if b"sage" in line and line.startswith(b"data:"):  # "usage" / "usageMetadata"
                self._parse(line[5:])

    def close(self) -> None:
        """The stream ended: a final line without a newline still counts."""
        if self._partial.startswith(b"data:") and b"sage" in self._partial:
            self._parse(self._partial[5:])
        self._partial = b""

    def _parse(self, payload: bytes) -> None:
        try:
            value = output_tokens(json.loads(payload))
        except (ValueError, RecursionError):
            return
        if value is not None:
            self.tokens = value
