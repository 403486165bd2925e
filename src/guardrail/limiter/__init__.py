"""Token-bucket rate limiting weighted by LLM tokens (GCRA), in process or on Redis / Redis Cluster.

``TokenBucket`` applies one limit per key; ``Limiter`` decides several buckets at once, all or nothing
(one Lua round trip on Redis, on the server's clock). ``storage_from_uri`` builds a store once so several
limiters share its connection pool. See docs/limiter.md.
"""

from ._breaker import CircuitBreaker
from ._bucket import TokenBucket
from ._limit import BucketRequest, Limit
from ._limiter import Limiter
from ._memory import MemoryStore
from ._redis import RedisStore
from ._result import BucketResult, MultiResult
from ._store import StorageError, Store
from ._uri import storage_from_uri
from ._window import WindowLimiter

__all__ = [
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
    "TokenBucket",
    "WindowLimiter",
    "storage_from_uri",
]
