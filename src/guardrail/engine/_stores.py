"""Engine storage URIs -> engine stores: ``memory://`` in process, any Redis URI the limiter accepts
(``redis://``, ``rediss://``, ``redis+unix://``, ``redis+cluster://``, ``redis+sentinel://``, ``valkey...``)
on Redis. One grammar for both halves of guardrail, so ``Guard("redis://...")`` can hand the same string to
its limiter and to its engine store.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from ..limiter._uri import display_uri
from ._memory import MemoryEngineStore
from .store import EngineStore, StoreSettings

__all__ = ["engine_store_from_uri"]


def engine_store_from_uri(
    uri: str, *, settings: StoreSettings | None = None, prefix: str = "guardrail", **options: Any
) -> EngineStore:
    """Build an engine store from a URI. ``prefix`` namespaces the Redis keys (``{<prefix>}:...``; stores
    with the same URI and prefix share one state); extra keyword options go to the redis-py client. Raises
    ValueError for a URI that names no known backend, or a Redis URI without the ``redis`` package."""
    if not isinstance(uri, str):
        raise TypeError(f"engine storage URI must be a str, got {type(uri).__name__}")
    scheme = urllib.parse.urlparse(uri).scheme.lower() if "://" in uri else ""
    if scheme == "memory":
        if options:
            raise ValueError(f"memory:// takes no client options, got {sorted(options)}")
        return MemoryEngineStore(settings)
    from guardrail.limiter._uri import SCHEMES

    if scheme not in SCHEMES:
        raise ValueError(
            f"unknown engine storage URI {display_uri(uri)!r}: expected one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    try:
        from .redis_store import RedisEngineStore
    except ImportError as err:  # redis-py is the optional ``redis`` extra
        raise ValueError(
            f"engine storage {display_uri(uri)!r} needs redis-py: "
            "pip install redis, or guardrail's 'redis' extra"
        ) from err

    return RedisEngineStore(uri, settings=settings, prefix=prefix, **options)
