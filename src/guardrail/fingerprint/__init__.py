"""Prompt fingerprints: normalise -> character shingles -> XXH3 MinHash; LSH index; template assignment.

See docs/fingerprints.md for what each step defeats, the byte format and measured figures.
"""

from __future__ import annotations

from guardrail.fingerprint.fingerprinter import Fingerprinter, PromptFingerprint
from guardrail.fingerprint.lsh import LSHIndex, optimal_bands
from guardrail.fingerprint.minhash import Fingerprint, FingerprintParams
from guardrail.fingerprint.normalize import normalize
from guardrail.fingerprint.templates import TemplateIndex, TemplateMatch

__all__ = [
    "Fingerprint",
    "FingerprintParams",
    "Fingerprinter",
    "LSHIndex",
    "PromptFingerprint",
    "TemplateIndex",
    "TemplateMatch",
    "normalize",
    "optimal_bands",
]
