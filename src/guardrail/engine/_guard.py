"""``Guard`` and ``AsyncGuard``: the engine's library API, tying features, store, linkage, policy and the
token-bucket limiter together.

Hot path per request: extract and reduce the prompt (no state), one store call (``observe``), at most one
limiter call (only when a cluster bucket or an account quota applies). Re-clustering runs off the request
path: in a background thread (``Guard``) or task (``AsyncGuard``) every ``recluster_interval`` seconds for
live traffic, and inline on the log's own clock for replayed requests (``RequestFacts.ts`` set), so that an
offline replay is deterministic and agrees with ``guardrail analyze``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from guardrail._hashing import warn_default_secret
from guardrail.limiter import (
    BucketRequest,
    CircuitBreaker,
    Limiter,
    MultiResult,
    StorageError,
    StoreReplyError,
)
from guardrail.limiter._gcra import CONSUME
from guardrail.limiter._limiter import report_reply_error
from guardrail.limiter._result import FAIL_CLOSED, BucketResult

from ._core import Core, Prepared
from ._linkage import Cluster, LinkageSettings
from ._memory import MemoryEngineStore
from ._policy import Policy
from ._stores import engine_store_from_uri
from ._types import Action, Decision, Event, RequestFacts
from .store import AccountProfile, ClusterTable, ClusterVerdict, EngineStore, Observed, StoreSettings

__all__ = ["STORE_DOWN_REASON", "STORE_ERROR_REASON", "AsyncGuard", "Guard", "open_store", "settle_needed"]

logger = logging.getLogger("guardrail.engine")

#: The (server-side) reason on a decision taken while the engine store was unreachable.
STORE_DOWN_REASON = "engine store unavailable: limits only"
#: The reason on a decision whose account state the engine store could not read (a corrupted key).
STORE_ERROR_REASON = "engine store error: limits only"
#: At most one warning about an unreachable engine store per this many seconds.
_STORE_WARN_EVERY = 10.0


def open_store(
    storage: str | EngineStore, settings: StoreSettings | None = None, **options: Any
) -> EngineStore:
    """``"memory://"``, a Redis URI (``redis://host:6379`` ...), or an :class:`EngineStore` instance."""
    if not isinstance(storage, str):
        if not isinstance(storage, EngineStore):
            raise TypeError(f"storage must be a URI or an EngineStore, got {type(storage).__name__}")
        return storage
    return engine_store_from_uri(storage, settings=settings, **options)


def _extra_list(extra: Sequence[BucketRequest]) -> list[BucketRequest]:
    """The caller's buckets, checked (one ``BucketRequest`` is taken for a sequence of one)."""
    if not extra:
        return []
    if isinstance(extra, BucketRequest):
        extra = (extra,)
    for b in extra:
        if not isinstance(b, BucketRequest):
            raise TypeError(f"extra must hold BucketRequest objects, got {type(b).__name__}")
    return list(extra)


def _with_extra(
    charged: list[BucketRequest], extra: list[BucketRequest], action: Action
) -> list[BucketRequest]:
    """The engine's buckets followed by the caller's (none for a blocked request: it is refused anyway)."""
    if not extra or action is Action.BLOCK:
        return charged
    return [*charged, *extra]


def _negated(requests: Sequence[BucketRequest]) -> list[BucketRequest]:
    return [BucketRequest(r.key, r.limit, -r.cost) for r in requests]


def _blind(prepared: Prepared) -> Observed:
    """What a request is taken to be when the engine store cannot be asked: no parts, no cluster."""
    obs = prepared.obs
    profile = AccountProfile(account=obs.account, first_seen=obs.ts, last_seen=obs.ts)
    return Observed((), profile, None, None, None, -1, 0)


def _early_stands(action: Action, asked: list[BucketRequest], ahead: list[BucketRequest]) -> bool:
    """Whether the buckets charged with ``observe`` are exactly the decision's (no cluster bucket joined
    them and the request is not blocked): then that answer is the decision's, as one call would give."""
    return action is not Action.BLOCK and len(asked) == len(ahead)


class _Base:
    def __init__(
        self,
        storage: str | EngineStore = "memory://",
        *,
        limiter: Limiter | str | None = None,
        policy: Policy | None = None,
        linkage: LinkageSettings | None = None,
        settings: StoreSettings | None = None,
        secret: bytes | None = None,
        on_event: Callable[[Event], None] | None = None,
        recluster_interval: float = 5.0,
        keep_samples: bool = False,
        clock: Callable[[], float] = time.time,
        namespace: str = "gr",
    ) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"namespace must be a non-empty string, got {namespace!r}")
        if not recluster_interval > 0:
            raise ValueError(f"recluster_interval must be > 0, got {recluster_interval!r}")
        self.store = open_store(storage, settings)
        if limiter is None:
            limiter = (
                storage if isinstance(storage, str) and not storage.startswith("memory") else "memory://"
            )
        # A limiter built here from a URI is ours to close; one handed in belongs to the caller.
        self._owns_limiter = isinstance(limiter, str)
        shared = getattr(self.store, "limiter_store", None) if isinstance(storage, str) else None
        if isinstance(limiter, str) and limiter == storage and shared is not None:
            # The engine's Redis store and the limiter on one server: one client and pool for both, so
            # that ``observe`` and the buckets known before it go in one round trip (``check_prepared``).
            self.limiter = Limiter(shared)
        else:
            self.limiter = Limiter(limiter) if isinstance(limiter, str) else limiter
        shares = getattr(self.store, "shares", None)
        self._together = bool(shares is not None and shares(self.limiter.store))
        self.core = Core(
            policy=policy or Policy(),
            linkage=linkage or LinkageSettings(),
            secret=secret,
            on_event=on_event,
            keep_samples=keep_samples,
            clock=clock,
            namespace=namespace,
        )
        if not (isinstance(self.store, MemoryEngineStore) and getattr(self.limiter, "local", False) is True):
            # Hashes under the secret leave this process: whoever reads the store could reverse ones
            # made with the public default by hashing guessed keys. Said here, so every way of building
            # a guard (the middleware, a wrapped or instrumented guard, the library API) says it.
            warn_default_secret(self.core.secret)
        self.recluster_interval = float(recluster_interval)
        self._owner_of: tuple[int, str] = (os.getpid(), uuid.uuid4().hex)
        # Engine-store outage (live traffic only): a breaker as the limiter's (three strikes, then backoff
        # from 0.5 s doubling to 30 s with jitter, one probe at a time). A call reports its result with the
        # breaker generation it began in, so the requests in flight during one stall open it only once.
        self._store_breaker = CircuitBreaker()
        self._store_warned = -_STORE_WARN_EVERY

    def _owner(self) -> str:
        """This process's name for the re-clustering lock: drawn again in a forked child (a guard built
        before the fork, as under ``gunicorn --preload``, would otherwise give every worker the
        master's name, and each would take the lock as its holder)."""
        pid = os.getpid()
        if self._owner_of[0] != pid:
            self._owner_of = (pid, uuid.uuid4().hex)
        return self._owner_of[1]

    def _store_up(self, prepared: Prepared) -> int:
        """The breaker generation to report this request's store call with, or -1: skip the store (outage
        backoff). A replay always calls it: it must not degrade."""
        breaker = self._store_breaker
        generation = breaker.generation
        if prepared.offline or breaker.allow():
            return generation
        return -1

    def _store_failed(
        self, prepared: Prepared, exc: StorageError, generation: int, *, shared: bool = False
    ) -> Observed:
        """A live request whose engine store is unreachable: decided on the limiter alone, whose failure
        policy then applies to its buckets (``local``: a share of each limit in process; ``closed``: refuse;
        ``open``: allow). Repeated failures open the store's breaker, so an outage costs no timeout per
        request. Nothing is learnt from such requests; detection resumes with the store."""
        breaker = self._store_breaker
        current = generation == breaker.generation  # else one of a stall's calls already counted
        if shared and current:  # the round trip carried the limiter's buckets: its breaker counts it too
            self.limiter.direct_failed()
        if prepared.offline:
            raise exc
        if current:
            breaker.failure(generation)
            if breaker.generation != generation:  # opened, or reopened after a failed probe
                now = time.monotonic()
                if now - self._store_warned >= _STORE_WARN_EVERY:
                    self._store_warned = now
                    logger.warning(
                        "guardrail engine store unavailable (%s); deciding on limits only, retrying in %.1fs",
                        exc,
                        breaker.retry_in(),
                    )
        return _blind(prepared)

    def _observe_failed(
        self,
        prepared: Prepared,
        exc: StorageError,
        generation: int,
        shared: tuple[list[BucketRequest], float | None] | None = None,
    ) -> tuple[Observed, bool, MultiResult | None]:
        """``(observed, blind, early)`` for a live request whose ``observe`` failed. An outage: blind (see
        ``_store_failed``). A data error (StoreReplyError: a corrupted key, the store answering): nothing
        learnt, the limiter decides as usual (not its failure policy: the store is up); ``shared`` (the
        buckets and clock of a shared round trip) gives ``early``, that round trip's limiter answer. A
        replay raises either."""
        if not isinstance(exc, StoreReplyError):
            return self._store_failed(prepared, exc, generation, shared=shared is not None), True, None
        if prepared.offline:
            raise exc
        self._store_ok(generation)
        report_reply_error(exc)
        early = None
        if shared is not None and exc.decision is not None:
            early = self.limiter.direct_outcome(exc.decision, CONSUME, *shared)
        return _blind(prepared), False, early

    def _store_ok(self, generation: int) -> None:
        breaker = self._store_breaker
        if breaker.failures or breaker.strikes:
            was_open = breaker.failures > 0
            breaker.success(generation)
            if was_open and breaker.failures == 0:
                logger.warning("guardrail engine store reachable again")

    def _known(
        self,
        early: MultiResult | None,
        action: Action,
        asked: list[BucketRequest],
        ahead: list[BucketRequest],
        blind: bool,
        direct_failed: bool,
        now: float | None,
    ) -> tuple[bool, MultiResult | None]:
        """``(True, answer)`` when the limiter answer needs no further call to the store: the early one
        stands, the request is refused blind (nothing charged), or the shared round trip just failed (the
        failure policy answers at once); else ``(False, None)``."""
        if early is not None and _early_stands(action, asked, ahead):
            return True, early
        if blind and self._refuses_blind(action):
            return True, None  # refused by ``_closed``
        if direct_failed:
            return True, self.limiter.fallback(CONSUME, asked, now) if asked else None
        return False, None

    def _refuses_blind(self, action: Action) -> bool:
        """Whether a request decided without the engine store is refused whatever its buckets say."""
        return self.limiter.failure == "closed" and action is not Action.BLOCK

    def _closed(
        self,
        blind: bool,
        action: Action,
        asked: list[BucketRequest],
        charged: list[BucketRequest],
        result: MultiResult | None,
    ) -> tuple[Action, MultiResult | None, int]:
        """The action, limiter answer and caller-bucket count to decide with. Under the ``closed`` failure
        policy a live request is refused while the engine store is down (whatever its buckets said:
        protection first; none of them is charged), retrying when the store is next tried."""
        if not blind or not self._refuses_blind(action):
            return action, result, len(asked) - len(charged)
        retry = max(0.5, self._store_breaker.retry_in())
        closed = BucketResult("engine-store", False, 0.0, retry, retry, 1.0, FAIL_CLOSED)
        return Action.THROTTLE, MultiResult(False, (closed,)), 0

    def _ahead(
        self, prepared: Prepared, extra: Sequence[BucketRequest]
    ) -> tuple[list[BucketRequest], float | None, list[BucketRequest], bool, int]:
        """The caller's buckets, the decision's clock, the buckets known before ``observe``, whether they
        go in its round trip, and the engine store's epoch (-1: the store is skipped, see ``_store_up``)."""
        extras = _extra_list(extra)
        now = prepared.obs.ts if prepared.offline else None
        ahead = [*self.core.own_buckets(prepared), *extras]
        epoch = self._store_up(prepared)
        direct = epoch >= 0 and bool(ahead) and self._together and self.limiter.direct()
        return extras, now, ahead, direct, epoch

    def _plan(
        self,
        prepared: Prepared,
        observed: Observed,
        extras: list[BucketRequest],
        blind: bool = False,
        unread: bool = False,
    ) -> tuple[ClusterVerdict | None, Action, list[str], list[BucketRequest], list[BucketRequest]]:
        """After ``observe``: the governing cluster, action, reasons, the engine's buckets and all asked
        (``blind``: the engine store could not be asked; ``unread``: it could not read the account)."""
        core = self.core
        core.remember_sample(prepared, observed)
        verdict, action, reasons = core.buckets(observed)
        if blind:
            reasons.append(STORE_DOWN_REASON)
        if unread:
            reasons.append(STORE_ERROR_REASON)
        charged = [] if action is Action.BLOCK else core.bucket_requests(prepared, verdict, action)
        return verdict, action, reasons, charged, _with_extra(charged, extras, action)

    @property
    def policy(self) -> Policy:
        return self.core.policy

    @property
    def clusters(self) -> list[Cluster]:
        """The clusters of this guard's last re-clustering (scored, with evidence), highest score first."""
        return list(self.core.last_clusters)

    def account_id(self, account: str) -> str:
        """The keyed hash under which ``account`` is stored and reported."""
        return self.core.account_id(account)


class Guard(_Base):
    """Synchronous engine: ``Guard(storage="memory://")`` works with defaults and no network.

    ``check(facts) -> Decision`` on every request; ``settle(decision, output_tokens)`` once the response's
    real usage is known; ``recluster()`` forces a re-clustering now; ``close()`` stops the background thread.
    """

    def __init__(self, storage: str | EngineStore = "memory://", **kwargs: Any) -> None:
        super().__init__(storage, **kwargs)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._recluster_lock = threading.Lock()

    def check(self, facts: RequestFacts, *, extra: Sequence[BucketRequest] = ()) -> Decision:
        """Observe one request and decide on it.

        ``extra``: the caller's own buckets (an adapter's per-account request quota, say), charged in the
        same limiter call as the engine's, all or none, so a quota costs no extra round trip. They are
        skipped for a blocked request, refused ones throttle it (reason ``EXTRA_REASON``), and they are not
        part of ``settle`` (which corrects the engine's token-weighted costs only).
        """
        return self.check_prepared(self.core.prepare(facts), extra=extra)

    def check_prepared(self, prepared: Prepared, *, extra: Sequence[BucketRequest] = ()) -> Decision:
        """``check`` after the stateless first half (``core.prepare``), which a replay may run in worker
        processes (``guardrail analyze --jobs``)."""
        core = self.core
        extras, now, ahead, direct, epoch = self._ahead(prepared, extra)
        early: MultiResult | None = None
        limiter = self.limiter
        blind, direct_failed, unread = epoch < 0, False, False
        if blind:
            observed = _blind(prepared)
        elif direct:
            # One round trip: observe, then the buckets known before it (the limiter shares its Redis).
            try:
                observed, outcome = self.store.observe_deciding(  # type: ignore[attr-defined]
                    prepared.obs, CONSUME, ahead, now
                )
            except StorageError as exc:
                observed, blind, early = self._observe_failed(prepared, exc, epoch, (ahead, now))
                direct_failed, unread = blind, not blind
            else:
                early = limiter.direct_outcome(outcome, CONSUME, ahead, now)
                self._store_ok(epoch)
        else:
            try:
                observed = self.store.observe(prepared.obs)
            except StorageError as exc:
                observed, blind, _ = self._observe_failed(prepared, exc, epoch)
                unread = not blind
            else:
                self._store_ok(epoch)
        verdict, action, reasons, charged, asked = self._plan(prepared, observed, extras, blind, unread)
        known, result = self._known(early, action, asked, ahead, blind, direct_failed, now)
        if not known:
            if early is not None and early.allowed:
                # A cluster bucket joined (or the request is blocked): give the early charge back, then
                # decide all of the request's buckets together, all or none, as a single call would.
                limiter.settle(_negated(ahead), now=now)
            result = limiter.consume_many(asked, now=now) if asked else None
        action, result, extra_n = self._closed(blind, action, asked, charged, result)
        decision = core.decide(prepared, observed, verdict, action, reasons, charged, result, extra_n)
        self._schedule(prepared, observed.accounts)
        return decision

    def settle(self, decision: Decision, output_tokens: int) -> None:
        """Debit (or refund) the difference between the real output tokens and the amount assumed."""
        requests, ts = self.core.settle_requests(decision, output_tokens)
        if requests:
            self.limiter.settle(requests, now=ts)

    def recluster(self, now: float | None = None) -> ClusterTable:
        """Re-cluster every profile now and publish the result (also what the background thread runs)."""
        with self._recluster_lock:
            ts = self.core.clock() if now is None else now
            store = self.store
            profiles = (
                store.profiles_live()
                if isinstance(store, MemoryEngineStore) and now is not None
                else (store.profiles())
            )
            table = self.core.build_table(profiles, ts, store.table().version, store.templates)
            store.publish(table)
            return table

    def _schedule(self, prepared: Prepared, accounts: int) -> None:
        if prepared.offline:
            if self.core.due(prepared.obs.ts, accounts):
                self.recluster(prepared.obs.ts)
        elif self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._recluster_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name="guardrail-recluster", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        # Waits at least twice the last re-clustering's duration, so that with a very large state the
        # background work never takes more than about a third of a core.
        wait = self.recluster_interval
        while not self._stop.wait(wait):
            started = time.monotonic()
            with contextlib.suppress(Exception):
                if self.store.try_lock(self._owner(), max(wait, self.recluster_interval) * 3):
                    self._recluster_live()
            wait = max(self.recluster_interval, 2.0 * (time.monotonic() - started))

    def _recluster_live(self) -> None:
        with self._recluster_lock:
            table = self.core.build_table(
                self.store.profiles(), self.core.clock(), self.store.table().version
            )
            self.store.publish(table)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5.0)
        self.store.close()
        if self._owns_limiter:
            self.limiter.close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGuard(_Base):
    """Asyncio twin of :class:`Guard`: the same names, awaited; re-clustering in a background task (the
    CPU-bound part in a worker thread so the event loop never stalls)."""

    def __init__(self, storage: str | EngineStore = "memory://", **kwargs: Any) -> None:
        super().__init__(storage, **kwargs)
        # Re-clustering task and lock per event loop: a task lives and dies with its loop, and an
        # asyncio.Lock binds to the loop it is first awaited in. A guard used from a second loop (or after
        # its first loop closed, as with repeated ``asyncio.run``) starts a task there; the store's lock
        # keeps two loops of one process from re-clustering in the same interval.
        # (Plain dicts pruned of closed loops: a task refers to its loop, so weak keys would never drop.)
        self._tasks: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        self._alocks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self._task_loop: asyncio.AbstractEventLoop | None = None

    async def check(self, facts: RequestFacts, *, extra: Sequence[BucketRequest] = ()) -> Decision:
        """See :meth:`Guard.check` (``extra`` included). The CPU-bound first half runs inline: it is
        tens of microseconds, less than handing it to a thread would cost; every I/O is awaited."""
        core = self.core
        prepared = core.prepare(facts)
        extras, now, ahead, direct, epoch = self._ahead(prepared, extra)
        early: MultiResult | None = None
        limiter = self.limiter
        blind, direct_failed, unread = epoch < 0, False, False
        if blind:
            observed = _blind(prepared)
        elif direct:
            try:
                observed, outcome = await self.store.aobserve_deciding(  # type: ignore[attr-defined]
                    prepared.obs, CONSUME, ahead, now
                )
            except StorageError as exc:
                observed, blind, early = self._observe_failed(prepared, exc, epoch, (ahead, now))
                direct_failed, unread = blind, not blind
            else:
                early = limiter.direct_outcome(outcome, CONSUME, ahead, now)
                self._store_ok(epoch)
        else:
            try:
                observed = await self.store.aobserve(prepared.obs)
            except StorageError as exc:
                observed, blind, _ = self._observe_failed(prepared, exc, epoch)
                unread = not blind
            else:
                self._store_ok(epoch)
        verdict, action, reasons, charged, asked = self._plan(prepared, observed, extras, blind, unread)
        known, result = self._known(early, action, asked, ahead, blind, direct_failed, now)
        if not known:
            if early is not None and early.allowed:
                await limiter.asettle(_negated(ahead), now=now)
            result = await limiter.aconsume_many(asked, now=now) if asked else None
        action, result, extra_n = self._closed(blind, action, asked, charged, result)
        decision = core.decide(prepared, observed, verdict, action, reasons, charged, result, extra_n)
        if prepared.offline:
            if core.due(prepared.obs.ts, observed.accounts):
                await self.recluster(prepared.obs.ts)
        else:
            loop = asyncio.get_running_loop()
            task = self._task
            if loop is not self._task_loop or task is None or task.done():
                self._ensure_task(loop)
        return decision

    def _ensure_task(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start this loop's re-clustering task unless it runs (off the fast path: once per loop)."""
        for old in [old for old in self._tasks if old.is_closed()]:
            del self._tasks[old]
            self._alocks.pop(old, None)
        task = self._tasks.get(loop)
        if task is None or task.done():
            task = self._tasks[loop] = loop.create_task(self._loop())
        self._task, self._task_loop = task, loop

    async def settle(self, decision: Decision, output_tokens: int) -> None:
        requests, ts = self.core.settle_requests(decision, output_tokens)
        if requests:
            await self.limiter.asettle(requests, now=ts)

    async def recluster(self, now: float | None = None) -> ClusterTable:
        loop = asyncio.get_running_loop()
        lock = self._alocks.get(loop)
        if lock is None:
            lock = self._alocks[loop] = asyncio.Lock()
        async with lock:
            ts = self.core.clock() if now is None else now
            profiles = await self.store.aprofiles()
            base = (await self.store.atable()).version
            clusters_parts = await asyncio.to_thread(self._candidate_parts, profiles)
            known = await self.store.atemplates(clusters_parts)
            table = await asyncio.to_thread(self.core.build_table, profiles, ts, base, lambda ps: known)
            await self.store.apublish(table)
            return table

    def _candidate_parts(self, profiles: list[AccountProfile]) -> list[int]:
        """Every part dominant for some account (the superset the table's characteristic parts come from)."""
        share = self.core.linkage.dominant_share
        return sorted(
            {part for p in profiles for part, n in p.parts.items() if n >= share * max(1, p.requests)}
        )

    async def _loop(self) -> None:
        wait = self.recluster_interval
        while True:
            await asyncio.sleep(wait)
            started = time.monotonic()
            with contextlib.suppress(Exception):
                if await self.store.atry_lock(self._owner(), max(wait, self.recluster_interval) * 3):
                    await self.recluster()
            wait = max(self.recluster_interval, 2.0 * (time.monotonic() - started))

    async def aclose(self) -> None:
        """Stop every re-clustering task (this loop's awaited; another live loop's cancelled there)."""
        current = asyncio.get_running_loop()
        for loop, task in list(self._tasks.items()):
            if loop is current:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            elif not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)
        self._tasks.clear()
        self._task = self._task_loop = None
        await self.store.aclose()
        if self._owns_limiter:
            await self.limiter.aclose()

    async def __aenter__(self) -> AsyncGuard:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def settle_needed(guard: object, decision: object) -> bool:
    """Must an adapter read the response's usage and settle ``decision`` with ``guard``? Always for a guard
    of the caller's (any other object with ``settle``, or a subclass overriding it: it may meter every
    response); for the engine's own only when the decision charged a bucket (``Decision.settles``)."""
    if getattr(type(guard), "settle", None) not in (Guard.settle, AsyncGuard.settle):
        return True
    return bool(getattr(decision, "settles", True))
