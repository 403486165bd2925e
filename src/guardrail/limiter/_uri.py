"""Storage URIs -> stores: ``memory://``, ``redis://``, ``rediss://``, ``redis+unix://``,
``redis+cluster://``, ``redis+sentinel://`` and their ``valkey`` spellings (the ``limits`` package's grammar).

Hot-path defaults matter more than anything here: a Redis that hangs must cost a request at most a short
timeout, after which the circuit breaker keeps further requests away from it. So clients get small socket
and connect timeouts and no client-side retries (the failure policy decides what a failure means); any
option given by the caller wins.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from ._memory import MemoryStore
from ._store import Store

if TYPE_CHECKING:
    from ._redis import RedisStore

#: Seconds. A healthy Redis on a LAN answers in well under a millisecond; 250 ms is a hang.
DEFAULT_TIMEOUT = 0.25

_VALKEY = {
    "valkey": "redis",
    "valkeys": "rediss",
    "valkey+unix": "redis+unix",
    "valkey+cluster": "redis+cluster",
    "valkey+sentinel": "redis+sentinel",
}
SCHEMES = ("memory", "redis", "rediss", "redis+unix", "redis+cluster", "redis+sentinel", *_VALKEY)


def _locations(parsed: urllib.parse.ParseResult, uri: str) -> list[tuple[str, int]]:
    hosts = parsed.netloc.rsplit("@", 1)[-1]
    locations = []
    for loc in hosts.split(","):
        sub = urllib.parse.urlparse(f"fake://{loc.strip()}")
        try:
            port = sub.port
        except ValueError as err:
            raise ValueError(f"bad port in storage URI {display_uri(uri)!r}: {loc!r}") from err
        if not sub.hostname or port is None:
            raise ValueError(f"storage URI {display_uri(uri)!r} needs host:port for every node, got {loc!r}")
        locations.append((sub.hostname, port))
    return locations


def _client_options(options: dict[str, Any], *, asyncio: bool) -> dict[str, Any]:
    if asyncio:
        from redis.asyncio.retry import Retry as AsyncRetry
        from redis.backoff import NoBackoff

        retry: Any = AsyncRetry(NoBackoff(), 0)
    else:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        retry = Retry(NoBackoff(), 0)
    merged: dict[str, Any] = {
        "socket_timeout": DEFAULT_TIMEOUT,
        "socket_connect_timeout": DEFAULT_TIMEOUT,
        "retry": retry,
    }
    merged.update(options)
    if asyncio:
        merged["retry"] = _async_retry(merged["retry"])
    merged["decode_responses"] = False  # replies are parsed as bytes
    return merged


def _async_retry(retry: Any) -> Any:
    """The caller's ``retry=`` for the asyncio client: one ``redis.retry.Retry`` serves both clients,
    so a synchronous one is copied into its asyncio twin (same backoff, count and errors), which
    redis-py 8 otherwise does itself with a warning and older releases could not await at all."""
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.retry import Retry

    if not isinstance(retry, Retry) or isinstance(retry, AsyncRetry):
        return retry
    return AsyncRetry(retry._backoff, retry._retries, tuple(retry._supported_errors))


def display_uri(uri: str) -> str:
    """``uri`` without its credentials or query (``redis://:secret@host/0`` -> ``redis://host/0``), for
    logs. Cut by hand, not by ``urlparse``: a password with an unencoded ``#`` or ``?`` would end its
    netloc early and show the rest of the password."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return "<storage URI>"
    rest = rest.rsplit("@", 1)[-1]  # userinfo ends at the last "@"
    return f"{scheme}://{rest.split('?', 1)[0].split('#', 1)[0]}"


#: Query parameters of a storage URI that carry credentials (redis-py reads ``password`` and ``username``).
_CREDENTIAL_WORDS = ("pass", "pwd", "user", "secret", "token", "auth", "key")


def scrub_uri(text: str, uri: str) -> str:
    """``text`` (an error message) with ``uri`` shown as :func:`display_uri` shows it, and the URI's
    credentials (user info, password, credential query values such as ``password=``; as written and
    decoded) masked wherever else the text quotes them. Values under four characters are left: masking
    every ``a`` of a message would hide it, not a secret."""
    text = text.replace(uri, display_uri(uri))
    _, sep, rest = uri.partition("://")
    if not sep:
        return text
    userinfo, _, location = rest.rpartition("@")  # userinfo ends at the last "@"
    values = {userinfo, userinfo.partition(":")[2]}
    query = location.partition("?")[2].partition("#")[0]
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if any(word in name.lower() for word in _CREDENTIAL_WORDS):
            values.add(value)
    values |= {urllib.parse.unquote(v) for v in values}
    for secret in sorted((v for v in values if len(v) >= 4), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def storage_from_uri(uri: str, *, prefix: str = "gr:lim:", **options: Any) -> Store:
    """Build a store from a URI. Extra keyword options go to ``MemoryStore`` (``max_keys``, ``stripes``,
    ``clock``) or to the redis-py client constructor (``socket_timeout``, ``password``, ``ssl_ca_certs``...).

    Nothing connects here: Redis clients are created on first use, so a store can be built while Redis is
    down and the failure policy takes over from the first request.
    """
    if not isinstance(uri, str):
        raise TypeError(f"storage URI must be a str, got {type(uri).__name__}")
    parsed = urllib.parse.urlparse(uri)
    scheme = _VALKEY.get(parsed.scheme, parsed.scheme)
    if scheme not in SCHEMES:
        raise ValueError(
            f"unknown storage scheme in {display_uri(uri)!r}; expected one of {', '.join(SCHEMES)}"
        )
    if scheme == "memory":
        return MemoryStore(**options)
    try:
        import redis  # noqa: F401
    except ImportError as err:
        raise ValueError(
            f"{display_uri(uri)!r} needs redis-py: pip install redis, or guardrail's 'redis' extra"
        ) from err
    name = display_uri(uri)
    if scheme in ("redis", "rediss", "redis+unix"):
        url = uri.replace(parsed.scheme, "unix" if scheme == "redis+unix" else scheme, 1)
        return _standalone(url, prefix, name, options)
    locations = _locations(parsed, uri)
    auth = {k: v for k, v in (("username", parsed.username), ("password", parsed.password)) if v}
    if scheme == "redis+cluster":
        return _cluster(locations, prefix, name, {**auth, **options})
    service = (parsed.path or "").strip("/") or options.pop("service_name", None)
    if not service:
        raise ValueError(
            f"sentinel URI {display_uri(uri)!r} needs a service name: redis+sentinel://host:port/service"
        )
    return _sentinel(locations, str(service), prefix, name, {**auth, **options})


def _standalone(url: str, prefix: str, name: str, options: dict[str, Any]) -> RedisStore:
    def client() -> Any:
        import redis

        return redis.Redis.from_url(url, **_client_options(options, asyncio=False))

    def async_client() -> Any:
        import redis.asyncio

        return redis.asyncio.Redis.from_url(url, **_client_options(options, asyncio=True))

    from ._redis import RedisStore

    return RedisStore(client=client, async_client=async_client, prefix=prefix, name=name)


def _cluster(locations: list[tuple[str, int]], prefix: str, name: str, options: dict[str, Any]) -> RedisStore:
    def client() -> Any:
        from redis.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(host, port) for host, port in locations]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=nodes, **_client_options(options, asyncio=False))

    def async_client() -> Any:
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(host, port) for host, port in locations]
        return RedisCluster(startup_nodes=nodes, **_client_options(options, asyncio=True))

    from ._redis import RedisStore

    return RedisStore(client=client, async_client=async_client, cluster=True, prefix=prefix, name=name)


def _sentinel(
    locations: list[tuple[str, int]], service: str, prefix: str, name: str, options: dict[str, Any]
) -> RedisStore:
    sentinel_kwargs = {
        "socket_timeout": options.get("socket_timeout", DEFAULT_TIMEOUT),
        "socket_connect_timeout": options.get("socket_connect_timeout", DEFAULT_TIMEOUT),
    }

    def client() -> Any:
        from redis.sentinel import Sentinel

        # Typed as Any: redis-py's annotations of Sentinel differ between releases (untyped before 8).
        factory: Any = Sentinel
        opts = _client_options(options, asyncio=False)
        return factory(locations, sentinel_kwargs=sentinel_kwargs, **opts).master_for(service, **opts)

    def async_client() -> Any:
        from redis.asyncio.sentinel import Sentinel

        factory: Any = Sentinel
        opts = _client_options(options, asyncio=True)
        return factory(locations, sentinel_kwargs=sentinel_kwargs, **opts).master_for(service, **opts)

    from ._redis import RedisStore

    return RedisStore(client=client, async_client=async_client, prefix=prefix, name=name)
