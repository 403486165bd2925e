"""Request body -> JSON object, safely: one decode, one ``json.loads``, every failure a short reason.

Why not ``json.loads(bytes)`` directly: its encoding sniffing turns bad UTF-8 into a bare
``UnicodeDecodeError`` and refuses a UTF-8 BOM on ``str``; decoding here gives the operator a reason
that says what was wrong. Deep nesting is caught as ``RecursionError`` inside the C scanner, which
checks its depth itself, so a nesting bomb costs one shallow failure, never a crash.
"""

from __future__ import annotations

import codecs
import gc
import json
import re
from collections.abc import Mapping
from typing import Any

from ._model import NoPrompt

__all__ = ["MAX_CONTAINERS", "parse_body", "too_complex"]

#: The most JSON arrays and objects a body may hold to be read. Parsing costs per container made
#: (``json.loads`` of 2.8 million ``[]`` in 8 MiB: about a second, a few ms for 8 MiB of prose), and an
#: honest request holds a few thousand (a long agent conversation with its tool schemas); at the
#: limit a parse costs some 50 ms.
MAX_CONTAINERS = 100_000
#: Bodies above this many bytes are parsed with the cyclic garbage collector paused: a parse makes no
#: cycles, and collections triggered by its allocations were most of the time of a container-heavy one.
_GC_PAUSE_BYTES = 64 << 10
# A JSON string (the unrolled form: linear, no backtracking); '"' and '\\' are never inside a multi-byte
# UTF-8 sequence, so bytes can be scanned as they are.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def too_complex(body: bytes | bytearray | memoryview | str) -> bool:
    """Whether ``body`` holds more than ``MAX_CONTAINERS`` JSON arrays and objects (brackets inside
    strings, as in code, not counted). A plain count of ``[`` and ``{`` settles nearly every body in
    microseconds; only one with more brackets than that has its strings cut out and is counted again."""
    if isinstance(body, str):
        if body.count("[") + body.count("{") <= MAX_CONTAINERS:
            return False
        body = body.encode("utf-8", "surrogatepass")  # rare: a body with that many brackets
    raw = body if isinstance(body, bytes) else bytes(body)
    if raw.count(b"[") + raw.count(b"{") <= MAX_CONTAINERS:
        return False
    if b"\x00" in raw[:4]:  # UTF-16/32: the plain count stands (bracket-heavy ones are refused)
        return True
    if raw.count(b'"') <= 2 * MAX_CONTAINERS:
        # Few strings (long ones, as code): split at the quotes once escapes are gone, and count the
        # outside pieces; linear C passes, and few pieces. Many strings: the regex, which makes none.
        parts = raw.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')
        outside = b"".join(parts[0::2])
    else:
        outside = _STRING.sub(b"", raw)
    return outside.count(b"[") + outside.count(b"{") > MAX_CONTAINERS


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16-LE: its BOM starts with the UTF-16-LE BOM
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _decode(body: bytes | bytearray | memoryview) -> str | NoPrompt:
    raw = bytes(body) if not isinstance(body, bytes) else body
    encoding = "utf-8"
    start = 0
    if raw[:1] in (b"\xef", b"\xff", b"\xfe", b"\x00"):
        for bom, name in _BOMS:
            if raw.startswith(bom):
                encoding, start = name, len(bom)
                break
    if start == 0 and b"\x00" in raw[:4]:
        # JSON starts with an ASCII character: NULs around it mean UTF-16/32 without a BOM. The app's
        # ``json.loads(bytes)`` (Starlette's ``request.json()``, Flask's ``get_json``) reads such a body by
        # the same rule (RFC 4627's NUL pattern), so it is read here too: refusing it would hand the app
        # a prompt the engine never saw.
        encoding = json.detect_encoding(raw)
    try:
        # "surrogatepass", as ``json.loads(bytes)`` (what the app behind uses) decodes: a lone surrogate
        # encoded raw must not make the prompt unreadable to the engine while the app reads it fine.
        if start:
            return str(memoryview(raw)[start:], encoding, "surrogatepass")
        return raw.decode(encoding, "surrogatepass")
    except UnicodeDecodeError as exc:
        label = "UTF-8" if encoding == "utf-8" else encoding.upper()
        return NoPrompt(f"body is not valid {label} at byte {exc.start + start}")


def parse_body(body: object) -> Mapping[str, Any] | NoPrompt:
    """Return the body as a JSON object (a mapping), or why it is not one."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        if not body:
            return NoPrompt("empty body")
        text = _decode(body)
        if isinstance(text, NoPrompt):
            return text
    elif isinstance(body, str):
        text = body[1:] if body.startswith("\ufeff") else body
    elif isinstance(body, Mapping):  # already parsed (after bytes/str: the ABC check is the slow one)
        return body
    else:
        return NoPrompt(f"body of type {type(body).__name__} is not bytes, str or a mapping")
    if len(text) > 2 * MAX_CONTAINERS and too_complex(text):
        return NoPrompt(f"JSON too complex: more than {MAX_CONTAINERS:,} arrays and objects")
    paused = len(text) > _GC_PAUSE_BYTES and gc.isenabled()
    try:
        if paused:
            gc.disable()
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if not text or text.isspace():  # checked only on failure: no copy of a good body
            return NoPrompt("empty body")
        return NoPrompt(f"invalid JSON at position {exc.pos}: {exc.msg}")
    except RecursionError:
        return NoPrompt("JSON nested too deeply")
    except ValueError as exc:  # e.g. an integer literal longer than Python's int digit limit
        return NoPrompt(f"invalid JSON: {str(exc)[:80]}")
    finally:
        if paused:
            gc.enable()
    if not isinstance(value, dict):
        return NoPrompt(f"body is a JSON {_json_kind(value)}, not an object")
    return value


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool) or value is None:
        return "literal"
    return "number"
