"""The engine's view of a compressed request body (``Content-Encoding: gzip`` / ``deflate``).

An app (or a framework middleware in front of it) that inflates request bodies reads the prompt that a
client sent compressed; the engine must read the same prompt, or compressing would be a way around
inspection. The app still gets the exact bytes that arrived: only the engine's copy is inflated, bounded by
the same cap as any body (a small compressed body may inflate a thousandfold), so a bomb costs at most the
cap. The decoder is as lenient as the inflaters apps use (zlib-wrapped, raw or gzip data under either
name, several gzip members, zero padding, trailing bytes after a whole member ignored). A coding it
cannot undo (br, zstd, a corrupt first member, more than 64 members) is ``unsupported``: the caller
refuses it (415) or lets the engine read the bytes as they are.
"""

from __future__ import annotations

import sys
import zlib
from typing import Literal

__all__ = [
    "ACCEPTED",
    "INFLATE_LATE",
    "INLINE_INFLATE",
    "REFUSED_BODIES",
    "Outcome",
    "coding_of",
    "decoded_for_engine",
    "engine_view",
]

#: How a request body's coding was read: inflated (or not coded), over the cap once inflated, or not undone.
Outcome = Literal["complete", "too_large", "unsupported"]
#: The codings undone, as a 415's ``Accept-Encoding`` names them (RFC 7694).
ACCEPTED = "gzip, deflate"
_CODINGS = frozenset({"gzip", "x-gzip", "deflate"})
#: zlib or gzip header, detected (the first try); raw deflate (the fallback: what some clients send).
_AUTO, _RAW = 32 + zlib.MAX_WBITS, -zlib.MAX_WBITS
#: Input is fed in slices this long, so a member's leftover (``unused_data``) never copies more.
_SLICE = 64 << 10
#: More gzip members than this in one body is no real client's doing (each costs a decoder).
_MAX_MEMBERS = 64
#: A coded body inflated up to this many bytes in the caller's thread (well under a millisecond); the ASGI
#: middleware inflates a larger one in a worker thread.
INLINE_INFLATE = 64 << 10
#: More codings than this on one body is no real client's doing either.
_MAX_CODINGS = 3


def coding_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's ``Content-Encoding`` (several lines joined, as one comma-separated list), or ``None``."""
    found = [v.decode("latin-1") for k, v in headers if k == b"content-encoding"]
    return ", ".join(found) if found else None


#: How the read ended when guardrail's inflating threads were busy past the deadline: refused with 503
#: (retry soon) under ``on_oversize="refuse"``, so no prompt passes unread; else decided without its
#: prompt, the quota and buckets still applied.
INFLATE_LATE = "busy"

#: The refusal a body that failed a check gets under ``on_oversize="refuse"``, by how the check ended.
REFUSED_BODIES = {"too_large": 413, "bad_length": 400, "unsupported": 415, INFLATE_LATE: 503}


def engine_view(body: bytes, encoding: str, cap: int) -> tuple[bytes, Outcome]:
    """What the engine reads of a coded body, and how decoding ended: the inflated body; nothing when
    it inflates beyond ``cap`` (``too_large``); the bytes as they came when the coding cannot be undone
    (``unsupported``: what an app that does not inflate reads; refused with 415 under ``refuse``)."""
    decoded, outcome = decoded_for_engine(body, encoding, cap)
    return (body if outcome == "unsupported" else decoded), outcome


def decoded_for_engine(body: bytes, encoding: str | None, cap: int) -> tuple[bytes, Outcome]:
    """``body`` as an inflating app reads it after undoing ``encoding`` (a ``Content-Encoding`` value:
    codings applied in order, so undone last first), at most ``cap`` bytes: ``(inflated, "complete")``,
    ``(b"", "too_large")`` beyond ``cap``, ``(b"", "unsupported")`` when it cannot be undone. Never raises."""
    if encoding is None:
        return body, "complete"
    codings = [c for c in (part.strip().lower() for part in encoding.split(",")) if c and c != "identity"]
    if not codings:
        return body, "complete"
    if len(codings) > _MAX_CODINGS or not _CODINGS.issuperset(codings):
        return b"", "unsupported"
    limit = max(0, min(cap, sys.maxsize - 1))
    try:
        for _ in codings:
            inflated = _inflate(body, limit)
            if isinstance(inflated, str):
                return b"", inflated
            body = inflated
    except (zlib.error, OverflowError, MemoryError, ValueError):
        return b"", "unsupported"
    return body, "complete"


def _inflate(data: bytes, limit: int) -> bytes | Literal["too_large", "unsupported"]:
    """One gzip / deflate layer undone, at most ``limit`` bytes: zlib- or gzip-wrapped (every member),
    else raw deflate."""
    try:
        return _members(data, limit, _AUTO)
    except zlib.error:
        return _members(data, limit, _RAW)  # no zlib or gzip header: raw deflate, as some clients send


def _members(data: bytes, limit: int, wbits: int) -> bytes | Literal["too_large", "unsupported"]:
    """Every member of one layer. After the first, zero padding is skipped and whatever does not decode
    as a whole member ends the layer with what came before it, as one-member readers (``zlib`` with
    gzip framing) ignore all that follows the first; a first member that does not decode raises."""
    view = memoryview(data)
    out = bytearray()
    pos = members = 0
    while pos < len(view):
        if members:
            if wbits == _RAW:
                break  # raw deflate has no members after it
            pos = _past_zeros(data, pos)
            if pos == len(view):
                break
        if members == _MAX_MEMBERS:
            return "unsupported"
        members += 1
        decoder = zlib.decompressobj(wbits)
        kept = len(out)
        while not decoder.eof:
            if pos >= len(view):  # truncated: an inflating app cannot read it either
                if members == 1:
                    return "unsupported"
                del out[kept:]
                return bytes(out)
            piece = view[pos : pos + _SLICE]
            try:
                out += decoder.decompress(piece, limit + 1 - len(out))
            except zlib.error:
                if members == 1:
                    raise  # the caller tries the other framing
                del out[kept:]
                return bytes(out)
            if len(out) > limit or decoder.unconsumed_tail:
                return "too_large"
            pos += len(piece) - len(decoder.unused_data)
    return bytes(out)


def _past_zeros(data: bytes, pos: int) -> int:
    """The first position at or after ``pos`` not holding a zero byte (zero padding between members)."""
    while pos < len(data):
        piece = data[pos : pos + _SLICE]
        rest = piece.lstrip(b"\0")
        pos += len(piece) - len(rest)
        if rest:
            break
    return pos
