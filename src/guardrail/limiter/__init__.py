"""Token-bucket rate limiting weighted by LLM tokens (GCRA), in process or on Redis / Redis Cluster.

``TokenBucket`` applies one limit per key; ``Limiter`` decides several buckets at once, all or nothing
(one Lua round trip on Redis, on the server's clock). ``storage_from_uri`` builds a store once so several
limiters share its connection pool. See docs/limiter.md.
"""

from typing import TYPE_CHECKING, Any

from ._breaker import CircuitBreaker
from ._bucket import TokenBucket
from ._limit import BucketRequest, Limit
from ._limiter import Limiter
from ._memory import MemoryStore
from ._result import BucketResult, MultiResult
from ._store import StorageError, Store, StoreReplyError
from ._uri import DEFAULT_TIMEOUT, SCHEMES, storage_from_uri
from ._window import WindowLimiter

if TYPE_CHECKING:
    from ._redis import BACKEND_ERRORS, RedisStore


def __getattr__(name: str) -> Any:
    """``RedisStore`` and ``BACKEND_ERRORS`` (the exceptions that mean "Redis could not answer") are
    imported on first use: redis-py is an optional dependency (``guardrail[redis]``), and the in-process
    limiter must work without it."""
    if name in ("RedisStore", "BACKEND_ERRORS"):
        from . import _redis

        return getattr(_redis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKEND_ERRORS",
    "DEFAULT_TIMEOUT",
    "SCHEMES",
    "BucketRequest",
    "BucketResult",
    "CircuitBreaker",
    "Limit",
    "Limiter",
    "MemoryStore",
    "MultiResult",
    "RedisStore",
    "StorageError",
    "Store",
    "StoreReplyError",
    "TokenBucket",
    "WindowLimiter",
    "storage_from_uri",
]
