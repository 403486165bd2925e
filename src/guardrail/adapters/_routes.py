"""Which requests are inspected, and in which provider's dialect a refusal is written.

Only POSTs to LLM routes are inspected; every other request (health checks, static files, model lists,
websockets) passes through untouched and costs one regular-expression match. Patterns are shell-style
globs (``*`` matches anything, ``/`` included) so a prefix added by a gateway (``/openai/v1/...``) still
matches; they are compiled once into a single regular expression.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Literal, cast, get_args

from ..extract import ambiguous_path, canonical_path

Provider = Literal["openai", "anthropic", "gemini"]
PROVIDERS: tuple[str, ...] = get_args(Provider)

#: The routes inspected by default: OpenAI chat / completions / responses, Anthropic messages,
#: Gemini generateContent (streamed or not).
DEFAULT_ROUTES: Mapping[str, Provider] = {
    "*/chat/completions": "openai",
    "*/v1/completions": "openai",
    "*/v1/responses": "openai",
    "*/v1/messages": "anthropic",
    "*:generateContent": "gemini",
    "*:streamGenerateContent": "gemini",
}


def request_path(path: str) -> str:
    """The path guardrail reads a request by (routes, identity, the engine): as it came, or, when a
    normalising server (or the proxy's httpx) may route it as another, the canonical path it routes to
    (``/v1/chat/completions/.`` and ``/v1//messages`` are chat and messages, not uninspected twins)."""
    return canonical_path(path) if ambiguous_path(path) else path


class RouteTable:
    """Glob patterns mapped to providers; ``match(path)`` gives the provider or ``None``."""

    __slots__ = ("_providers", "_regex", "patterns")

    def __init__(self, routes: Mapping[str, str] | None = None) -> None:
        table = dict(DEFAULT_ROUTES if routes is None else routes)
        parts: list[str] = []
        providers: list[Provider] = []
        for pattern, provider in table.items():
            if not isinstance(pattern, str) or not pattern:
                raise ValueError(f"route patterns must be non-empty strings, got {pattern!r}")
            if provider not in PROVIDERS:
                raise ValueError(f"route {pattern!r}: provider must be one of {PROVIDERS}, got {provider!r}")
            # fnmatch.translate yields "(?s:...)\Z"; each alternative gets its own group.
            parts.append(f"(?P<r{len(parts)}>{fnmatch.translate(pattern)})")
            providers.append(cast(Provider, provider))
        self.patterns: dict[str, Provider] = dict(zip(table, providers, strict=True))
        self._providers = tuple(providers)
        # Case-blind: a case-insensitive upstream (ASP.NET routing, IIS) serves /V1/CHAT/COMPLETIONS as
        # the chat route; inspecting it on a case-sensitive one costs nothing.
        self._regex = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def match(self, path: str) -> Provider | None:
        """The provider whose pattern matches ``path`` (first pattern wins), else ``None``."""
        if self._regex is None:
            return None
        m = self._regex.match(path)
        if m is None and path.endswith("/"):
            # Apps that also serve "/v1/chat/completions/" must not get an uninspected twin route.
            m = self._regex.match(path.rstrip("/"))
        if m is None:
            return None
        name = m.lastgroup  # fnmatch.translate adds no capturing groups, so this is our "r<i>"
        return self._providers[int(name[1:])] if name else None

    def __repr__(self) -> str:
        return f"RouteTable({self.patterns!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RouteTable) and other.patterns == self.patterns

    __hash__ = None  # type: ignore[assignment]
