"""One request's facts reduced to an :class:`~guardrail.engine.store.Observation` (pure, no state).

Why word 3-gram shingles and not whole lines: campaigns paraphrase their wrappers (synonym swaps, reordered
clauses), which changes the hash of every line it touches, while most three-word windows survive a swap
elsewhere in the sentence. A shingle that recurs across requests is a *part* of some template; a shingle
seen once is fill. Only the numerically smallest shingle hashes are kept (a consistent sample: the same
wrapper always yields the same sample, whatever its fill), so a long prompt costs no more than a short one.

The system text and the latest user turn are read as one sequence of words, so moving a template from the
user turn into the system message changes nothing. Earlier turns are left out: a chat client that resends
the whole conversation every turn must not look like a template shared with itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import re
import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import xxhash

from guardrail._hashing import blake2b_key, hash_identifier
from guardrail._unicode import UNSPACED
from guardrail.elicitation import elicitation_score
from guardrail.extract import NoPrompt, Prompt, estimate_tokens, extract
from guardrail.fingerprint.normalize import normalize_bytes

from .store import Observation

_T = TypeVar("_T")

__all__ = ["address_range", "has_conversation", "joined_shingles", "observation", "prompt_of", "shingles"]


def _const(value: int) -> npt.NDArray[np.uint64]:
    """A read-only 0-d uint64 array: as a ufunc operand it costs less per call than a NumPy scalar."""
    array: npt.NDArray[np.uint64] = np.array(value, dtype=np.uint64)
    array.setflags(write=False)
    return array


_MIX1_INT = 0xBF58476D1CE4E5B9
_MIX2_INT = 0x94D049BB133111EB
_K1_INT = 0x9E3779B97F4A7C15
_K2_INT = 0xC2B2AE3D27D4EB4F
_MIX1, _MIX2, _K1, _K2 = (_const(c) for c in (_MIX1_INT, _MIX2_INT, _K1_INT, _K2_INT))
_S31, _S27, _S30 = (_const(c) for c in (31, 27, 30))
_M64 = (1 << 64) - 1
#: Up to this many words a text's shingles are mixed in plain Python: NumPy's fixed cost per call (some
#: fifteen calls) exceeds the work for a short prompt. Both paths give the same hashes.
_SMALL_WORDS = 10
#: Characters of the system text plus latest user turn that are read (a template sits at the start or the
#: end; reading a capped window bounds the cost of a megabyte prompt).
MAX_TEXT_CHARS = 8_000


# Scripts written without spaces (CJK ideographs, kana, hangul, Thai, ...): each character is a word, so
# that three-word shingles are character trigrams there; any other run of non-space characters is a word.
_TOKEN = re.compile(f"[{UNSPACED}]|[^\\s{UNSPACED}]+")
#: Where ``_TOKEN`` and ``bytes.split`` cut differently: an unspaced-script character, or a Unicode
#: whitespace other than the six ASCII ones ``bytes.split`` knows (the separators 0x1c-0x1f, NEL, ...).
_SPLIT_DIFFERS = re.compile(f"[{UNSPACED}]|[^\\S \\t\\n\\r\\x0b\\x0c]")


def _words(text: str) -> list[bytes]:
    """The words of ``normalize(text)`` (homoglyphs, zero-width, case, whole ids masked) as UTF-8.

    One tokenisation for every text: an ASCII prompt and the same prompt with one typographic quote added
    give the same words around its numbers and ids (a per-path tokenisation would let one character
    change every shingle near a number). Text that is still non-ASCII after normalising is cut with
    ``_TOKEN``, which only differs from a whitespace split on scripts written without spaces.
    """
    data = normalize_bytes(text)
    if data.isascii():
        return data.split()
    decoded = data.decode("utf-8", "surrogatepass")
    if _SPLIT_DIFFERS.search(decoded) is None:
        # No character the two cuts treat differently: the byte split gives the same words, in C.
        return data.split()
    return [w.encode("utf-8", "surrogatepass") for w in _TOKEN.findall(decoded)]


def shingles(text: str, limit: int = 64) -> tuple[int, ...]:
    """The ``limit`` smallest distinct 64-bit hashes of the word 3-grams of ``normalize(text)``.

    Texts of one or two words give one shingle (the whole text). Deterministic across processes.
    """
    words = _words(text)
    if not words:
        return ()
    if len(words) < 3:
        return (xxhash.xxh3_64_intdigest(b" ".join(words)),)
    if len(words) <= _SMALL_WORDS:
        return _small_shingles(words, limit)
    a = np.fromiter(map(xxhash.xxh3_64_intdigest, words), dtype=np.uint64, count=len(words))
    return _smallest_distinct(_mix(a), limit)


def _mix(a: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The trigram hashes of a sequence of word hashes (at least three), unsorted."""
    # Unsigned array arithmetic wraps modulo 2**64 silently (NumPy warns on overflow for scalars only).
    h = a[:-2] * _K1
    h += a[1:-1] * _K2
    h += a[2:]
    h ^= h >> _S30
    h *= _MIX1
    h ^= h >> _S27
    h *= _MIX2
    h ^= h >> _S31
    return h


def _smallest_distinct(h: npt.NDArray[np.uint64], limit: int) -> tuple[int, ...]:
    """The ``limit`` smallest distinct values of ``h`` ascending (``h`` is sorted in place)."""
    h.sort()
    top: list[int] = h[:limit].tolist()
    if limit >= 0 and len(set(top)) == len(top):
        # No repeat among the smallest ``limit``: they are the ``limit`` smallest distinct (the usual case).
        return tuple(top)
    keep = np.empty(len(h), dtype=bool)
    keep[0] = True
    np.not_equal(h[1:], h[:-1], out=keep[1:])
    return tuple(h[keep][:limit].tolist())


#: System texts of at least this many words have their share of the work cached (see ``joined_shingles``).
CACHE_MIN_WORDS = 24
_SYSTEM_CACHE_SIZE = 512


class _SystemPart:
    """What a request's shingles need from a system text: its last two word hashes and the ``limit``
    smallest distinct hashes of its own trigrams (none beyond those can be among the request's smallest)."""

    __slots__ = ("smallest", "tail")

    def __init__(self, words: list[bytes], limit: int) -> None:
        a = np.fromiter(map(xxhash.xxh3_64_intdigest, words), dtype=np.uint64, count=len(words))
        self.tail = a[-2:].copy()
        self.tail.setflags(write=False)
        self.smallest = np.array(_smallest_distinct(_mix(a), limit), dtype=np.uint64)
        self.smallest.setflags(write=False)


# Keyed by a 128-bit digest of the system text (seeded per process, so a client cannot aim a collision at
# another application's entry), never by the text: no prompt is kept, even in memory. A system text is
# admitted on its second sighting (a text seen once, such as a system prompt that carries a date, a user
# name or retrieved context, costs one digest and never pays for building an entry), and kept least
# recently used first out. Reads are plain dict lookups (atomic under the GIL); the rarer writes take the
# lock, so the bound holds under threads.
_SEED = int.from_bytes(os.urandom(8), "little")
_system_parts: dict[tuple[bytes, int], _SystemPart | None] = {}
_seen_once: dict[tuple[bytes, int], None] = {}
_system_lock = threading.Lock()
_MISSING = _SystemPart.__new__(_SystemPart)


def _remember(table: dict[tuple[bytes, int], _T], key: tuple[bytes, int], value: _T) -> None:
    with _system_lock:
        table.pop(key, None)
        while len(table) >= _SYSTEM_CACHE_SIZE:
            table.pop(next(iter(table)))
        table[key] = value


def _system_part(system: str, limit: int, min_words: int) -> _SystemPart | None:
    key = (xxhash.xxh3_128_digest(system.encode("utf-8", "surrogatepass"), _SEED), limit)
    found = _system_parts.get(key, _MISSING)
    if found is not _MISSING:
        try:
            last = next(reversed(_system_parts))
        except (StopIteration, RuntimeError):  # emptied, or changed by another thread meanwhile
            last = None
        if last != key:
            _remember(_system_parts, key, found)  # most recently used last
        return found
    if key not in _seen_once:
        _remember(_seen_once, key, None)
        return None
    words = _words(system)
    part = _SystemPart(words, limit) if len(words) >= max(3, min_words) else None
    _remember(_system_parts, key, part)
    with _system_lock:
        _seen_once.pop(key, None)
    return part


def joined_shingles(
    system: str, user: str, limit: int = 64, *, min_words: int = CACHE_MIN_WORDS
) -> tuple[int, ...]:
    """``shingles(f"{system}\n{user}", limit)``, with the system text's share computed once per system text.

    Applications send the same system prompt with every request, and it is often most of the text. Its
    words are cut and hashed once (normalisation never joins words across the line break, so the words of
    the whole are the system's followed by the user's); a request then hashes only its user turn, the two
    trigrams that straddle the break, and merges with the system's smallest trigram hashes. The result is
    the same tuple as the uncached call (a property test holds the two equal).
    """
    text = f"{system}\n{user}" if system else user
    if not system or len(text) > MAX_TEXT_CHARS or limit <= 0:
        return shingles(text, limit)
    part = _system_part(system, limit, min_words)
    if part is None:
        return shingles(text, limit)
    words = _words(user)
    if not words:
        return tuple(part.smallest.tolist())
    a = np.empty(len(words) + 2, dtype=np.uint64)
    a[:2] = part.tail
    a[2:] = np.fromiter(map(xxhash.xxh3_64_intdigest, words), dtype=np.uint64, count=len(words))
    return _smallest_distinct(np.concatenate((part.smallest, _mix(a))), limit)


def _small_shingles(words: list[bytes], limit: int) -> tuple[int, ...]:
    """:func:`shingles` of three words or more, mixed with Python integers (the same bits)."""
    a = list(map(xxhash.xxh3_64_intdigest, words))
    found: set[int] = set()
    for x, y, z in zip(a, a[1:], a[2:], strict=False):  # shorter tails end the trigrams
        h = (x * _K1_INT + y * _K2_INT + z) & _M64
        h ^= h >> 30
        h = (h * _MIX1_INT) & _M64
        h ^= h >> 27
        h = (h * _MIX2_INT) & _M64
        h ^= h >> 31
        found.add(h)
    return tuple(sorted(found)[:limit])


def has_conversation(prompt: Prompt) -> bool:
    """True when an assistant turn precedes the latest user turn: the request continues a conversation."""
    return any(t.role == "assistant" for t in prompt.turns)


def _ipv4_range(ip: str) -> str | None:
    """The /24 of a plain dotted quad without ``ipaddress`` (most traffic); ``None``: take the slow path."""
    quad = ip.split(".")
    if len(quad) != 4:
        return None
    for q in quad:
        if not (q.isascii() and q.isdigit()) or len(q) > 3 or (len(q) > 1 and q[0] == "0") or int(q) > 255:
            return None
    return f"{quad[0]}.{quad[1]}.{quad[2]}.0/24"


@lru_cache(maxsize=65_536)
def _range_of(ip: str) -> str | None:
    fast = _ipv4_range(ip)
    if fast is not None:
        return fast
    try:
        addr = ipaddress.ip_address(ip.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    bits = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def address_range(ip: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of ``ip`` as text, or ``None`` when absent or unparsable."""
    if not ip or not isinstance(ip, str):
        return None
    return _range_of(ip)


@lru_cache(maxsize=65_536)
def _hashed_range(ip: str, secret: bytes) -> str | None:
    """The keyed hash of ``address_range(ip)`` (cached: a client keeps its address for many requests)."""
    rng = _range_of(ip)
    return hash_identifier(rng, secret, namespace="range") if rng is not None else None


def prompt_of(
    path: str, body: bytes | str | Mapping[str, Any] | None, prompt: Prompt | None
) -> Prompt | None:
    """The request's prompt: the one given, else extracted from the body; ``None`` when there is none."""
    if prompt is not None:
        return prompt
    if body is None:
        return None
    found = extract(path, body)
    return None if isinstance(found, NoPrompt) else found


def _sampled(text: str, secret: bytes) -> bool:
    """A keyed-random quarter of requests get an elicitation score (the costliest feature; only its mean
    per account or group is used). Keyed, so a client cannot choose which of its prompts are scored; over
    the whole read text, since an application's system prompt (the same on every request) may fill the
    first several hundred characters, and sampling on them alone would score all of its requests or none."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=1, key=blake2b_key(secret))
    return digest.digest()[0] & 3 == 0


def observation(
    account: str,
    ts: float,
    prompt: Prompt | None,
    ip: str | None,
    secret: bytes,
    *,
    max_segments: int = 64,
) -> tuple[Observation, str]:
    """Build the observation of one request; also returns the read text window (for optional samples).

    ``account`` must already be the keyed hash. The address range is hashed with the same secret.
    """
    prefix = _hashed_range(ip, secret) if ip and isinstance(ip, str) else None
    if prompt is None:
        return Observation(account=account, ts=ts, segments=(), prefix=prefix), ""
    text = f"{prompt.system}\n{prompt.user}" if prompt.system else prompt.user
    if len(text) > MAX_TEXT_CHARS:
        half = MAX_TEXT_CHARS // 2
        text = text[:half] + "\n" + text[-half:]
        segs = shingles(text, max_segments)
    else:
        segs = joined_shingles(prompt.system, prompt.user, max_segments)
    elic: float | None = None
    if text and _sampled(text, secret):
        elic = elicitation_score(text)
        if not math.isfinite(elic):
            elic = 0.0
    whole = prompt.text  # a property that joins every turn: build it once
    tokens = estimate_tokens(whole) if len(whole) < 400_000 else len(whole) // 4
    obs = Observation(
        account=account,
        ts=ts,
        segments=segs,
        prefix=prefix,
        tokens=tokens,
        elicitation=None if elic is None else min(1.0, max(0.0, elic)),
        conversation=has_conversation(prompt),
    )
    return obs, text
