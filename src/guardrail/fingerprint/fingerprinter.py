"""Text -> :class:`Fingerprint`, segment hashes, and the parts of a prompt fingerprinted apart."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import Protocol

import xxhash

from guardrail.fingerprint.minhash import (
    MAX_NUM_PERM,
    SCHEMES,
    Fingerprint,
    FingerprintParams,
    U64Array,
    signature_one,
    signatures,
    signatures_concat,
)
from guardrail.fingerprint.normalize import NORMALIZATION_VERSION, normalize, normalize_bytes, segment_bytes
from guardrail.fingerprint.shingles import MAX_SHINGLE, MIN_SHINGLE, batch_shingle_hashes, shingle_hashes

__all__ = ["Fingerprinter", "PromptFingerprint", "PromptLike"]

_SEGMENT_LABEL = b"segment"
_OPH = SCHEMES["oph"]
# Texts are batched until about this many bytes: enough to amortise numpy's per-call cost over many short
# prompts, small enough that the one sort per batch stays in cache (measured: larger batches got slower).
_BATCH_BYTES = 16_384
# Texts at least this long are fingerprinted alone: their numpy calls are already amortised over many
# shingles, and the single-text path has fewer of them (measured: batching ~1,000-character prompts was
# slower than one at a time, batching ~250-character ones about 1.4x faster).
_SOLO_BYTES = 512


class PromptLike(Protocol):
    """What :meth:`Fingerprinter.fingerprint_prompt` reads (``guardrail.extract.Prompt`` fits)."""

    @property
    def system(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class PromptFingerprint:
    """A prompt fingerprinted whole and in parts.

    ``system`` and ``user`` are ``None`` when that part is empty after normalisation. ``segments`` hashes
    each line or sentence of the whole prompt (ids masked), so the engine can tell a recurring wrapper from
    changing fills.
    """

    system: Fingerprint | None
    user: Fingerprint | None
    whole: Fingerprint
    segments: tuple[int, ...]


class Fingerprinter:
    """Normalise, shingle and MinHash texts under fixed parameters.

    All options are keyword-only. ``num_perm`` is the signature length (estimate error ~ 1/sqrt(num_perm));
    ``seed`` selects the hash family (fingerprints with different seeds are not comparable);
    ``shingle_size`` is the shingle width in bytes of normalised UTF-8 (4 to 8); ``mask_ids`` replaces
    tokens holding digits by a placeholder; ``scheme`` is ``"oph"`` (default, measured fastest at equal
    accuracy) or ``"kperm"``. Instances are immutable and safe to share between threads.
    """

    __slots__ = ("_params",)

    def __init__(
        self,
        *,
        num_perm: int = 128,
        seed: int = 0,
        shingle_size: int = 5,
        mask_ids: bool = True,
        scheme: str = "oph",
    ) -> None:
        if isinstance(num_perm, bool) or not isinstance(num_perm, int) or not 1 <= num_perm <= MAX_NUM_PERM:
            raise ValueError(f"num_perm must be an int in [1, {MAX_NUM_PERM}], got {num_perm!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
        if (
            isinstance(shingle_size, bool)
            or not isinstance(shingle_size, int)
            or not MIN_SHINGLE <= shingle_size <= MAX_SHINGLE
        ):
            raise ValueError(
                f"shingle_size must be an int in [{MIN_SHINGLE}, {MAX_SHINGLE}], got {shingle_size!r}"
            )
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}")
        self._params = FingerprintParams(
            scheme=SCHEMES[scheme],
            shingle_size=shingle_size,
            normalization=NORMALIZATION_VERSION,
            mask_ids=bool(mask_ids),
            num_perm=num_perm,
            seed=seed,
        )

    @property
    def params(self) -> FingerprintParams:
        return self._params

    def __repr__(self) -> str:
        p = self._params
        return (
            f"Fingerprinter(num_perm={p.num_perm}, seed={p.seed}, shingle_size={p.shingle_size}, "
            f"mask_ids={p.mask_ids}, scheme={p.scheme_name!r})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fingerprinter) and other._params == self._params

    def __hash__(self) -> int:
        return hash(self._params)

    def normalize(self, text: str) -> str:
        """The normalised text these fingerprints are computed from."""
        return normalize(text, mask_ids=self._params.mask_ids)

    def shingle_hashes(self, text: str) -> U64Array:
        """The hashed shingles of ``text`` (with repeats); their set is what the signature samples."""
        data = normalize_bytes(text, mask_ids=self._params.mask_ids)
        return shingle_hashes(data, self._params.shingle_size, self._params.seed)

    def fingerprint(self, text: str) -> Fingerprint:
        """The fingerprint of one text. Empty (or all-invisible) text gives the empty fingerprint."""
        p = self._params
        h = shingle_hashes(normalize_bytes(text, mask_ids=p.mask_ids), p.shingle_size, p.seed)
        return signature_one(h, p, owned=True) if p.scheme == _OPH else signatures([h], p)[0]

    def fingerprint_many(self, texts: Iterable[str]) -> list[Fingerprint]:
        """Fingerprints of several texts, in order; short texts share vectorised passes, cheaper per text
        than a loop."""
        p = self._params
        if p.scheme != _OPH:
            return signatures([self.shingle_hashes(text) for text in texts], p)
        result: list[Fingerprint] = []
        chunk: list[bytes] = []
        size = 0
        for text in texts:
            data = normalize_bytes(text, mask_ids=p.mask_ids)
            if len(data) >= _SOLO_BYTES:
                if chunk:
                    result += self._batch(chunk)
                    chunk, size = [], 0
                result.append(signature_one(shingle_hashes(data, p.shingle_size, p.seed), p, owned=True))
                continue
            chunk.append(data)
            size += len(data)
            if size >= _BATCH_BYTES:
                result += self._batch(chunk)
                chunk, size = [], 0
        if chunk:
            result += self._batch(chunk)
        return result

    def _batch(self, datas: list[bytes]) -> list[Fingerprint]:
        p = self._params
        hashes, doc_ids = batch_shingle_hashes(datas, p.shingle_size, p.seed)
        return signatures_concat(hashes, doc_ids, len(datas), p)

    def segments(self, text: str) -> tuple[int, ...]:
        """Stable 64-bit XXH3 of each normalised, id-masked line or sentence, in order, repeats dropped."""
        parts = segment_bytes(text, mask_ids=True)
        # All in C: label each part, hash it, drop repeats keeping the first occurrence.
        hashes = map(xxhash.xxh3_64_intdigest, map(_SEGMENT_LABEL.__add__, parts), repeat(self._params.seed))
        return tuple(dict.fromkeys(hashes))

    def fingerprint_prompt(self, prompt: PromptLike) -> PromptFingerprint:
        """Fingerprint a ``guardrail.extract.Prompt`` (or anything with ``system``, ``user`` and ``text``):
        system text and latest user turn apart, and the whole prompt."""
        system, user, whole = prompt.system, prompt.user, prompt.text
        for name, value in (("system", system), ("user", user), ("text", whole)):
            if not isinstance(value, str):
                raise TypeError(f"prompt.{name} must be str, got {type(value).__name__}")
        fps = self.fingerprint_many([system, user, whole])
        return PromptFingerprint(
            system=None if fps[0].is_empty else fps[0],
            user=None if fps[1].is_empty else fps[1],
            whole=fps[2],
            segments=self.segments(whole),
        )
