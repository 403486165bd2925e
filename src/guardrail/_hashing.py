"""Keyed hashing of identifiers (API keys, account ids, addresses).

guardrail never stores a raw identifier: every one is replaced by a keyed BLAKE2b digest before it reaches
a store, an event or a log. The key (``secret``) should be set per deployment so digests cannot be reversed
by hashing a dictionary of candidate keys; all workers of one deployment must share it.
"""

from __future__ import annotations

import hashlib
import os

_ENV_SECRET = "GUARDRAIL_SECRET"
_DEFAULT_SECRET = b"guardrail-default-secret-set-GUARDRAIL_SECRET"


def default_secret() -> bytes:
    """The deployment secret from ``GUARDRAIL_SECRET``, or a fixed public default (documented as weak)."""
    value = os.environ.get(_ENV_SECRET)
    return value.encode("utf-8") if value else _DEFAULT_SECRET


def is_default_secret(secret: bytes) -> bool:
    """Whether ``secret`` is the fixed public default (digests under it can be reversed by guessing)."""
    return secret == _DEFAULT_SECRET


def hash_identifier(raw: str | bytes, secret: bytes, *, namespace: str = "id") -> str:
    """A 128-bit keyed digest of ``raw`` as 32 hex characters, separated by ``namespace``."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    h = hashlib.blake2b(data, digest_size=16, key=secret[:64], person=namespace.encode()[:16])
    return h.hexdigest()
