"""Keyed hashing of identifiers (API keys, account ids, addresses).

guardrail never stores a raw identifier: every one is replaced by a keyed BLAKE2b digest before it reaches
a store, an event or a log. The key (``secret``) should be set per deployment so digests cannot be reversed
by hashing a dictionary of candidate keys; all workers of one deployment must share it.
"""

from __future__ import annotations

import hashlib
import logging
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


_warned = False


def warn_default_secret(secret: bytes) -> None:
    """Log once per process when state kept outside it is keyed with the public default secret."""
    global _warned
    if _warned or not is_default_secret(secret):
        return
    _warned = True
    logging.getLogger("guardrail").warning(
        "guardrail: GUARDRAIL_SECRET is not set; account and address hashes in the shared store use "
        "the public default key and can be reversed by guessing keys (set it, the same on every worker)"
    )


def blake2b_key(secret: bytes) -> bytes:
    """``secret`` as a BLAKE2b key (at most 64 bytes): a longer one is digested to 64 bytes, so that every
    byte of it counts (cutting it would make two secrets that share their first 64 bytes one key)."""
    if len(secret) <= 64:
        return secret
    return hashlib.blake2b(secret, digest_size=64, person=b"guardrail-key").digest()


def hash_identifier(raw: str | bytes, secret: bytes, *, namespace: str = "id") -> str:
    """A 128-bit keyed digest of ``raw`` as 32 hex characters, separated by ``namespace``."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    h = hashlib.blake2b(data, digest_size=16, key=blake2b_key(secret), person=namespace.encode()[:16])
    return h.hexdigest()
