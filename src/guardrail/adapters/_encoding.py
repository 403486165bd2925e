"""The engine's view of a compressed request body (``Content-Encoding: gzip`` / ``deflate``).

An app (or a framework middleware in front of it) that inflates request bodies reads the prompt that a
client sent compressed; the engine must read the same prompt, or compressing would be a way around
inspection. The app still gets the exact bytes that arrived: only the engine's copy is inflated, bounded by
the same cap as any body (a small compressed body may inflate a thousandfold), so a bomb costs at most the
cap. Codings the standard library does not read (br, zstd) leave the body uninspected.
"""

from __future__ import annotations

import zlib
from typing import Literal

from ._usage import inflater

__all__ = ["coding_of", "decoded_for_engine"]

#: How a request body's coding was read: inflated (or not coded), over the cap once inflated, or unread.
Outcome = Literal["complete", "too_large", "unreadable"]


def coding_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's ``Content-Encoding`` (several lines joined, as one comma-separated list), or ``None``."""
    found = [v.decode("latin-1") for k, v in headers if k == b"content-encoding"]
    return ", ".join(found) if found else None


def decoded_for_engine(body: bytes, encoding: str | None, cap: int) -> tuple[bytes, Outcome]:
    """``body`` as the app would read it after undoing ``encoding`` (a ``Content-Encoding`` value: codings
    applied in order, so undone last first), at most ``cap`` bytes. ``("", "too_large")`` when it inflates
    beyond ``cap``; ``(b"", "unreadable")`` for a coding left unread or a corrupt stream."""
    if encoding is None:
        return body, "complete"
    codings = [c.strip().lower() for c in encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return body, "complete"
    if len(codings) > 3:  # nobody codes a body more than twice: do not inflate in a loop for a client
        return b"", "unreadable"
    for coding in reversed(codings):
        inflated = _inflate(body, coding, cap)
        if isinstance(inflated, str):
            return b"", inflated
        body = inflated
    return body, "complete"


def _inflate(data: bytes, coding: str, cap: int) -> bytes | Literal["too_large", "unreadable"]:
    """One coding undone; a gzip body may hold several members, read one after the other as gzip does."""
    out = bytearray()
    while True:
        decoder = inflater(coding)
        if decoder is None:
            return "unreadable"
        try:
            out += decoder.decompress(data, cap + 1 - len(out))
        except zlib.error:
            return "unreadable"
        if len(out) > cap or decoder.unconsumed_tail:
            return "too_large"
        if not decoder.eof:
            return "unreadable"  # truncated: the app cannot read it either
        data = decoder.unused_data
        if not data or "gzip" not in coding:
            return bytes(out)
