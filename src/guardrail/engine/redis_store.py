"""``redis://`` (and ``rediss``, ``redis+unix``, ``redis+cluster``, ``redis+sentinel``, ``valkey...``): the
engine's state in Redis, so every worker, every node and every ``Guard`` on one Redis sees one picture.

Same semantics as :class:`~guardrail.engine._memory.MemoryEngineStore`, request for request (the contract
suite and a differential test run both). How the Redis side gets there:

* ``observe`` is one EVALSHA of ``lua/observe.lua`` (steps 1-5 of the contract, atomic), with compact
  arguments and reply (a few strings rather than dozens of elements: redis-py's pure-Python protocol
  handling costs per element). Lua in Redis has only doubles, so the sketch cells of each segment are
  computed here with the memory sketch's own :func:`~guardrail.engine._sketch.cell_indexes` and passed
  in; floats travel as ``%.17g`` / ``repr`` strings, which round-trip exactly. Only ``gap_sum`` and
  ``gap_sq`` may differ in the last bits (Lua has no ``log2``; it divides natural logarithms), and
  template ``accounts`` come from ``PFCOUNT`` (a distinct count with its own error, as the contract allows).
* Sketch halving is lazy: a cell is one BITFIELD ``u53`` holding ``epoch * scale + value`` and reads as
  ``value >> (epoch now - epoch written)``, which equals halving every counter at each epoch, without a
  pass over megabytes inside Redis. No counter reaches ``scale = 4 * sketch_width`` (it gains at most 1 a
  request and halves every ``sketch_width`` insertions); the epoch keeps the remaining bits, modulo at
  least 2**25: a cell would read wrong only after 2**25 halvings without one write to it (2**45
  insertions at the default width, years of traffic).
* Least-recently-seen order is the order of ``observe`` calls (a counter, not the timestamps), as the
  memory store's ``OrderedDict`` does; space-saving ties go to the oldest entry, as the memory store's
  insertion-ordered ``dict`` does.
* ``publish`` writes the new table into staging hashes, then one script swaps them in if the version is
  newer; ``table()`` costs one ``GET`` while the version has not changed.

All keys share the hash tag ``{<prefix>}``, so every script is atomic on Redis Cluster too. Connections
(URI grammar, short hot-path timeouts, no client retries, one async client per event loop) are the
limiter's (:func:`guardrail.limiter.storage_from_uri`); backend errors are raised as
:class:`guardrail.limiter.StorageError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import inspect
import json
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from redis.exceptions import NoScriptError

from guardrail.limiter import (
    BucketRequest,
    MultiResult,
    RedisStore,
    StorageError,
    StoreReplyError,
    storage_from_uri,
)
from guardrail.limiter._limiter import report_reply_error
from guardrail.limiter._redis import BACKEND_ERRORS, backend_error
from guardrail.limiter._uri import DEFAULT_TIMEOUT, display_uri

from ._sketch import cell_indexes, distinct_sorted
from .store import (
    HOURS,
    TOP_PARTS,
    TOP_PREFIXES,
    AccountProfile,
    ClusterTable,
    ClusterVerdict,
    Observation,
    Observed,
    StoreSettings,
    TemplateStats,
)

__all__ = ["RedisEngineStore"]

#: Seconds. Off the hot path (profiles, publish, table reads, clear) replies can be megabytes.
BULK_TIMEOUT = 10.0
#: Staged tables of a publisher that died half-way expire after this many milliseconds.
STAGE_TTL_MS = 600_000
_BATCH = 500
_MAX_SEGMENT = 1 << 64
_EMPTY = ClusterTable(version=0, clusters={}, assignment={}, parts={})

_SCRIPTS: dict[str, tuple[bytes, str]] = {}


def _script(name: str) -> tuple[bytes, str]:
    """A script's source and SHA1, read once from package data (``lua/<name>.lua``)."""
    found = _SCRIPTS.get(name)
    if found is None:
        source = importlib.resources.files(__package__).joinpath(f"lua/{name}.lua").read_bytes()
        found = _SCRIPTS[name] = (source, hashlib.sha1(source).hexdigest())
    return found


def _b(text: str) -> bytes:
    """Identifiers as bytes, so any ``str`` (even one with lone surrogates) round-trips."""
    return text.encode("utf-8", "surrogatepass")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _hex(part: int) -> bytes:
    return b"%016x" % part


def _fmt(x: float) -> bytes:
    return repr(float(x)).encode()


def _verdict_json(v: ClusterVerdict) -> bytes:
    try:
        return json.dumps(
            {
                "cluster": v.cluster,
                "score": v.score,
                "action": v.action,
                "size": v.size,
                "summary": v.summary,
            },
            separators=(",", ":"),
            allow_nan=True,
        ).encode()
    except (TypeError, ValueError) as err:
        raise ValueError(f"cluster {v.cluster!r}: summary must be JSON-serialisable ({err})") from err


def _verdict(data: bytes) -> ClusterVerdict:
    d = json.loads(data)
    return ClusterVerdict(
        cluster=d["cluster"], score=d["score"], action=d["action"], size=d["size"], summary=d["summary"]
    )


def _pairs(flat: Sequence[bytes]) -> Iterator[tuple[bytes, bytes]]:
    it = iter(flat)
    return zip(it, it, strict=True)


def _profile(account: str, d: Mapping[bytes, bytes]) -> AccountProfile:
    """An :class:`AccountProfile` from the HGETALL of its hash (see ``lua/observe.lua`` for the fields)."""
    hours = [0] * HOURS
    parts: list[tuple[int, int, int]] = []
    prefixes: list[tuple[int, str, int]] = []
    for key, value in d.items():
        if key[:1] == b"h" and key[1:].isdigit():
            hours[int(key[1:])] = int(value)
        elif key.startswith(b"part:"):
            count, seq = value.split(b":")
            parts.append((int(seq), int(key[5:], 16), int(count)))
        elif key.startswith(b"pfx:"):
            count, seq = value.split(b":")
            prefixes.append((int(seq), _s(key[4:]), int(count)))
    parts.sort()
    prefixes.sort()
    return AccountProfile(
        account=account,
        first_seen=float(d[b"first_seen"]),
        last_seen=float(d[b"last_seen"]),
        requests=int(d[b"requests"]),
        tokens=int(d.get(b"tokens", 0)),
        templated=int(d.get(b"templated", 0)),
        conversations=int(d.get(b"conversations", 0)),
        elicitation_sum=float(d.get(b"elicitation_sum", 0.0)),
        elicitation_n=int(d.get(b"elicitation_n", 0)),
        gap_n=int(d.get(b"gap_n", 0)),
        gap_sum=float(d.get(b"gap_sum", 0.0)),
        gap_sq=float(d.get(b"gap_sq", 0.0)),
        hours=hours,
        parts={part: count for _, part, count in parts},
        prefixes={prefix: count for _, prefix, count in prefixes},
    )


def _observed_profile(account: str, packed: bytes, ranges: Sequence[bytes]) -> AccountProfile:
    """The profile as ``lua/observe.lua`` returns it: one space-separated string (scalars in the order
    below, 24 hours, then parts as ``hex:count:seq``) and the address ranges as a flat list."""
    f = packed.split(b" ")
    parts = sorted((int(q), int(h, 16), int(c)) for h, c, q in (x.split(b":") for x in f[11 + HOURS :]))
    prefixes = sorted(
        (int(q), _s(name), int(c)) for name, (c, q) in ((n, v.split(b":")) for n, v in _pairs(ranges))
    )
    return AccountProfile(
        account=account,
        first_seen=float(f[9]),
        last_seen=float(f[10]),
        requests=int(f[0]),
        tokens=int(f[1]),
        templated=int(f[2]),
        conversations=int(f[3]),
        elicitation_sum=float(f[4]),
        elicitation_n=int(f[5]),
        gap_n=int(f[6]),
        gap_sum=float(f[7]),
        gap_sq=float(f[8]),
        hours=[int(x) for x in f[11 : 11 + HOURS]],
        parts={part: count for _, part, count in parts},
        prefixes={prefix: count for _, prefix, count in prefixes},
    )


def _batches(items: list[bytes]) -> Iterator[list[bytes]]:
    for i in range(0, len(items), _BATCH):
        yield items[i : i + _BATCH]


def _check_settings(s: StoreSettings) -> None:
    bits = s.sketch_width.bit_length() - 1
    if bits * s.sketch_depth > 64:
        raise ValueError(
            f"sketch_width 2**{bits} x sketch_depth {s.sketch_depth} needs more than the 64 bits"
            " of a segment hash"
        )
    if s.sketch_width * s.sketch_depth > 1 << 26:
        raise ValueError("the Redis sketch holds at most 2**26 cells (sketch_width x sketch_depth)")


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisEngineStore:
    """The engine store on Redis (standalone, Sentinel-managed or Cluster); see the module docstring.

    ``uri``: any Redis URI :func:`guardrail.limiter.storage_from_uri` accepts. ``prefix``: key namespace
    (keys are ``{<prefix>}:...``); two stores with the same URI and prefix share their state. Extra keyword
    options go to the redis-py client (``socket_timeout``, ``password``, ``ssl_ca_certs``...). Nothing
    connects here: a Redis that is down surfaces as a StorageError on first use.
    """

    def __init__(
        self,
        uri: str,
        *,
        settings: StoreSettings | None = None,
        prefix: str = "guardrail",
        **options: Any,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a non-empty string without braces, got {prefix!r}")
        if settings is not None and not isinstance(settings, StoreSettings):
            raise TypeError(f"settings must be a StoreSettings, got {type(settings).__name__}")
        self.settings = settings or StoreSettings()
        _check_settings(self.settings)
        if not isinstance(uri, str) or uri.split("://", 1)[0].lower() == "memory":
            raise ValueError(
                f"RedisEngineStore needs a Redis URI (redis://host:port...), got {display_uri(uri)!r}"
            )
        hot = storage_from_uri(uri, **options)
        timeout = options.get("socket_timeout", DEFAULT_TIMEOUT)
        bulk_timeout = None if timeout is None else max(BULK_TIMEOUT, float(timeout))
        bulk = storage_from_uri(uri, **{**options, "socket_timeout": bulk_timeout})
        if not isinstance(hot, RedisStore) or not isinstance(bulk, RedisStore):
            raise ValueError(f"RedisEngineStore needs a Redis URI, got {display_uri(uri)!r}")
        self._hot: RedisStore = hot
        self._bulk: RedisStore = bulk
        self._name = f"engine store {uri.split('://', 1)[0]}://, prefix {prefix!r}"
        self.prefix = prefix
        kp = self._kp = _b("{" + prefix + "}:")
        self._k_ver = kp + b"clu:ver"
        self._k_clu = (kp + b"clu:acct", kp + b"clu:part", kp + b"clu:info")
        self._k_accts = kp + b"accts"
        self._k_lock = kp + b"lock"
        self._k_head = (kp + b"seg", kp + b"seg:n", kp + b"seg:e", kp + b"tick", self._k_accts)
        self._k_tail = (kp + b"tpls", self._k_ver, *self._k_clu)
        s = self.settings
        self._bits = s.sketch_width.bit_length() - 1
        # a counter never exceeds 2 * sketch_width (at most +1 a request, halved every sketch_width
        # insertions), so value < scale = 4 * sketch_width, and the epoch gets the rest of 53 bits
        self._scale = (b"%d" % (1 << (self._bits + 2)), b"%d" % (1 << (51 - self._bits)))
        self._fixed = tuple(
            str(x).encode()
            for x in (
                s.part_min_count,
                s.max_parts,
                s.max_accounts,
                s.max_templates,
                s.sketch_width,
                s.sketch_depth,
                TOP_PARTS,
                TOP_PREFIXES,
            )
        )
        self._table: ClusterTable | None = None
        self._verdicts: dict[bytes, ClusterVerdict] = {}
        for name in ("observe", "publish", "table", "lock", "templates"):
            _script(name)

    def __repr__(self) -> str:
        return f"RedisEngineStore({self._name}, {self.settings!r})"

    # -- plumbing -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The one place backend exceptions become StorageError (also around awaits: it wraps a block).

        Blocks under it hold client calls only (arguments are built and replies parsed outside), so
        anything raised in them is store trouble, including the odd non-Redis exception a client raises
        while a connection is torn down under a timeout (as the limiter's store also treats it).
        """
        try:
            yield
        except StorageError:
            raise
        except BACKEND_ERRORS as err:
            raise backend_error(self._name, err) from err
        except Exception as err:
            raise StorageError(f"{self._name}: {type(err).__name__}: {err}") from err

    @staticmethod
    def _evalsha(client: Any, name: str, keys: Sequence[bytes], args: Sequence[bytes | str | int]) -> Any:
        """One EVALSHA; on NOSCRIPT (first use, restart, SCRIPT FLUSH, failover) load once and retry."""
        source, sha = _script(name)
        try:
            return client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(source)
            return client.execute_command("EVALSHA", sha, len(keys), *keys, *args)

    @staticmethod
    async def _aevalsha(
        client: Any, name: str, keys: Sequence[bytes], args: Sequence[bytes | str | int]
    ) -> Any:
        source, sha = _script(name)
        try:
            return await client.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(source)
            return await client.execute_command("EVALSHA", sha, len(keys), *keys, *args)

    def _sync(self, bulk: bool = False) -> Any:
        return (self._bulk if bulk else self._hot).client()

    async def _async(self, bulk: bool = False) -> Any:
        """This event loop's client, from the limiter's store (one per loop; a cluster client is
        initialised once, under a lock, before its first command)."""
        client = (self._bulk if bulk else self._hot)._async()
        if inspect.isawaitable(client):
            client = await client
        return client

    def _cluster_of(self, data: bytes | None) -> ClusterVerdict | None:
        if data is None:
            return None
        verdict = self._verdicts.get(data)
        if verdict is None:
            if len(self._verdicts) >= 4096:
                self._verdicts.clear()
            verdict = self._verdicts[data] = _verdict(data)
        return verdict

    # -- observe --------------------------------------------------------------------------------------

    def _observe_call(self, obs: Observation) -> tuple[list[bytes], list[bytes | str | int], str]:
        if not isinstance(obs, Observation):
            raise TypeError(f"observe needs an Observation, got {type(obs).__name__}")
        ts = obs.ts
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
            raise ValueError(f"Observation.ts must be a finite number, got {ts!r}")
        s = self.settings
        segs = distinct_sorted(obs.segments, s.max_segments)
        if segs and (segs[0] < 0 or segs[-1] >= _MAX_SEGMENT):
            raise ValueError("Observation.segments must be unsigned 64-bit hashes")
        account = obs.account
        elicitation = b""
        if obs.elicitation is not None:
            elicitation = _fmt(min(1.0, max(0.0, obs.elicitation)))
        prefix = obs.prefix
        bits, depth = self._bits, s.sketch_depth
        args: list[bytes | str | int] = [
            self._kp,
            _b(account),
            _fmt(ts),
            int(ts // 3600) % 24,
            max(0, int(obs.tokens)),
            elicitation,
            b"1" if obs.conversation else b"0",
            b"0" if prefix is None else b"1",
            b"" if prefix is None else _b(prefix),
            *self._fixed,
            *self._scale,
            b"".join(_hex(seg) for seg in segs),
            b" ".join(b"#%d" % c for seg in segs for c in cell_indexes(seg, bits, depth)),
        ]
        keys = [*self._k_head, self._kp + b"acct:" + _b(account), *self._k_tail]
        return keys, args, account

    def _observed(self, account: str, reply: Sequence[Any]) -> Observed:
        parts_hex, profile, ranges, accounts, version, cjson, flagged, pjson = reply
        return Observed(
            parts=tuple(int(parts_hex[i : i + 16], 16) for i in range(0, len(parts_hex), 16)),
            profile=_observed_profile(account, profile, ranges),
            cluster=self._cluster_of(cjson),
            part_cluster=self._cluster_of(pjson),
            flagged_part=None if flagged is None else int(flagged, 16),
            table_version=int(version),
            accounts=int(accounts),
        )

    def observe(self, obs: Observation) -> Observed:
        keys, args, account = self._observe_call(obs)
        with self._errors():
            reply = self._evalsha(self._sync(), "observe", keys, args)
        return self._observed(account, reply)

    async def aobserve(self, obs: Observation) -> Observed:
        keys, args, account = self._observe_call(obs)
        with self._errors():
            reply = await self._aevalsha(await self._async(), "observe", keys, args)
        return self._observed(account, reply)

    # -- observe and charge in one round trip -----------------------------------------------------------

    @property
    def limiter_store(self) -> RedisStore:
        """The limiter store this engine store sends its hot-path scripts through: a guard built from the
        same URI charges its buckets on it, so :meth:`observe_deciding` can pipeline both."""
        return self._hot

    def shares(self, store: object) -> bool:
        """True when ``store`` is this engine store's own limiter store and can share a round trip."""
        return store is self._hot and self._hot.shares_round_trips

    def observe_deciding(
        self, obs: Observation, mode: str, requests: Sequence[BucketRequest], now: float | None
    ) -> tuple[Observed, MultiResult | StorageError]:
        """``observe`` and a limiter decision on buckets known before it (an account's own buckets), in
        one round trip. The decision is a StorageError instance when its part failed (the caller's failure
        policy applies); an ``observe`` failure raises StorageError, as ``observe`` does."""
        keys, args, account = self._observe_call(obs)
        source, sha = _script("observe")
        with self._errors():
            reply, decision = self._hot.decide_after((source, sha, keys, args), mode, requests, now)
        self._observe_failed(reply, decision)
        return self._observed(account, reply), decision

    async def aobserve_deciding(
        self, obs: Observation, mode: str, requests: Sequence[BucketRequest], now: float | None
    ) -> tuple[Observed, MultiResult | StorageError]:
        keys, args, account = self._observe_call(obs)
        source, sha = _script("observe")
        with self._errors():
            reply, decision = await self._hot.adecide_after((source, sha, keys, args), mode, requests, now)
        self._observe_failed(reply, decision)
        return self._observed(account, reply), decision

    def _observe_failed(self, reply: Any, decision: MultiResult | StorageError) -> None:
        """Raise for an error reply of ``observe`` in a shared round trip: a data error carries the
        limiter decision that went with it (the store answered it); any other is an outage."""
        if isinstance(reply, Exception):
            err = backend_error(self._name, reply)
            if isinstance(err, StoreReplyError):
                err.decision = decision
            raise err from reply

    # -- profiles and templates -----------------------------------------------------------------------

    def profiles(self) -> Iterator[AccountProfile]:
        with self._errors():
            client = self._sync(bulk=True)
            members: list[bytes] = client.zrange(self._k_accts, 0, -1)
        return self._iter_profiles(client, members)

    def _iter_profiles(self, client: Any, members: list[bytes]) -> Iterator[AccountProfile]:
        for batch in _batches(members):
            with self._errors():
                pipe = client.pipeline(transaction=False)
                for m in batch:
                    pipe.hgetall(self._kp + b"acct:" + m)
                replies = pipe.execute(raise_on_error=False)
            yield from self._readable_profiles(batch, replies)

    async def aprofiles(self) -> list[AccountProfile]:
        out: list[AccountProfile] = []
        with self._errors():
            client = await self._async(bulk=True)
            members: list[bytes] = await client.zrange(self._k_accts, 0, -1)
        for batch in _batches(members):
            with self._errors():
                pipe = client.pipeline(transaction=False)
                for m in batch:
                    pipe.hgetall(self._kp + b"acct:" + m)
                replies = await pipe.execute(raise_on_error=False)
            out.extend(self._readable_profiles(batch, replies))
        return out

    def _readable_profiles(self, batch: Sequence[bytes], replies: Sequence[Any]) -> Iterator[AccountProfile]:
        """The profiles of one pipelined HGETALL batch. An account whose hash cannot be read (another type
        under the key, fields that are not numbers) is left out and logged, so one bad key never stops the
        re-clustering of every other account; any other error reply is the store failing."""
        for m, d in zip(batch, replies, strict=True):
            if isinstance(d, Exception):
                err = backend_error(self._name, d)
                if not isinstance(err, StoreReplyError):
                    raise err from d
                report_reply_error(err)
            elif d:
                try:
                    profile = _profile(_s(m), d)
                except (KeyError, ValueError, TypeError, IndexError) as exc:
                    report_reply_error(StoreReplyError(f"{self._name}: unreadable account record: {exc!r}"))
                    continue
                yield profile

    def _template_calls(self, parts: Sequence[int]) -> Iterator[tuple[list[bytes], list[bytes]]]:
        for i in range(0, len(parts), _BATCH):
            yield [self._kp + b"tpls"], [self._kp, *(_hex(p) for p in parts[i : i + _BATCH])]

    @staticmethod
    def _template_stats(parts: Sequence[int], replies: Sequence[Any]) -> dict[int, TemplateStats]:
        out: dict[int, TemplateStats] = {}
        for part, got in zip(parts, replies, strict=True):
            if got is not None:
                requests, first, last, accounts = got
                out[part] = TemplateStats(part, int(requests), float(first), float(last), int(accounts))
        return out

    def templates(self, parts: Sequence[int]) -> dict[int, TemplateStats]:
        parts = list(dict.fromkeys(parts))
        replies: list[Any] = []
        with self._errors():
            client = self._sync(bulk=True)
            for keys, args in self._template_calls(parts):
                replies.extend(self._evalsha(client, "templates", keys, args))
        return self._template_stats(parts, replies)

    async def atemplates(self, parts: Sequence[int]) -> dict[int, TemplateStats]:
        parts = list(dict.fromkeys(parts))
        replies: list[Any] = []
        with self._errors():
            client = await self._async(bulk=True)
            for keys, args in self._template_calls(parts):
                replies.extend(await self._aevalsha(client, "templates", keys, args))
        return self._template_stats(parts, replies)

    # -- the published table --------------------------------------------------------------------------

    def _stage(self, table: ClusterTable) -> list[tuple[bytes, list[tuple[bytes, bytes]]]]:
        """Staging hashes for ``table`` (fresh names) and their contents."""
        base = self._kp + b"clu:stage:" + uuid.uuid4().hex.encode()
        return [
            (base + b":acct", [(_b(a), _b(c)) for a, c in table.assignment.items()]),
            (base + b":part", [(_hex(p), _b(c)) for p, c in table.parts.items()]),
            (base + b":info", [(_b(c), _verdict_json(v)) for c, v in table.clusters.items()]),
        ]

    @staticmethod
    def _stage_pipe(client: Any, staged: list[tuple[bytes, list[tuple[bytes, bytes]]]]) -> Any:
        pipe = client.pipeline(transaction=False)
        for key, pairs in staged:
            for i in range(0, len(pairs), _BATCH):
                pipe.hset(key, mapping=dict(pairs[i : i + _BATCH]))
            if pairs:
                pipe.pexpire(key, STAGE_TTL_MS)
        return pipe

    @staticmethod
    def _check_table(table: ClusterTable) -> None:
        if not isinstance(table, ClusterTable):
            raise TypeError(f"publish needs a ClusterTable, got {type(table).__name__}")
        if isinstance(table.version, bool) or not isinstance(table.version, int):
            raise TypeError(f"ClusterTable.version must be an int, got {table.version!r}")

    def publish(self, table: ClusterTable) -> None:
        self._check_table(table)
        staged = self._stage(table)
        keys = [self._k_ver, *self._k_clu, *(key for key, _ in staged)]
        with self._errors():
            client = self._sync(bulk=True)
            current = client.get(self._k_ver)
        if int(current or 0) >= table.version:
            return
        with self._errors():
            self._stage_pipe(client, staged).execute()
            done = self._evalsha(client, "publish", keys, [table.version])
        if done:
            self._table = table

    async def apublish(self, table: ClusterTable) -> None:
        self._check_table(table)
        staged = self._stage(table)
        keys = [self._k_ver, *self._k_clu, *(key for key, _ in staged)]
        with self._errors():
            client = await self._async(bulk=True)
            current = await client.get(self._k_ver)
        if int(current or 0) >= table.version:
            return
        with self._errors():
            await self._stage_pipe(client, staged).execute()
            done = await self._aevalsha(client, "publish", keys, [table.version])
        if done:
            self._table = table

    def _parse_table(self, reply: Sequence[Any]) -> ClusterTable:
        version, assignment, parts, info = reply
        table = ClusterTable(
            version=int(version),
            clusters={_s(c): _verdict(v) for c, v in _pairs(info)},
            assignment={_s(a): _s(c) for a, c in _pairs(assignment)},
            parts={int(p, 16): _s(c) for p, c in _pairs(parts)},
        )
        self._table = table
        return table

    def _cached(self, version: bytes | None) -> ClusterTable | None:
        v = int(version or 0)
        if v == 0:
            return _EMPTY
        cached = self._table
        return cached if cached is not None and cached.version == v else None

    def template_count(self) -> int:
        """How many template parts are tracked now (``ZCARD`` of the eviction set; off the hot path)."""
        with self._errors():
            return int(self._sync().zcard(self._kp + b"tpls"))

    def table(self) -> ClusterTable:
        with self._errors():
            version = self._sync().get(self._k_ver)
        cached = self._cached(version)
        if cached is not None:
            return cached
        with self._errors():
            reply = self._evalsha(self._sync(bulk=True), "table", [self._k_ver, *self._k_clu], [])
        return self._parse_table(reply)

    async def atable(self) -> ClusterTable:
        with self._errors():
            version = await (await self._async()).get(self._k_ver)
        cached = self._cached(version)
        if cached is not None:
            return cached
        with self._errors():
            reply = await self._aevalsha(
                await self._async(bulk=True), "table", [self._k_ver, *self._k_clu], []
            )
        return self._parse_table(reply)

    # -- lock, clear, close ---------------------------------------------------------------------------

    @staticmethod
    def _ttl_ms(ttl: float) -> int:
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl):
            raise ValueError(f"lock ttl must be a finite number of seconds, got {ttl!r}")
        return math.ceil(ttl * 1000) if ttl > 0 else 0

    def try_lock(self, owner: str, ttl: float) -> bool:
        ms = self._ttl_ms(ttl)
        with self._errors():
            return bool(self._evalsha(self._sync(), "lock", [self._k_lock], [_b(owner), ms]))

    async def atry_lock(self, owner: str, ttl: float) -> bool:
        ms = self._ttl_ms(ttl)
        with self._errors():
            return bool(await self._aevalsha(await self._async(), "lock", [self._k_lock], [_b(owner), ms]))

    def _pattern(self) -> str:
        return _escape_glob("{" + self.prefix + "}:") + "*"

    def clear(self) -> None:
        """Delete every key of this prefix (SCAN + UNLINK: no long block on a big state)."""
        with self._errors():
            client = self._sync(bulk=True)
            batch: list[bytes] = []
            for key in client.scan_iter(match=self._pattern(), count=1000):
                batch.append(key)
                if len(batch) >= _BATCH:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)
        self._table = None
        self._verdicts.clear()

    async def aclear(self) -> None:
        with self._errors():
            client = await self._async(bulk=True)
            batch: list[bytes] = []
            async for key in client.scan_iter(match=self._pattern(), count=1000):
                batch.append(key)
                if len(batch) >= _BATCH:
                    await client.unlink(*batch)
                    batch = []
            if batch:
                await client.unlink(*batch)
        self._table = None
        self._verdicts.clear()

    def close(self) -> None:
        """Close the sync connections (async ones are closed by ``aclose`` in their event loop)."""
        self._hot.close()
        self._bulk.close()

    async def aclose(self) -> None:
        await self._hot.aclose()
        await self._bulk.aclose()
