"""Reading request logs for offline replay: JSON lines, plain or gzip, one malformed line never stops a run.

A line is a JSON object with ``ts`` (epoch seconds, or an RFC 3339 string), ``account``, optional ``ip``,
optional ``path``, and ``body`` (the request JSON, as an object or a JSON string) or ``prompt`` (text).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any

from guardrail.extract import Prompt, Turn

from ._types import RequestFacts

__all__ = ["BadLine", "LogError", "open_log", "parse_line", "parse_ts", "read_log"]

_GZIP_MAGIC = b"\x1f\x8b"


class LogError(ValueError):
    """One log line is unusable; the message says why (the caller adds the line number)."""


def parse_ts(value: object) -> float:
    """Epoch seconds (int/float, or a numeric string) or an RFC 3339 / ISO 8601 timestamp -> float seconds."""
    if isinstance(value, bool):
        raise LogError("'ts' must be a number or an RFC 3339 string, got a boolean")
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            ts = float(text)
        except ValueError:
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            try:
                parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
            except ValueError:
                raise LogError(f"'ts' is not epoch seconds or RFC 3339: {value[:40]!r}") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            ts = parsed.timestamp()
    else:
        raise LogError(f"'ts' must be a number or an RFC 3339 string, got {type(value).__name__}")
    if not math.isfinite(ts):
        raise LogError("'ts' is not finite")
    return ts


def _text_prompt(text: str) -> Prompt:
    return Prompt(
        api="custom",
        system="",
        turns=(Turn("user", text),),
        user=text,
        model=None,
        max_output_tokens=None,
        stream=False,
        truncated=False,
    )


def parse_line(line: str | bytes) -> RequestFacts:
    """One log line -> ``RequestFacts`` (raises :class:`LogError` with a short reason)."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as err:
        raise LogError(f"invalid JSON ({err.__class__.__name__}: {str(err)[:60]})") from None
    if not isinstance(obj, dict):
        raise LogError(f"expected a JSON object, got {type(obj).__name__}")
    if "ts" not in obj:
        raise LogError("missing 'ts'")
    ts = parse_ts(obj["ts"])
    account = obj.get("account")
    if isinstance(account, (int, float)) and not isinstance(account, bool):
        account = str(account)
    if not isinstance(account, str) or not account:
        raise LogError("missing or empty 'account' (a string)")
    ip = obj.get("ip")
    if ip is not None and not isinstance(ip, str):
        raise LogError("'ip' must be a string")
    path = obj.get("path") or "/v1/chat/completions"
    if not isinstance(path, str):
        raise LogError("'path' must be a string")
    body: Any = obj.get("body")
    prompt = obj.get("prompt")
    if body is None and prompt is None:
        raise LogError("needs 'body' (the request JSON) or 'prompt' (text)")
    if prompt is not None and body is None:
        if not isinstance(prompt, str):
            raise LogError("'prompt' must be a string")
        return RequestFacts(account=account, ip=ip, path=path, prompt=_text_prompt(prompt), ts=ts)
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    elif not isinstance(body, dict):
        raise LogError("'body' must be a JSON object or a JSON string")
    return RequestFacts(account=account, ip=ip, path=path, body=body, ts=ts)


def open_log(path: str) -> IO[bytes]:
    """Open ``path`` (``-`` = stdin) for binary reading, transparently gunzipping by magic bytes."""
    raw: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered, mode="rb")
    return buffered


@dataclass(slots=True)
class BadLine:
    number: int
    reason: str


def read_log(stream: IO[bytes]) -> Iterator[tuple[int, RequestFacts | BadLine]]:
    """Yield ``(line_number, facts or BadLine)`` for every non-blank line, in bounded memory."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield number, parse_line(line)
        except LogError as err:
            yield number, BadLine(number, str(err))
