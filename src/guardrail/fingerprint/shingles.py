"""Character shingles of normalised text, hashed with XXH3 in one vectorised pass.

A shingle is a window of ``size`` consecutive bytes (4 to 8) of the UTF-8 encoded, normalised text. For
inputs of 4 to 8 bytes XXH3-64 reduces to a few 64-bit operations on two overlapping little-endian 32-bit
reads (``XXH3_len_4to8_64b``), so every window of a text is hashed at once with numpy, bit for bit equal to
``xxhash.xxh3_64_intdigest(window, seed)`` (the tests check this against the ``xxhash`` package). No Python
call per shingle: this is what makes fingerprinting several times faster than a Python hashing loop.

Why characters and not words: replacing one word of an N-word text breaks 3 of ~N word 3-shingles but only
about ``len(word) + size - 1`` of ~6N character shingles, and one inserted junk character breaks a whole
word shingle but only ``size`` character shingles. Character shingles therefore keep paraphrased or noised
variants closer to the original (measured in docs/fingerprints.md), and need no tokeniser for
languages written without spaces.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
import xxhash

__all__ = ["MAX_SHINGLE", "MIN_SHINGLE", "batch_shingle_hashes", "shingle_hashes"]

MIN_SHINGLE = 4
MAX_SHINGLE = 8

_M64 = (1 << 64) - 1
U64Array = npt.NDArray[np.uint64]
# Bytes 8..15 and 16..23 of XXH3's default secret (kSecret), read little-endian.
_SECRET_8 = 0x1CAD21F72C81017C
_SECRET_16 = 0xDB979083E96DD4DE


def _const(value: int) -> U64Array:
    """A 0-d uint64 array: as a ufunc operand it costs measurably less per call than a numpy scalar
    (about 0.4 vs 0.6 us here), and a short prompt's fingerprint is some 40 such calls."""
    array: U64Array = np.array(value, dtype=np.uint64)
    array.setflags(write=False)
    return array


_PRIME_MX2 = _const(0x9FB21C651E98DF25)
_C15, _C24, _C28, _C32, _C35, _C40, _C49 = (_const(c) for c in (15, 24, 28, 32, 35, 40, 49))
_SIZES = {size: _const(size) for size in range(4, 9)}


@functools.lru_cache(maxsize=64)
def _bitflip(seed: int) -> U64Array:
    low = seed & 0xFFFFFFFF
    swapped = int.from_bytes(low.to_bytes(4, "little"), "big")
    mixed_seed = seed ^ (swapped << 32)
    return _const(((_SECRET_8 ^ _SECRET_16) - mixed_seed) & _M64)


def shingle_hashes(data: bytes, size: int, seed: int) -> U64Array:
    """XXH3-64 (with ``seed``) of every ``size``-byte window of ``data``, in order, duplicates kept.

    ``data`` shorter than ``size`` (but not empty) is one shingle, hashed whole; empty data has none.
    """
    if not MIN_SHINGLE <= size <= MAX_SHINGLE:
        raise ValueError(f"shingle size must be between {MIN_SHINGLE} and {MAX_SHINGLE} bytes, got {size}")
    n = len(data)
    if n < size:
        if n == 0:
            return np.empty(0, dtype=np.uint64)
        return np.array([xxhash.xxh3_64_intdigest(data, seed)], dtype=np.uint64)
    count = n - size + 1
    # Every unaligned little-endian 32-bit word of the buffer, without copying (stride of one byte).
    words = np.ndarray((n - 3,), dtype="<u4", buffer=data, strides=(1,))
    # input64 = first word << 32 + last word (one cast of all words: mixed-type ufuncs cost more).
    wide = words.astype(np.uint64)
    h: U64Array = wide[:count] << _C32
    h += wide[size - 4 : size - 4 + count]
    h ^= _bitflip(seed)
    # XXH3_rrmxmx(h, size), in place to keep temporaries few.
    t = np.left_shift(h, _C49)
    t |= np.right_shift(h, _C15)
    u = np.left_shift(h, _C24)
    u |= np.right_shift(h, _C40)
    t ^= u
    h ^= t
    h *= _PRIME_MX2
    np.right_shift(h, _C35, out=t)
    t += _SIZES[size]
    h ^= t
    h *= _PRIME_MX2
    h ^= np.right_shift(h, _C28, out=t)
    return h


def batch_shingle_hashes(datas: list[bytes], size: int, seed: int) -> tuple[U64Array, U64Array]:
    """Shingle hashes of several byte strings in one vectorised pass, and the index of each one's string.

    The strings are hashed as one concatenation; windows straddling a boundary are dropped, and strings
    shorter than ``size`` contribute their whole-string hash, exactly as :func:`shingle_hashes` would.
    """
    lengths = np.fromiter((len(d) for d in datas), dtype=np.int64, count=len(datas))
    hashes = (
        shingle_hashes(b"".join(datas), size, seed) if int(lengths.sum()) >= size else np.empty(0, np.uint64)
    )
    windows = np.maximum(lengths - (size - 1), 0)
    doc_ids = np.repeat(np.arange(len(datas), dtype=np.uint64), windows)
    if len(hashes):
        ends = np.cumsum(lengths)
        starts = ends - lengths
        # Window start s belongs to document i when starts[i] <= s <= ends[i] - size.
        keep = np.zeros(len(hashes) + 1, dtype=np.int8)
        np.add.at(keep, np.minimum(starts[windows > 0], len(hashes)), 1)
        np.add.at(keep, np.minimum((ends - size + 1)[windows > 0], len(hashes)), -1)
        hashes = hashes[np.cumsum(keep[:-1]).astype(bool)]
    tiny = [i for i, n in enumerate(lengths.tolist()) if 0 < n < size]
    if tiny:
        extra = np.array([xxhash.xxh3_64_intdigest(datas[i], seed) for i in tiny], dtype=np.uint64)
        hashes = np.concatenate((hashes, extra))
        doc_ids = np.concatenate((doc_ids, np.array(tiny, dtype=np.uint64)))
    return hashes, doc_ids
