"""Actual output tokens, read from the response, so the limiter is settled with what was really spent.

Non-streamed responses carry a JSON ``usage`` object; streams carry it in their last events when the
server sends it (OpenAI with ``stream_options.include_usage``, the Responses API's ``response.completed``,
Anthropic's cumulative ``message_delta``, Gemini's ``usageMetadata`` on every chunk). The stream scanner
looks only at ``data:`` lines mentioning usage, keeps at most one partial line, and never holds a copy of
the stream: chunks go on to the client untouched.
"""

from __future__ import annotations

import json
import zlib
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
    # The Responses API's events carry the response (its usage on ``response.completed``). Anthropic's
    # ``message_start`` carries a ``message`` whose ``output_tokens`` is a placeholder (1) before anything
    # is generated: not read, so a stream the client leaves before the closing ``message_delta`` keeps
    # its estimate instead of settling as one token.
    inner = obj.get("response")
    if isinstance(inner, dict):
        return output_tokens(inner)
    return None


#: The most a compressed JSON response is inflated to, to read its usage (a bomb stops here).
MAX_INFLATED = 8 << 20
#: Inflated in steps of this many bytes (a compressed stream's chunk never expands beyond it at once).
_STEP = 1 << 20


def _coding(encoding: bytes | str) -> str:
    name = encoding.decode("latin-1") if isinstance(encoding, bytes) else encoding
    return name.strip().lower()


#: The ``Content-Encoding`` values the standard library inflates, and the zlib ``wbits`` for each.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def inflater(encoding: bytes | str) -> Any:
    """A zlib decompressor for a ``Content-Encoding`` the standard library reads (gzip, deflate), else
    ``None`` (identity; or an encoding such as br that is left unread: the estimate stands)."""
    wbits = _WBITS.get(_coding(encoding))
    return zlib.decompressobj(wbits) if wbits is not None else None


def usage_reader(content_type: bytes | str, encoding: bytes | str) -> str | None:
    """How a 2xx response's usage is read: ``"sse"`` (a stream, scanned as it goes), ``"json"`` (a side
    copy, parsed at the end), or ``None`` (not read: another type, or an encoding left unread)."""
    coding = _coding(encoding)
    if coding not in ("", "identity") and coding not in _WBITS:
        return None
    kind = _coding(content_type)
    if kind.startswith("text/event-stream"):
        return "sse"
    return "json" if "json" in kind else None


def usage_from_json(body: bytes, encoding: bytes | str = b"") -> int | None:
    """Output tokens from a complete JSON response body (compressed per ``encoding``), else ``None``
    (never raises)."""
    try:
        decoder = inflater(encoding) if encoding else None
        if decoder is not None:
            body = decoder.decompress(body, MAX_INFLATED)
            if decoder.unconsumed_tail:
                return None  # inflates beyond the bound: not read
        return output_tokens(json.loads(body))
    except (ValueError, RecursionError, zlib.error):
        return None


class _Nothing:
    """A decompressor that yields nothing (after a corrupt compressed stream)."""

    unconsumed_tail = b""

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        return b""


_NOTHING = _Nothing()


class SSEUsageScanner:
    """Feed server-sent-event chunks in order; ``tokens`` is the last usage seen, else ``None``.

    Follows the SSE grammar where it matters for usage: lines end in LF, CRLF or a lone CR; an event's
    ``data:`` lines are joined with newlines and the event ends at a blank line (or the stream's end).
    """

    __slots__ = ("_cr", "_data", "_inflate", "_partial", "_size", "tokens")

    def __init__(self, encoding: bytes | str = b"") -> None:
        #: A compressed stream (``Content-Encoding: gzip``) is inflated step by step, never kept.
        self._inflate = inflater(encoding) if encoding else None
        self._partial = b""
        self._data: list[bytes] = []  # the current event's data lines
        self._size = 0  # their length; -1: over MAX_LINE, skipped to the event's end
        self._cr = False
        self.tokens: int | None = None

    def feed(self, chunk: bytes) -> None:
        if self._inflate is not None:
            self._feed_compressed(chunk)
            return
        self._feed(chunk)

    def _feed_compressed(self, chunk: bytes) -> None:
        decoder: Any = self._inflate
        try:
            while chunk:
                self._feed(decoder.decompress(chunk, _STEP))
                chunk = decoder.unconsumed_tail
        except zlib.error:  # not what it said it was: stop reading, the estimate stands
            self._inflate = _NOTHING
            self._partial = b""

    def _feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._cr:  # the last chunk ended in a CR, taken as a line end: this LF is its CRLF's
            self._cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
                if not chunk:
                    return
        if b"\r" in chunk:  # a lone CR ends a line too (the kept partial line holds none: see below)
            self._cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        data = self._partial + chunk if self._partial else chunk
        if b"\n" not in chunk:
            self._partial = data if len(data) <= MAX_LINE else b""
            return
        lines = data.split(b"\n")
        last = lines.pop()
        self._partial = last if len(last) <= MAX_LINE else b""
        event = self._data
        for line in lines:
            if line:
                if line[:5] == b"data:" and self._size >= 0:
                    self._size += len(line)
                    if self._size > MAX_LINE:
                        event.clear()
                        self._size = -1
                    else:
                        event.append(line[5:])
            else:  # a blank line ends the event
                if event:
                    self._end()
                self._size = 0

    def close(self) -> None:
        """The stream ended: a final line without a newline, and a final event without a blank line,
        still count."""
        if self._partial:
            self._cr = False
            self._feed(b"\n")  # ends the last line as a newline would
        self._end()

    def _end(self) -> None:
        data = self._data
        if data:
            payload = data[0] if len(data) == 1 else b"\n".join(data)
            if b"sage" in payload:  # "usage" / "usageMetadata"
                self._parse(payload)
            data.clear()
        self._size = 0

    def _parse(self, payload: bytes) -> None:
        try:
            value = output_tokens(json.loads(payload))
        except (ValueError, RecursionError):
            return
        if value is not None:
            self.tokens = value
