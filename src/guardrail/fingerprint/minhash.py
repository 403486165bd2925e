"""MinHash signatures of shingle-hash sets, and the immutable, versioned :class:`Fingerprint`.

Two schemes are implemented; the default was chosen by measurement (docs/fingerprints.md):

``oph`` (scheme 1)
    One-permutation hashing with optimal densification (Shrivastava, ICML 2017). Each shingle is hashed
    once; the hash's high bits pick one of ``num_perm`` bins and the bin keeps the smallest value. Bins
    left empty (short texts) borrow the value of the first non-empty bin along a fixed pseudo-random probe
    order of their own, which keeps the estimator unbiased with variance close to ``num_perm``
    independent permutations. Cost: one sort of the shingle hashes, O(n log n) in C, instead of
    ``num_perm x n`` multiplications.
``kperm`` (scheme 2)
    Classic MinHash with ``num_perm`` multiply-shift permutations of the shingle hash, vectorised with
    numpy (what datasketch does, minus sha1 and the Mersenne-prime modulus). Kept for comparison.

Signature values are 32-bit: two different shingles agree on a value with probability 2^-32, far below
the statistical error of the estimate, and the signature is half the size of a 64-bit one.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import xxhash

__all__ = ["SCHEMES", "Fingerprint", "FingerprintParams", "signature_one", "signatures", "signatures_concat"]

FORMAT_VERSION: Final = 1
MAGIC: Final = b"GRFP"
SCHEMES: Final = {"oph": 1, "kperm": 2}
SHINGLE_BYTES: Final = 1  # shingle kind: byte windows of normalised UTF-8 text
EMPTY_VALUE: Final = 0xFFFFFFFF
MAX_NUM_PERM: Final = 4096

# magic, format version, scheme, shingle kind, shingle size, normalisation version, flags, num_perm, seed,
# cardinality (distinct shingles, saturating), then num_perm little-endian uint32 values.
_HEADER = struct.Struct("<4sBBBBBBHQI")
_FLAG_MASK_IDS = 1

U64Array = npt.NDArray[np.uint64]
U32Array = npt.NDArray[np.uint32]


@dataclass(frozen=True, slots=True)
class FingerprintParams:
    """Everything that must match for two fingerprints to be comparable."""

    scheme: int
    shingle_size: int
    normalization: int
    mask_ids: bool
    num_perm: int
    seed: int

    @property
    def scheme_name(self) -> str:
        return next(name for name, code in SCHEMES.items() if code == self.scheme)


class Fingerprint:
    """A MinHash signature of one normalised text: immutable, hashable, with a stable byte form.

    Compare with :meth:`similarity` (estimated Jaccard similarity of the shingle sets). Equality and
    hashing follow the byte form, so equal texts under equal parameters give equal fingerprints in any
    process, on any machine.
    """

    __slots__ = ("_array", "_cardinality", "_params", "_values")

    _params: FingerprintParams
    _cardinality: int
    _values: bytes
    _array: U32Array | None  # built on first use: most fingerprints are only indexed or stored

    def __init__(self, params: FingerprintParams, cardinality: int, values: bytes) -> None:
        if type(values) is not bytes:  # a bytearray or memoryview would leave the signature mutable
            values = bytes(values)
        if len(values) != 4 * params.num_perm:
            raise ValueError(f"expected {4 * params.num_perm} signature bytes, got {len(values)}")
        if not 0 <= cardinality <= 0xFFFFFFFF:
            raise ValueError(f"cardinality out of range: {cardinality}")
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "_cardinality", cardinality)
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_array", None)

    @classmethod
    def _trusted(cls, params: FingerprintParams, cardinality: int, values: bytes) -> Fingerprint:
        """Construct from values this module computed itself (checked by construction, not at run time):
        the per-text constructor cost matters when a short prompt takes a few microseconds in all."""
        fp = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(fp, "_params", params)
        setattr_(fp, "_cardinality", cardinality)
        setattr_(fp, "_values", values)
        setattr_(fp, "_array", None)
        return fp

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Fingerprint is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Fingerprint is immutable")

    @property
    def params(self) -> FingerprintParams:
        return self._params

    @property
    def num_perm(self) -> int:
        return self._params.num_perm

    @property
    def seed(self) -> int:
        return self._params.seed

    @property
    def cardinality(self) -> int:
        """Number of distinct shingles of the text (saturates at 2**32 - 1); 0 for an empty text."""
        return self._cardinality

    @property
    def is_empty(self) -> bool:
        return self._cardinality == 0

    @property
    def values(self) -> U32Array:
        """The signature as a read-only ``uint32`` array of ``num_perm`` values."""
        array = self._array
        if array is None:
            array = np.frombuffer(self._values, dtype="<u4")
            object.__setattr__(self, "_array", array)
        return array

    @property
    def signature_bytes(self) -> bytes:
        """The signature values alone, ``num_perm`` little-endian uint32 (band keys slice these)."""
        return self._values

    def _check(self, other: Fingerprint) -> None:
        if not isinstance(other, Fingerprint):
            raise TypeError(f"expected Fingerprint, got {type(other).__name__}")
        if other._params != self._params:
            raise ValueError(f"fingerprints have different parameters: {self._params} != {other._params}")

    def similarity(self, other: Fingerprint) -> float:
        """Estimated Jaccard similarity of the two shingle sets, in [0, 1].

        Two empty texts have similarity 1.0; an empty and a non-empty one 0.0.
        Raises ``ValueError`` when the fingerprints were made with different parameters.
        """
        self._check(other)
        if self._cardinality == 0 or other._cardinality == 0:
            return 1.0 if self._cardinality == other._cardinality else 0.0
        if self._values == other._values:
            return 1.0
        return int(np.count_nonzero(self.values == other.values)) / self._params.num_perm

    def containment(self, other: Fingerprint) -> float:
        """Estimated share of this text's shingles that also occur in ``other``, in [0, 1].

        Derived from the Jaccard estimate and both cardinalities: ``J (|A| + |B|) / ((1 + J) |A|)``.
        An empty text is contained in anything (1.0).
        """
        similarity = self.similarity(other)
        if self._cardinality == 0:
            return 1.0
        estimate = (
            similarity * (self._cardinality + other._cardinality) / ((1.0 + similarity) * self._cardinality)
        )
        return min(1.0, estimate)

    def to_bytes(self) -> bytes:
        """Stable byte form: a 24-byte header (format version, scheme, shingle parameters, normalisation
        version, num_perm, seed, cardinality) followed by the signature, all little-endian."""
        p = self._params
        header = _HEADER.pack(
            MAGIC,
            FORMAT_VERSION,
            p.scheme,
            SHINGLE_BYTES,
            p.shingle_size,
            p.normalization,
            _FLAG_MASK_IDS if p.mask_ids else 0,
            p.num_perm,
            p.seed,
            self._cardinality,
        )
        return header + self._values

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """Parse :meth:`to_bytes` output; ``ValueError`` on anything malformed or from another version."""
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise ValueError(f"fingerprint too short: {len(data)} bytes")
        magic, version, scheme, kind, size, normalization, flags, num_perm, seed, cardinality = (
            _HEADER.unpack_from(data)
        )
        if magic != MAGIC:
            raise ValueError("not a guardrail fingerprint (bad magic)")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported fingerprint format version {version}")
        if scheme not in SCHEMES.values():
            raise ValueError(f"unknown MinHash scheme {scheme}")
        if kind != SHINGLE_BYTES:
            raise ValueError(f"unknown shingle kind {kind}")
        if not 1 <= num_perm <= MAX_NUM_PERM:
            raise ValueError(f"num_perm out of range: {num_perm}")
        if flags & ~_FLAG_MASK_IDS:
            raise ValueError(f"unknown flags {flags:#x}")
        if len(data) != _HEADER.size + 4 * num_perm:
            raise ValueError(f"expected {_HEADER.size + 4 * num_perm} bytes, got {len(data)}")
        params = FingerprintParams(scheme, size, normalization, bool(flags & _FLAG_MASK_IDS), num_perm, seed)
        return cls(params, cardinality, data[_HEADER.size :])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fingerprint):
            return NotImplemented
        return (
            self._values == other._values
            and self._cardinality == other._cardinality
            and self._params == other._params
        )

    def __hash__(self) -> int:
        return hash((self._values, self._cardinality, self._params))

    def __reduce__(self) -> tuple[object, tuple[bytes]]:
        return (Fingerprint.from_bytes, (self.to_bytes(),))

    def __repr__(self) -> str:
        digest = xxhash.xxh3_64_hexdigest(self._values)
        p = self._params
        return (
            f"Fingerprint({p.scheme_name}, num_perm={p.num_perm}, seed={p.seed}, "
            f"shingles={self._cardinality}, digest={digest})"
        )


# --- signature computation ------------------------------------------------------------------------------


def _seeded_u64(seed: int, label: bytes, count: int) -> list[int]:
    return [xxhash.xxh3_64_intdigest(label + i.to_bytes(4, "little"), seed) for i in range(count)]


@functools.lru_cache(maxsize=16)
def _probe_order(num_perm: int, seed: int) -> npt.NDArray[np.intp]:
    """Row ``i``: the order in which empty bin ``i`` probes the bins (a seeded random permutation).

    Optimal densification probes with a universal hash of (bin, attempt) until it meets a non-empty bin;
    dropping repeated probes from that sequence leaves a uniformly random permutation, so a precomputed
    permutation per bin gives the same result in one vectorised step with a guaranteed end.
    """
    keys = np.array(_seeded_u64(seed, b"densify", num_perm * num_perm), dtype=np.uint64)
    order = np.argsort(keys.reshape(num_perm, num_perm), axis=1, kind="stable")
    order.setflags(write=False)
    return order


@functools.lru_cache(maxsize=16)
def _permutations(num_perm: int, seed: int) -> tuple[U64Array, U64Array]:
    a = np.array(_seeded_u64(seed, b"perm-a", num_perm), dtype=np.uint64) | np.uint64(1)
    b = np.array(_seeded_u64(seed, b"perm-b", num_perm), dtype=np.uint64)
    return a.reshape(-1, 1), b.reshape(-1, 1)


@functools.lru_cache(maxsize=16)
def _probe_rank(num_perm: int, seed: int) -> npt.NDArray[np.uint16]:
    """``rank[i, j]``: the position of bin ``j`` in the probe order of bin ``i`` (see :func:`_probe_order`).

    The first non-empty bin along row ``i`` of the probe order is the non-empty bin of lowest rank, so
    masking the empty columns and one ``argmin`` densify every hole at once (:func:`signature_one`).
    """
    rank = np.argsort(_probe_order(num_perm, seed), axis=1).astype(np.uint16)
    rank.setflags(write=False)
    return rank


_RANK_MASKED = np.uint16(0xFFFF)  # above every rank (num_perm <= MAX_NUM_PERM < 2**16)
# 0-d arrays: cheaper ufunc operands than numpy scalars (see shingles._const).
_SHIFTS = tuple(np.array(i, dtype=np.uint64) for i in range(64))


@functools.lru_cache(maxsize=16)
def _empty_values(num_perm: int) -> bytes:
    return np.full(num_perm, EMPTY_VALUE, dtype="<u4").tobytes()


@functools.lru_cache(maxsize=64)
def _bin_edges(num_perm: int, docs: int) -> U64Array:
    """Sorted-key positions where each (document, bin) starts: ``(doc * num_perm + bin) << 32``."""
    edges: U64Array = np.arange(docs * num_perm + 1, dtype=np.uint64) << np.uint64(32)
    edges.setflags(write=False)
    return edges


_C32 = np.uint64(32)
_PROBE_PREFIX = 8
_LOW32 = np.uint64(0xFFFFFFFF)


def _oph(
    h: U64Array, doc_ids: U64Array | None, docs: int, num_perm: int, seed: int
) -> tuple[U32Array, list[int]]:
    """One-permutation hashing of the shingle hashes ``h`` of ``docs`` documents (one sort for all).

    ``doc_ids[i]`` is the document of ``h[i]`` (``None`` for a single document); order does not matter.
    Each hash becomes the key ``(doc * num_perm + bin) << 32 | value``: for a power-of-two ``num_perm``
    the bin is the top bits of the hash and the value the 32 bits below them; otherwise the bin comes from
    the high 32 bits by multiply-range and the value is the low 32 bits. After one sort the first key of
    each (doc, bin) run is its minimum, found for all bins at once with ``searchsorted``.
    """
    total = len(h)
    if total == 0:
        return np.full((docs, num_perm), EMPTY_VALUE, dtype=np.uint32), [0] * docs
    bits = num_perm.bit_length() - 1
    if num_perm > 1 and num_perm == 1 << bits:
        # Power of two: the top ``bits`` bits are the bin and the 32 bits below them the value, so one
        # shift builds the whole key.
        keys = h >> np.uint64(32 - bits)
        if doc_ids is not None:
            keys += doc_ids << np.uint64(32 + bits)
    else:
        keys = h >> _C32
        keys *= np.uint64(num_perm)
        keys >>= _C32
        if doc_ids is not None:
            keys += doc_ids * np.uint64(num_perm)
        keys <<= _C32
        keys |= h & _LOW32
    keys.sort()
    idx = np.searchsorted(keys, _bin_edges(num_perm, docs))
    starts = idx[:-1]
    filled = starts != idx[1:]
    sig = keys.take(starts, mode="clip").astype(np.uint32)
    if docs == 1:
        cardinalities = [int(np.count_nonzero(keys[1:] != keys[:-1])) + 1]
    else:
        changes = np.empty(total, dtype=np.int64)
        changes[0] = 1
        np.not_equal(keys[1:], keys[:-1], out=changes[1:], casting="unsafe")
        cumulative = np.concatenate(([0], np.cumsum(changes)))
        bounds = cumulative[[*starts[::num_perm].tolist(), total]]
        cardinalities = np.diff(bounds).tolist()
    if not filled.all():
        _densify(sig, filled, cardinalities, num_perm, seed)
    return sig.reshape(docs, num_perm), cardinalities


def _densify(
    sig: U32Array, filled: npt.NDArray[np.bool_], cardinalities: list[int], num_perm: int, seed: int
) -> None:
    """Fill the empty bins of flat ``(doc, bin)`` signatures in place by optimal densification.

    Most holes find a filled bin within their first few probes, so those are tried first
    (``_PROBE_PREFIX`` columns); only holes that miss them all look along their whole probe order.
    """
    holes = np.nonzero(~filled)[0]
    offsets: npt.NDArray[np.intp] | None = None
    if len(cardinalities) > 1:
        empty_docs = [row for row, card in enumerate(cardinalities) if card == 0]
        if empty_docs:
            for row in empty_docs:
                sig[row * num_perm : (row + 1) * num_perm] = EMPTY_VALUE
            holes = holes[np.isin(holes // num_perm, empty_docs, invert=True)]
            if len(holes) == 0:
                return
        bins = holes % num_perm
        offsets = (holes - bins)[:, None]
    else:
        bins = holes
    order = _probe_order(num_perm, seed)
    prefix = min(_PROBE_PREFIX, num_perm)
    candidates = order[bins, :prefix] if prefix < num_perm else order[bins]
    if offsets is not None:
        candidates = candidates + offsets
    hit = filled[candidates]
    first = hit.argmax(axis=1)
    rows = np.arange(len(holes))
    source = candidates[rows, first]
    missed = ~hit[rows, first]
    if missed.any():
        full = order[bins[missed]]
        if offsets is not None:
            full = full + offsets[missed]
        source[missed] = full[np.arange(len(full)), filled[full].argmax(axis=1)]
    sig[holes] = sig[source]


def _kperm(hashes: list[U64Array], num_perm: int, seed: int) -> tuple[U32Array, list[int]]:
    a, b = _permutations(num_perm, seed)
    sig = np.full((len(hashes), num_perm), EMPTY_VALUE, dtype=np.uint32)
    cardinalities: list[int] = []
    for row, h in enumerate(hashes):
        if len(h) == 0:
            cardinalities.append(0)
            continue
        unique = np.unique(h)
        cardinalities.append(len(unique))
        permuted = unique[None, :] * a + b
        sig[row] = (permuted.min(axis=1) >> np.uint64(32)).astype(np.uint32)
    return sig, cardinalities


def signature_one(h: U64Array, params: FingerprintParams, *, owned: bool = False) -> Fingerprint:
    """The ``oph`` fingerprint of one text whose shingle hashes are ``h`` (``owned``: ``h`` may be
    overwritten). Equal to :func:`signatures_concat` for one document, bit for bit, in about half the
    numpy calls, which dominate the cost of a short prompt: no document ids, and empty bins densified by
    one masked ``argmin`` over the probe ranks instead of probing a few columns first."""
    num_perm = params.num_perm
    if len(h) == 0:
        return Fingerprint._trusted(params, 0, _empty_values(num_perm))
    bits = num_perm.bit_length() - 1
    if num_perm > 1 and num_perm == 1 << bits:
        keys = np.right_shift(h, _SHIFTS[32 - bits], out=h if owned else None)
    else:
        keys = h >> _C32
        keys *= np.uint64(num_perm)
        keys >>= _C32
        keys <<= _C32
        keys |= h & _LOW32
    keys.sort()
    idx = keys.searchsorted(_bin_edges(num_perm, 1))
    starts = idx[:-1]
    empty = starts == idx[1:]
    sig = keys.take(starts, mode="clip")
    cardinality = int(np.count_nonzero(keys[1:] != keys[:-1])) + 1
    holes = empty.nonzero()[0]
    if len(holes):
        cost = _probe_rank(num_perm, params.seed).take(holes, axis=0)
        cost[:, empty] = _RANK_MASKED
        sig[holes] = sig.take(cost.argmin(axis=1))
    return Fingerprint._trusted(params, min(cardinality, 0xFFFFFFFF), sig.astype("<u4").tobytes())


def signatures(hashes: list[U64Array], params: FingerprintParams) -> list[Fingerprint]:
    """Fingerprints of several shingle-hash arrays under ``params``."""
    if params.scheme == SCHEMES["oph"]:
        if len(hashes) == 1:
            return [signature_one(hashes[0], params)]
        doc_ids = np.repeat(np.arange(len(hashes), dtype=np.uint64), [len(h) for h in hashes])
        return signatures_concat(np.concatenate(hashes), doc_ids, len(hashes), params)
    sig, cardinalities = _kperm(hashes, params.num_perm, params.seed)
    return _wrap(sig, cardinalities, params)


def signatures_concat(
    h: U64Array, doc_ids: U64Array | None, docs: int, params: FingerprintParams
) -> list[Fingerprint]:
    """One-permutation-hashing fingerprints of ``docs`` documents whose shingle hashes are ``h``, the
    document of ``h[i]`` being ``doc_ids[i]`` (``None``: one document)."""
    if params.scheme != SCHEMES["oph"]:
        raise ValueError("signatures_concat needs the oph scheme")
    sig, cardinalities = _oph(h, doc_ids, docs, params.num_perm, params.seed)
    return _wrap(sig, cardinalities, params)


def _wrap(sig: U32Array, cardinalities: list[int], params: FingerprintParams) -> list[Fingerprint]:
    little = sig.astype("<u4", copy=False)
    return [
        Fingerprint._trusted(params, min(card, 0xFFFFFFFF), little[row].tobytes())
        for row, card in enumerate(cardinalities)
    ]
