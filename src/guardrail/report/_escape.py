"""Escaping for the HTML report: every string from the data passes through ``esc``.

``html.escape`` handles markup; it leaves control characters, lone surrogates and non-characters, which
are invalid in XML (the inline SVG) and parse errors in HTML. Account ids and templates are chosen by
clients, so those are replaced too (by U+FFFD) rather than trusted to every browser's error recovery.
"""

from __future__ import annotations

import html
import re

__all__ = ["esc"]

_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")


def esc(value: object) -> str:
    """``value`` as text safe inside HTML/SVG element content and quoted attribute values."""
    return html.escape(_INVALID.sub("\ufffd", str(value)), quote=True)
