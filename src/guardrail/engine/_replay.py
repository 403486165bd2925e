"""Reading request logs for offline replay: JSON lines, plain or gzip, one malformed line never stops a run.

A line is a JSON object with ``ts`` (epoch seconds, or an RFC 3339 string), ``account``, optional ``ip``,
optional ``path``, and ``body`` (the request JSON, as an object or a JSON string) or ``prompt`` (text).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import multiprocessing
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any, cast

from guardrail._hashing import hash_identifier
from guardrail.extract import Prompt, Turn
from guardrail.fingerprint.normalize import translation_table

from ._core import Prepared, prepare
from ._policy import Policy
from ._types import RequestFacts

__all__ = [
    "BadLine",
    "LogError",
    "open_log",
    "parse_line",
    "parse_ts",
    "prepare_chunk",
    "prepared_stream",
]

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
    except json.JSONDecodeError as err:
        raise LogError(f"invalid JSON at column {err.colno}: {err.msg}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise LogError(f"invalid JSON ({err.__class__.__name__})") from None
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
    buffered: io.BufferedReader = sys.stdin.buffer if path == "-" else open(path, "rb")  # type: ignore[assignment]
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        if path == "-":
            return cast("IO[bytes]", gzip.GzipFile(fileobj=buffered, mode="rb"))
        buffered.close()
        return cast("IO[bytes]", gzip.open(path, "rb"))
    return buffered


@dataclass(slots=True)
class BadLine:
    number: int
    reason: str


# -- parallel preparation (guardrail analyze --jobs) ------------------------------------------------
# The stateless half of a check (JSON parse, prompt extraction, shingling, elicitation, hashing) is most of
# its cost; worker processes do it for chunks of lines while the main process keeps the one engine state
# and applies the observations in log order, so the result is identical to a sequential replay.

_WORKER: dict[str, Any] = {}


def _init_worker(secret: bytes, policy: Policy) -> None:
    _WORKER["secret"] = secret
    _WORKER["policy"] = policy
    _WORKER["ids"] = {}


def _hashed(raw: str) -> str:
    ids: dict[str, str] = _WORKER["ids"]
    h = ids.get(raw)
    if h is None:
        if len(ids) > 200_000:
            ids.clear()
        h = ids[raw] = hash_identifier(raw, _WORKER["secret"], namespace="account")
    return h


def prepare_chunk(chunk: list[tuple[int, bytes]]) -> list[tuple[int, str, Prepared | BadLine]]:
    """Parse and prepare a chunk of ``(line_number, line)``; runs in a worker process."""
    out: list[tuple[int, str, Prepared | BadLine]] = []
    secret, policy = _WORKER["secret"], _WORKER["policy"]
    for number, line in chunk:
        try:
            facts = parse_line(line)
        except LogError as err:
            out.append((number, "", BadLine(number, str(err))))
            continue
        out.append((number, facts.account, prepare(facts, _hashed(facts.account), secret, policy, time.time)))
    return out


def _chunks(stream: IO[bytes], size: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        chunk.append((number, line))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def prepared_stream(
    stream: IO[bytes], secret: bytes, policy: Policy, jobs: int, chunk_size: int = 512
) -> Iterator[tuple[int, str, Prepared | BadLine]]:
    """``(line_number, raw_account, Prepared or BadLine)`` in log order, prepared by ``jobs`` worker
    processes (``jobs <= 0``: in this process). At most ``4 * jobs`` chunks are in flight (bounded memory)."""
    if jobs <= 0:
        _init_worker(secret, policy)
        for chunk in _chunks(stream, chunk_size):
            yield from prepare_chunk(chunk)
        return
    method = "spawn" if sys.platform == "win32" else "fork"
    if method == "fork":
        # Build the normaliser's Unicode table (about 0.5 s of CPU) once, here, so that forked workers
        # inherit it instead of each building its own at its first non-ASCII prompt.
        translation_table()
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(secret, policy)) as pool:
        pending: deque[Any] = deque()
        for chunk in _chunks(stream, chunk_size):
            pending.append(pool.apply_async(prepare_chunk, (chunk,)))
            if len(pending) >= 4 * jobs:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()
