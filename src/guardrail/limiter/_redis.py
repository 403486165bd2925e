"""Redis store: every decision is one EVALSHA of ``lua/gcra.lua`` on the server's clock.

The script is read and hashed once from package data; every call is a bare EVALSHA, and a NOSCRIPT reply
(first use, server restart, SCRIPT FLUSH, failover) loads the script once and retries. Bypassing redis-py's
``Script`` wrapper saves a few microseconds per call, which matters against a single round trip.
Clients are created lazily, so a Redis that is down at start-up surfaces as a StorageError on first use
(handled by the failure policy) instead of an exception at import or construction time.

Redis Cluster: a script may only touch keys of one hash slot. A decision whose keys share a slot (callers
put a common hash tag in them, e.g. ``"{acct:42}:tokens"``) is one atomic script. Otherwise the decision runs
as one script per slot, in order of first appearance; if a later slot refuses, the earlier slots are refunded
(settled with the negative cost) and the request is refused. Guarantee across slots: never more admitted than
the limits allow; a refused request leaves no lasting charge; but between a step and its refund a concurrent
request may see fewer tokens than it should (a spurious refusal, never an over-admission).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.resources
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from . import _gcra
from ._limit import BucketRequest, Limit
from ._result import STORE, BucketResult, MultiResult
from ._store import StorageError

#: Exceptions that mean "the store could not answer" (wrapped into StorageError in one place, here).
BACKEND_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    RedisClusterException,
    OSError,
    asyncio.TimeoutError,
)

_SCRIPTS: dict[str, tuple[str, str]] = {}
_REFUND_ERRORS: tuple[type[BaseException], ...] = (*BACKEND_ERRORS, StorageError)


def script(name: str = "gcra") -> tuple[str, str]:
    """A Lua script (``gcra``: several buckets, any mode; ``gcra_one``: one bucket, consume) and its SHA1,
    read once from package data."""
    found = _SCRIPTS.get(name)
    if found is None:
        source = importlib.resources.files(__package__).joinpath(f"lua/{name}.lua").read_text("utf-8")
        found = _SCRIPTS[name] = (source, hashlib.sha1(source.encode()).hexdigest())
    return found


def _source(sha: bytes) -> str:
    for source, digest in _SCRIPTS.values():
        if digest.encode() == sha:
            return source
    raise LookupError(f"no script with SHA1 {sha!r}")


def _now(now: float | None) -> bytes:
    """``now`` for the scripts: "" (server TIME) or whole microseconds."""
    return b"" if now is None else str(round(float(now) * _gcra.MICROS)).encode()


def _args(mode: str, requests: Sequence[BucketRequest], now: float | None) -> list[bytes | float]:
    args: list[bytes | float] = [mode.encode(), _now(now)]
    for r in requests:
        args += r.limit.wire
        args.append(r.cost)
    return args


def _parse(mode: str, requests: Sequence[BucketRequest], reply: bytes) -> MultiResult:
    """Turn the script's integers ("allowed_all", then "allowed ahead" per bucket) into results."""
    values = list(map(int, reply.split()))  # one C-level pass
    new = tuple.__new__  # BucketResult's own __new__ is Python-level; this is its fast path
    from_ahead = _gcra.from_ahead
    results = []
    for i, r in zip(range(1, 2 * len(requests), 2), requests, strict=True):
        ok = values[i] == 1
        lim = r.limit
        remaining, retry, reset = from_ahead(
            mode, ok, values[i + 1] / _gcra.MICROS, lim.rate, lim.burst, r.cost
        )
        results.append(new(BucketResult, (r.key, ok, remaining, retry, reset, lim.burst, STORE)))
    return MultiResult(values[0] == 1, tuple(results))


def _negated(requests: Sequence[BucketRequest]) -> list[BucketRequest]:
    return [BucketRequest(r.key, r.limit, -r.cost) for r in requests]


class _LoopClient:
    """One event loop's asyncio client (asyncio connections belong to the loop that opened them)."""

    __slots__ = ("client", "lock", "ready")

    def __init__(self, client: Any, *, ready: bool) -> None:
        self.client = client
        self.ready = ready
        self.lock = asyncio.Lock()


class RedisStore:
    """Token buckets in Redis (standalone, Sentinel-managed or Cluster), shared by every worker and node.

    Built by ``storage_from_uri("redis://...")``; the factories return a redis-py client (sync) and a
    redis-py asyncio client (async; one per event loop, since asyncio connections belong to one loop).
    """

    def __init__(
        self,
        *,
        client: Callable[[], Any],
        async_client: Callable[[], Any],
        cluster: bool = False,
        prefix: str = "gr:lim:",
        name: str = "redis",
    ) -> None:
        self._make_client = client
        self._make_async_client = async_client
        self.cluster = cluster
        self.prefix = prefix
        self._name = name
        self._lock = threading.Lock()
        self._client: Any = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )
        # arguments go to redis-py as bytes where possible: its command packer passes bytes through
        self._sha = script("gcra")[1].encode()
        self._sha_one = script("gcra_one")[1].encode()
        self._prefix = prefix.encode()

    def __repr__(self) -> str:
        return f"RedisStore({self._name!r}, cluster={self.cluster}, prefix={self.prefix!r})"

    # -- clients -------------------------------------------------------------------------------------

    def _sync(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
                client = self._client
        return client

    async def _async(self) -> Any:
        """This event loop's client. An asyncio cluster client is initialised once, under a lock, before
        any command: concurrent first commands would each start the cluster discovery and trip over each
        other's half-open connections."""
        loop = asyncio.get_running_loop()
        entry = self._aclients.get(loop)
        if entry is None:
            entry = self._aclients[loop] = _LoopClient(self._make_async_client(), ready=not self.cluster)
        if not entry.ready:
            async with entry.lock:
                if not entry.ready:
                    await entry.client.initialize()
                    entry.ready = True
        return entry.client

    def client(self) -> Any:
        """The sync redis-py client (created on first use): for sharing one connection pool."""
        try:
            return self._sync()
        except BACKEND_ERRORS as err:
            raise StorageError(f"{self._name}: {err}") from err

    def _evalsha(self, sha: bytes, keys: Sequence[bytes], args: Sequence[bytes | float]) -> bytes:
        """One EVALSHA; on NOSCRIPT (first use, server restart, SCRIPT FLUSH) load the script and retry.

        Everything the client raises here is store trouble, including the odd non-Redis exception a client
        raises while its connection is torn down under a timeout: it becomes a StorageError, so it reaches
        the failure policy and never the caller's request path.
        """
        client = self._sync()
        try:
            try:
                reply: bytes = client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
            except NoScriptError:
                client.script_load(_source(sha))
                reply = client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        except BACKEND_ERRORS:
            raise
        except Exception as err:
            raise StorageError(f"{self._name}: {type(err).__name__}: {err}") from err
        return reply

    async def _aevalsha(self, sha: bytes, keys: Sequence[bytes], args: Sequence[bytes | float]) -> bytes:
        try:
            client = await self._async()
            try:
                reply: bytes = await client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
            except NoScriptError:
                await client.script_load(_source(sha))
                reply = await client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        except BACKEND_ERRORS:
            raise
        except Exception as err:
            raise StorageError(f"{self._name}: {type(err).__name__}: {err}") from err
        return reply

    # -- slots ---------------------------------------------------------------------------------------

    def _groups(self, requests: Sequence[BucketRequest]) -> list[list[int]]:
        """Indexes of ``requests`` grouped by hash slot, in order of first appearance."""
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(key_slot(self._prefix + r.key.encode()), []).append(i)
        return list(groups.values())

    # -- sync ----------------------------------------------------------------------------------------

    def _run(self, mode: str, requests: Sequence[BucketRequest], now: float | None) -> MultiResult:
        keys = [self._prefix + r.key.encode() for r in requests]
        return _parse(mode, requests, self._evalsha(self._sha, keys, _args(mode, requests, now)))

    def decide(self, mode: str, requests: Sequence[BucketRequest], now: float | None = None) -> MultiResult:
        if mode not in _gcra.MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {_gcra.MODES}")
        if not requests:
            return MultiResult(True, ())
        try:
            if not self.cluster:
                return self._run(mode, requests, now)
            groups = self._groups(requests)
            if len(groups) == 1:
                return self._run(mode, requests, now)
            return self._cross_slot(mode, requests, groups, now)
        except BACKEND_ERRORS as err:
            raise StorageError(f"{self._name}: {err}") from err

    def _cross_slot(
        self, mode: str, requests: Sequence[BucketRequest], groups: list[list[int]], now: float | None
    ) -> MultiResult:
        results: list[BucketResult | None] = [None] * len(requests)
        done: list[list[BucketRequest]] = []
        allowed = True
        try:
            for group in groups:
                part = [requests[i] for i in group]
                step_mode = _gcra.PEEK if mode == _gcra.CONSUME and not allowed else mode
                answer = self._run(step_mode, part, now)
                for i, res in zip(group, answer.results, strict=True):
                    results[i] = res
                if step_mode == _gcra.CONSUME:
                    if answer.allowed:
                        done.append(part)
                    else:
                        pending, done = done, []
                        self._refund(pending, now)
                allowed = allowed and answer.allowed
        except BaseException:
            self._refund(done, now, quiet=True)
            raise
        return MultiResult(allowed, tuple(r for r in results if r is not None))

    def _refund(self, done: list[list[BucketRequest]], now: float | None, *, quiet: bool = False) -> None:
        for part in done:
            try:
                self._run(_gcra.SETTLE, _negated(part), now)
            except _REFUND_ERRORS:
                if not quiet:
                    raise

    def consume_one(self, key: str, limit: Limit, cost: float, now: float | None = None) -> BucketResult:
        rate, burst = limit.wire
        try:
            reply = self._evalsha(
                self._sha_one, (self._prefix + key.encode(),), (_now(now), rate, burst, cost)
            )
        except BACKEND_ERRORS as err:
            raise StorageError(f"{self._name}: {err}") from err
        flag, ahead = reply.split()
        ok = flag == b"1"
        remaining, retry, reset = _gcra.from_ahead(
            _gcra.CONSUME, ok, int(ahead) / _gcra.MICROS, limit.rate, limit.burst, cost
        )
        return tuple.__new__(BucketResult, (key, ok, remaining, retry, reset, limit.burst, STORE))

    # -- async ---------------------------------------------------------------------------------------

    async def _arun(self, mode: str, requests: Sequence[BucketRequest], now: float | None) -> MultiResult:
        keys = [self._prefix + r.key.encode() for r in requests]
        return _parse(mode, requests, await self._aevalsha(self._sha, keys, _args(mode, requests, now)))

    async def adecide(
        self, mode: str, requests: Sequence[BucketRequest], now: float | None = None
    ) -> MultiResult:
        if mode not in _gcra.MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {_gcra.MODES}")
        if not requests:
            return MultiResult(True, ())
        try:
            if not self.cluster:
                return await self._arun(mode, requests, now)
            groups = self._groups(requests)
            if len(groups) == 1:
                return await self._arun(mode, requests, now)
            return await self._across_slot(mode, requests, groups, now)
        except BACKEND_ERRORS as err:
            raise StorageError(f"{self._name}: {err}") from err

    async def _across_slot(
        self, mode: str, requests: Sequence[BucketRequest], groups: list[list[int]], now: float | None
    ) -> MultiResult:
        results: list[BucketResult | None] = [None] * len(requests)
        done: list[list[BucketRequest]] = []
        allowed = True
        try:
            for group in groups:
                part = [requests[i] for i in group]
                step_mode = _gcra.PEEK if mode == _gcra.CONSUME and not allowed else mode
                answer = await self._arun(step_mode, part, now)
                for i, res in zip(group, answer.results, strict=True):
                    results[i] = res
                if step_mode == _gcra.CONSUME:
                    if answer.allowed:
                        done.append(part)
                    else:
                        pending, done = done, []
                        await self._arefund(pending, now)
                allowed = allowed and answer.allowed
        except BaseException:
            await self._arefund(done, now, quiet=True)
            raise
        return MultiResult(allowed, tuple(r for r in results if r is not None))

    async def _arefund(
        self, done: list[list[BucketRequest]], now: float | None, *, quiet: bool = False
    ) -> None:
        for part in done:
            try:
                await self._arun(_gcra.SETTLE, _negated(part), now)
            except _REFUND_ERRORS:
                if not quiet:
                    raise

    async def aconsume_one(
        self, key: str, limit: Limit, cost: float, now: float | None = None
    ) -> BucketResult:
        rate, burst = limit.wire
        try:
            reply = await self._aevalsha(
                self._sha_one, (self._prefix + key.encode(),), (_now(now), rate, burst, cost)
            )
        except BACKEND_ERRORS as err:
            raise StorageError(f"{self._name}: {err}") from err
        flag, ahead = reply.split()
        ok = flag == b"1"
        remaining, retry, reset = _gcra.from_ahead(
            _gcra.CONSUME, ok, int(ahead) / _gcra.MICROS, limit.rate, limit.burst, cost
        )
        return tuple.__new__(BucketResult, (key, ok, remaining, retry, reset, limit.burst, STORE))

    # -- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client's connections (async clients are closed by ``aclose`` in their loop)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except BACKEND_ERRORS:
                pass

    async def aclose(self) -> None:
        """Close the current event loop's async client, and the sync one."""
        loop = asyncio.get_running_loop()
        entry = self._aclients.pop(loop, None)
        if entry is not None:
            try:
                await entry.client.aclose()
            except BACKEND_ERRORS:
                pass
        self.close()
