"""Redis store: every decision is one EVALSHA of a Lua script on the server's clock.

``lua/gcra.lua`` decides several buckets at once (any mode); ``lua/gcra_one.lua`` is the single-bucket
consume. Both are read and hashed once from package data; a NOSCRIPT reply (first use, server restart,
SCRIPT FLUSH, failover) loads the script on the same connection and retries once.

The hot path is priced against one ``INCRBY`` round trip, so the client side is kept to the bare minimum:
on a standalone or Sentinel-managed Redis the command is packed by ``_wire``, in Redis's wire format, from
pieces encoded once (the ``EVALSHA <sha> <numkeys>`` head per store, each ``Limit``'s tolerance), and sent
on a connection borrowed from redis-py's own pool with redis-py's own ``send_packed_command`` /
``read_response`` (which disconnect on a socket error or timeout, and raise ``NoScriptError`` and the
other reply errors). What is skipped is ``execute_command``'s generic machinery (argument packing,
retry closures, metrics hooks, reply callbacks), about as long as the script itself on the server. A
client configured with retries, a single-connection client and Redis Cluster go through
``execute_command`` as usual (Cluster needs its routing and redirection handling).
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
import collections
import contextlib
import inspect
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError

from . import _gcra, _wire
from ._limit import BucketRequest, Limit
from ._result import BucketResult, MultiResult
from ._store import StorageError, StoreReplyError

#: Exceptions that mean "the store could not answer" (wrapped into StorageError in one place, here).
BACKEND_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    RedisClusterException,
    OSError,
    asyncio.TimeoutError,
)

_REFUND_ERRORS: tuple[type[BaseException], ...] = (*BACKEND_ERRORS, StorageError)

#: How the server's replies about a key's contents begin, once redis-py has taken off a leading ``ERR``:
#: a command on a key of another type, a value that is not a number, a script's own runtime error (Redis 7).
_DATA_ERRORS = ("WRONGTYPE", "value is not", "hash value is not", "user_script:")
#: Redis 6 wraps every error inside a script as "Error running script ...: -CODE message": these codes there
#: mean the server cannot serve (a replica, full memory, a failover, a lost login...), not a bad key.
_UNAVAILABLE_CODES = (
    "OOM", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "LOADING", "BUSY", "NOREPLICAS", "MISCONF",
    "NOAUTH", "WRONGPASS", "NOPERM", "MOVED", "ASK", "CROSSSLOT",
)  # fmt: skip


def is_data_error(err: BaseException) -> bool:
    """Whether ``err`` is the server's error reply about a key's contents (a key of the wrong type, a
    value a script cannot read as a number): the server is up and only the keys of this call are at fault.

    redis-py raises its own subclasses for the replies that mean the server cannot serve (OOM, READONLY,
    MASTERDOWN, CLUSTERDOWN, TRYAGAIN, LOADING, a refused login...) and strips their code, so only a plain
    ``ResponseError`` can be a data error; anything else (an unreachable server, an unknown reply) is an
    outage for the failure policy and the breaker.
    """
    if type(err) is not ResponseError:
        return False
    text = str(err)
    if text.startswith(_DATA_ERRORS):
        return True
    if text.startswith("Error running script"):  # Redis 6: the inner reply follows as "-CODE ..."
        return not any(f"-{code} " in text for code in _UNAVAILABLE_CODES)
    return False


def backend_error(name: str, err: BaseException) -> StorageError:
    """The StorageError a backend exception becomes: a StoreReplyError for a data error (see
    :func:`is_data_error`), else a plain StorageError (the store could not answer)."""
    kind = StoreReplyError if is_data_error(err) else StorageError
    return kind(f"{name}: {err}")


def _negated(requests: Sequence[BucketRequest]) -> list[BucketRequest]:
    return [BucketRequest(r.key, r.limit, -r.cost) for r in requests]


def _direct_pool(client: Any, cluster: bool) -> Any:
    """The connection pool to borrow from for hand-packed commands, or None when the client must go
    through ``execute_command``: Cluster (routing, redirections), a single-connection client, or a client
    configured with retries (so that its retry policy applies)."""
    if cluster or getattr(client, "connection", None) is not None:
        return None
    pool = getattr(client, "connection_pool", None)
    if pool is None or not hasattr(pool, "get_connection") or not hasattr(pool, "release"):
        return None
    get_retry = getattr(client, "get_retry", None)
    retry = get_retry() if get_retry is not None else None
    if retry is not None and retry.get_retries() != 0:
        return None
    return pool


def _keeps_connections(pool: Any) -> bool:
    """May the store keep connections it borrowed from ``pool`` (see ``_Client.idle``)? Not when the pool
    must see each connection come back: client-side caching and RESP3 (push messages, maintenance
    notifications handled on release), a Sentinel-managed pool (it checks on release that a connection
    still points at the current master)."""
    if getattr(pool, "cache", None) is not None or hasattr(pool, "service_name"):
        return False
    kwargs = getattr(pool, "connection_kwargs", None)
    return isinstance(kwargs, dict) and kwargs.get("protocol") in (None, 2, "2")


#: every sync client that keeps connections, so that a forked child forgets its parent's sockets
_KEEPERS: weakref.WeakSet[_Client] = weakref.WeakSet()


def _forget_parent_connections() -> None:
    for entry in list(_KEEPERS):
        if entry.idle is not None:
            entry.idle.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_connections)


def _pool_args(pool: Any) -> tuple[str, ...]:
    """Arguments for ``pool.get_connection``: redis-py < 5.3 requires a command name, later versions
    deprecate passing one."""
    try:
        param = inspect.signature(pool.get_connection).parameters.get("command_name")
    except (TypeError, ValueError):
        return ()
    return ("EVALSHA",) if param is not None and param.default is inspect.Parameter.empty else ()


class _Client:
    """A redis-py client, and the pool to borrow from for hand-packed commands (None: execute_command).

    ``idle`` (sync clients on a plain pool): connections borrowed from the pool and kept between calls.
    The pool's ``get_connection`` / ``release`` cost about 10 us per call (locks, bookkeeping, metrics
    hooks), more than a tenth of a loopback round trip; a kept connection costs a ``deque`` pop and
    append, and the same liveness check the pool makes (``can_read``: a socket the server closed is
    reconnected, one holding unexpected data is reset). A connection goes back to the pool (and is
    closed) on any failure other than a Redis error reply, which leaves it clean. The pool still creates
    every connection, so its ``max_connections`` still applies; closing the client closes them too.
    """

    __slots__ = ("__weakref__", "client", "get_args", "idle", "lock", "pool", "ready")

    def __init__(self, client: Any, *, cluster: bool, ready: bool = True, keep: bool = False) -> None:
        self.client = client
        self.pool = _direct_pool(client, cluster)
        self.get_args = _pool_args(self.pool) if self.pool is not None else ()
        self.ready = ready  # an asyncio cluster client must be initialised before its first command
        self.lock: asyncio.Lock | None = None
        self.idle: collections.deque[Any] | None = None
        if keep and self.pool is not None and _keeps_connections(self.pool):
            self.idle = collections.deque()
            _KEEPERS.add(self)


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
        self._client: _Client | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Client] = (
            weakref.WeakKeyDictionary()
        )
        # arguments go to redis-py as bytes where possible: its command packer passes bytes through
        self._sha = _wire.script("gcra")[1].encode()
        self._sha_one = _wire.script("gcra_one")[1].encode()
        self._prefix = prefix.encode()
        # the constant heads of the hand-packed commands: EVALSHA <sha> (and numkeys 1 for one bucket)
        self._head = _wire.bulk(b"EVALSHA") + _wire.bulk(self._sha)
        head_one = _wire.bulk(b"EVALSHA") + _wire.bulk(self._sha_one) + _wire.bulk(b"1")
        self._head_one = b"*6\r\n" + head_one
        self._head_one_now = b"*7\r\n" + head_one

    def __repr__(self) -> str:
        return f"RedisStore({self._name!r}, cluster={self.cluster}, prefix={self.prefix!r})"

    # -- clients -------------------------------------------------------------------------------------

    def _sync(self) -> _Client:
        entry = self._client
        if entry is None:
            with self._lock:
                if self._client is None:
                    self._client = _Client(self._make_client(), cluster=self.cluster, keep=True)
                entry = self._client
        return entry

    async def _aentry(self) -> _Client:
        """This event loop's client. An asyncio cluster client is initialised once, under a lock, before
        any command: concurrent first commands would each start the cluster discovery and trip over each
        other's half-open connections."""
        loop = asyncio.get_running_loop()
        entry = self._aclients.get(loop)
        if entry is None:
            entry = _Client(self._make_async_client(), cluster=self.cluster, ready=not self.cluster)
            self._aclients[loop] = entry
        if not entry.ready:
            if entry.lock is None:
                entry.lock = asyncio.Lock()
            async with entry.lock:
                if not entry.ready:
                    await entry.client.initialize()
                    entry.ready = True
        return entry

    def client(self) -> Any:
        """The sync redis-py client (created on first use): for sharing one connection pool."""
        try:
            return self._sync().client
        except BACKEND_ERRORS as err:
            raise backend_error(self._name, err) from err

    async def aclient(self) -> Any:
        """This event loop's redis-py asyncio client (created on first use, one per loop since asyncio
        connections belong to the loop that opened them; a Cluster client comes initialised): for
        sharing its connection pool. Backend trouble while creating it raises StorageError."""
        try:
            return (await self._aentry()).client
        except BACKEND_ERRORS as err:
            raise backend_error(self._name, err) from err

    async def _async(self) -> Any:
        """Former name of ``aclient`` (its callers expect redis-py's exceptions), kept as an alias."""
        return (await self._aentry()).client

    # -- one round trip --------------------------------------------------------------------------------

    def _call(self, entry: _Client, packed: bytes, sha: bytes, keys: Sequence[bytes], args: Any) -> Any:
        """One EVALSHA; on NOSCRIPT (first use, server restart, SCRIPT FLUSH) load the script and retry.

        ``packed`` is the command in wire format, sent on a connection borrowed from the client's pool;
        ``args`` builds the ARGV list for ``execute_command`` when the client must go through it.
        Everything the client raises here is store trouble, including the odd non-Redis exception a client
        raises while its connection is torn down under a timeout: it becomes a StorageError, so it reaches
        the failure policy and never the caller's request path.
        """
        try:
            idle = entry.idle
            if idle is not None:
                try:
                    conn = idle.pop()
                except IndexError:
                    conn = entry.pool.get_connection(*entry.get_args)
                else:
                    try:
                        if conn.can_read():  # unexpected data: start afresh (send reconnects)
                            conn.disconnect()
                    except (OSError, RedisError):  # closed by the server: reconnect
                        conn.disconnect()
                try:
                    reply = self._send(conn, packed, sha)
                except ResponseError:
                    idle.append(conn)  # a Redis error reply, read in full: the connection is clean
                    raise
                except BaseException:
                    conn.disconnect()
                    entry.pool.release(conn)
                    raise
                idle.append(conn)
                return reply
            pool = entry.pool
            if pool is not None:
                conn = pool.get_connection(*entry.get_args)
                try:
                    return self._send(conn, packed, sha)
                finally:
                    pool.release(conn)
            client = entry.client
            argv = args()
            try:
                return client.execute_command("EVALSHA", sha, len(keys), *keys, *argv)
            except NoScriptError:
                client.script_load(_wire.source(sha))
                return client.execute_command("EVALSHA", sha, len(keys), *keys, *argv)
        except BACKEND_ERRORS:
            raise
        except Exception as err:
            raise StorageError(f"{self._name}: {type(err).__name__}: {err}") from err

    @staticmethod
    def _send(conn: Any, packed: bytes, sha: bytes) -> Any:
        """One hand-packed EVALSHA on ``conn``; on NOSCRIPT, load the script on it and retry once."""
        try:
            conn.send_packed_command((packed,))
            return conn.read_response()
        except NoScriptError:
            conn.send_packed_command(conn.pack_command("SCRIPT", "LOAD", _wire.source(sha)))
            conn.read_response()
        conn.send_packed_command((packed,))
        return conn.read_response()

    async def _acall(
        self, entry: _Client, packed: bytes, sha: bytes, keys: Sequence[bytes], args: Any
    ) -> Any:
        try:
            pool = entry.pool
            if pool is not None:
                conn = await pool.get_connection(*entry.get_args)
                try:
                    try:
                        await conn.send_packed_command((packed,))
                        return await conn.read_response()
                    except NoScriptError:
                        await conn.send_packed_command(conn.pack_command("SCRIPT", "LOAD", _wire.source(sha)))
                        await conn.read_response()
                    await conn.send_packed_command((packed,))
                    return await conn.read_response()
                finally:
                    await pool.release(conn)
            client = entry.client
            argv = args()
            try:
                return await client.execute_command("EVALSHA", sha, len(keys), *keys, *argv)
            except NoScriptError:
                await client.script_load(_wire.source(sha))
                return await client.execute_command("EVALSHA", sha, len(keys), *keys, *argv)
        except BACKEND_ERRORS:
            raise
        except Exception as err:
            raise StorageError(f"{self._name}: {type(err).__name__}: {err}") from err

    # -- slots ---------------------------------------------------------------------------------------

    def _groups(self, requests: Sequence[BucketRequest]) -> list[list[int]]:
        """Indexes of ``requests`` grouped by hash slot, in order of first appearance."""
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(key_slot(self._prefix + r.key.encode()), []).append(i)
        return list(groups.values())

    # -- sync ----------------------------------------------------------------------------------------

    def _run(self, mode: str, requests: Sequence[BucketRequest], now: float | None) -> MultiResult:
        entry = self._sync()
        prefix = self._prefix
        keys = [prefix + r.key.encode() for r in requests]
        packed = b"" if entry.pool is None else _wire.pack_many(self._head, mode, keys, requests, now)
        reply = self._call(entry, packed, self._sha, keys, lambda: _wire.argv_many(mode, keys, requests, now))
        return _wire.parse_many(mode, requests, reply)

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
            raise backend_error(self._name, err) from err

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
        try:
            entry = self._client or self._sync()
            k = self._prefix + key.encode()
            packed = (
                b""
                if entry.pool is None
                else _wire.pack_one(self._head_one, self._head_one_now, k, limit, cost, now)
            )
            reply = self._call(entry, packed, self._sha_one, (k,), lambda: _wire.argv_one(limit, cost, now))
        except BACKEND_ERRORS as err:
            raise backend_error(self._name, err) from err
        return _wire.parse_one(key, limit, cost, reply)

    # -- async ---------------------------------------------------------------------------------------

    async def _arun(self, mode: str, requests: Sequence[BucketRequest], now: float | None) -> MultiResult:
        entry = await self._aentry()
        prefix = self._prefix
        keys = [prefix + r.key.encode() for r in requests]
        packed = b"" if entry.pool is None else _wire.pack_many(self._head, mode, keys, requests, now)
        reply = await self._acall(
            entry, packed, self._sha, keys, lambda: _wire.argv_many(mode, keys, requests, now)
        )
        return _wire.parse_many(mode, requests, reply)

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
            raise backend_error(self._name, err) from err

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
        try:
            entry = await self._aentry()
            k = self._prefix + key.encode()
            packed = (
                b""
                if entry.pool is None
                else _wire.pack_one(self._head_one, self._head_one_now, k, limit, cost, now)
            )
            reply = await self._acall(
                entry, packed, self._sha_one, (k,), lambda: _wire.argv_one(limit, cost, now)
            )
        except BACKEND_ERRORS as err:
            raise backend_error(self._name, err) from err
        return _wire.parse_one(key, limit, cost, reply)

    # -- a caller's script and a decision in one round trip ---------------------------------------------

    @property
    def shares_round_trips(self) -> bool:
        """True when :meth:`decide_after` can send two commands in one round trip: not on Cluster (keys of
        different slots live on different nodes), nor through a client that must go through
        ``execute_command`` (configured with retries, so that its retry policy applies, or single-connection).
        Creates the sync client if needed (no connection is made)."""
        return not self.cluster and self._sync().pool is not None

    def _pair(
        self,
        first: tuple[str | bytes, str, Sequence[bytes], Sequence[Any]],
        mode: str,
        requests: Sequence[BucketRequest],
        now: float | None,
        conn: Any,
    ) -> tuple[list[bytes], bytes]:
        _, sha, keys, args = first
        head = list(conn.pack_command("EVALSHA", sha, len(keys), *keys, *args))
        bkeys = [self._prefix + r.key.encode() for r in requests]
        return head, _wire.pack_many(self._head, mode, bkeys, requests, now)

    def decide_after(
        self,
        first: tuple[str | bytes, str, Sequence[bytes], Sequence[Any]],
        mode: str,
        requests: Sequence[BucketRequest],
        now: float | None = None,
    ) -> tuple[Any, MultiResult | StorageError]:
        """Run the caller's script ``first`` = (source, sha, keys, args), then the bucket decision, on one
        connection in one round trip (pipelined: the server runs them one after the other, nothing else
        between the two is promised). Returns the script's reply (a ``ResponseError`` instance when it
        answered an error) and the decision (a ``StorageError`` instance when its script failed).

        A script that answered NOSCRIPT did not run: it is loaded and sent again alone, so neither runs
        twice. A socket error or timeout raises StorageError (neither answer is known). Only where
        :attr:`shares_round_trips` (ValueError otherwise).
        """
        if not self.shares_round_trips or not requests:
            raise ValueError("decide_after needs a store that shares round trips and at least one bucket")
        with self._wrapped():
            entry = self._sync()
            pool = entry.pool
            conn = pool.get_connection(*entry.get_args)
            try:
                head, packed = self._pair(first, mode, requests, now, conn)
                conn.send_packed_command([*head, packed])
                replies = [self._read(conn), self._read(conn)]
                pending = [i for i in (0, 1) if isinstance(replies[i], NoScriptError)]
                if pending:
                    for i in pending:
                        conn.send_packed_command(conn.pack_command("SCRIPT", "LOAD", self._source(first, i)))
                        conn.read_response()
                    conn.send_packed_command([b"".join(head) if i == 0 else packed for i in pending])
                    for i in pending:
                        replies[i] = self._read(conn)
            finally:
                pool.release(conn)
        return replies[0], self._decision(mode, requests, replies[1])

    async def adecide_after(
        self,
        first: tuple[str | bytes, str, Sequence[bytes], Sequence[Any]],
        mode: str,
        requests: Sequence[BucketRequest],
        now: float | None = None,
    ) -> tuple[Any, MultiResult | StorageError]:
        """:meth:`decide_after` on this event loop's client."""
        if not self.shares_round_trips or not requests:
            raise ValueError("decide_after needs a store that shares round trips and at least one bucket")
        with self._wrapped():
            entry = await self._aentry()
            pool = entry.pool
            if pool is None:  # an asyncio client built with other options than the sync one
                raise ValueError("decide_after needs a client with a connection pool")
            conn = await pool.get_connection(*entry.get_args)
            try:
                head, packed = self._pair(first, mode, requests, now, conn)
                await conn.send_packed_command([*head, packed])
                replies = [await self._aread(conn), await self._aread(conn)]
                pending = [i for i in (0, 1) if isinstance(replies[i], NoScriptError)]
                if pending:
                    for i in pending:
                        await conn.send_packed_command(
                            conn.pack_command("SCRIPT", "LOAD", self._source(first, i))
                        )
                        await conn.read_response()
                    await conn.send_packed_command([b"".join(head) if i == 0 else packed for i in pending])
                    for i in pending:
                        replies[i] = await self._aread(conn)
            finally:
                await pool.release(conn)
        return replies[0], self._decision(mode, requests, replies[1])

    @contextlib.contextmanager
    def _wrapped(self) -> Iterator[None]:
        """Backend trouble as StorageError (the caller's own ValueError and StorageError pass as they are)."""
        try:
            yield
        except (StorageError, ValueError):
            raise
        except BACKEND_ERRORS as err:
            raise backend_error(self._name, err) from err
        except Exception as err:
            raise StorageError(f"{self._name}: {type(err).__name__}: {err}") from err

    def _source(self, first: tuple[str | bytes, str, Sequence[bytes], Sequence[Any]], i: int) -> str | bytes:
        return first[0] if i == 0 else _wire.source(self._sha)

    @staticmethod
    def _read(conn: Any) -> Any:
        """One reply; an error reply is returned, not raised (the connection stays in step)."""
        try:
            return conn.read_response()
        except ResponseError as err:
            return err

    @staticmethod
    async def _aread(conn: Any) -> Any:
        try:
            return await conn.read_response()
        except ResponseError as err:
            return err

    def _decision(
        self, mode: str, requests: Sequence[BucketRequest], reply: Any
    ) -> MultiResult | StorageError:
        if isinstance(reply, Exception):
            if is_data_error(reply):
                return StoreReplyError(f"{self._name}: {reply}")
            return StorageError(f"{self._name}: {type(reply).__name__}: {reply}")
        try:
            return _wire.parse_many(mode, requests, reply)
        except (TypeError, ValueError) as err:
            return StorageError(f"{self._name}: unexpected reply: {err}")

    # -- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client's connections (async clients are closed by ``aclose`` in their loop)."""
        with self._lock:
            entry, self._client = self._client, None
        if entry is not None:
            try:
                entry.client.close()
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
