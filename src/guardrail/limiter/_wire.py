"""Redis's wire format for the limiter's scripts: the Lua sources, the commands packed by hand, the replies.

The store prices one decision against a bare ``INCRBY`` round trip, so everything the client does per
decision is here and kept minimal: a command is packed in one pass from pieces encoded once (the
``EVALSHA <sha> <numkeys>`` head per store, each ``Limit``'s tolerance), each bucket's step
(``cost x interval`` in microseconds) is computed in the double precision the script would use, and each
reply is one integer per bucket (ahead = TAT - now, negated when the bucket refuses) turned into results
with the allowed case of ``_gcra.from_ahead`` inlined. No I/O: ``_redis`` sends and receives.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import struct
from collections.abc import Sequence

from . import _gcra
from ._gcra import left
from ._limit import BucketRequest, Limit
from ._result import STORE, BucketResult, MultiResult

_SCRIPTS: dict[str, tuple[str, str]] = {}
#: modes as the multi-bucket script spells them (one byte each; upper case when a key is named twice)
_MODES = {_gcra.CONSUME: b"c", _gcra.PEEK: b"p", _gcra.SETTLE: b"s"}
_MODES_DUP = {mode: code.upper() for mode, code in _MODES.items()}
_MICROS = float(_gcra.MICROS)


def script(name: str = "gcra") -> tuple[str, str]:
    """A Lua script (``gcra``: several buckets, any mode; ``gcra_one``: one bucket, consume) and its SHA1,
    read once from package data."""
    found = _SCRIPTS.get(name)
    if found is None:
        source = importlib.resources.files(__package__).joinpath(f"lua/{name}.lua").read_text("utf-8")
        found = _SCRIPTS[name] = (source, hashlib.sha1(source.encode()).hexdigest())
    return found


def source(sha: bytes) -> str:
    """The Lua source of a script loaded by ``script`` (to load it again after NOSCRIPT)."""
    for text, digest in _SCRIPTS.values():
        if digest.encode() == sha:
            return text
    raise LookupError(f"no script with SHA1 {sha!r}")


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


NOW_SERVER = bulk(b"")  # "now" = the server's clock


def encode_now(now: float | None) -> bytes:
    """``now`` for the scripts: "" (server TIME) or whole microseconds."""
    return b"" if now is None else str(round(float(now) * _gcra.MICROS)).encode()


def mode_code(mode: str, keys: Sequence[bytes]) -> bytes:
    """The script's mode byte: upper case tells it a key is named twice (it then tracks keys by name)."""
    if len(keys) > 1 and len(set(keys)) < len(keys):
        return _MODES_DUP[mode]
    return _MODES[mode]


def step(mode: str, limit: Limit, cost: float) -> bytes:
    """A bucket's step for the scripts: cost x interval in microseconds, computed as the script would;
    a consume or peek above the burst can never fit, and says so with a step no tolerance reaches."""
    if cost > limit.burst and mode != _gcra.SETTLE:
        return b"1e308"
    return b"%r" % (cost * limit.interval_us)


_NAN = float("nan")  # "now" for the multi-bucket script: read the server's clock
#: per bucket count: (the struct of the multi-bucket script's numbers, its format, the format as a RESP
#: bulk string, the RESP length prefix of the packed numbers)
_LAYOUTS: dict[int, tuple[struct.Struct, bytes, bytes, bytes]] = {}


def _layout(n: int) -> tuple[struct.Struct, bytes, bytes, bytes]:
    found = _LAYOUTS.get(n)
    if found is None:
        fmt = b">" + b"d" * (2 * n + 1)
        packer = struct.Struct(fmt)
        found = _LAYOUTS[n] = (packer, fmt, bulk(fmt), b"$%d\r\n" % packer.size)
    return found


def numbers_many(mode: str, requests: Sequence[BucketRequest], now: float | None) -> list[float]:
    """The multi-bucket script's numbers: now in microseconds (NaN: the server's clock), then each
    bucket's step (cost x interval, microseconds; a consume or peek above the burst can never fit, and
    says so with a step no tolerance reaches) and tolerance."""
    nums = [_NAN if now is None else float(round(float(now) * _gcra.MICROS))]
    settle = mode == _gcra.SETTLE
    for r in requests:
        lim = r.limit
        cost = r.cost
        nums += (1e308 if cost > lim.burst and not settle else cost * lim.interval_us, lim.tolerance_us)
    return nums


def argv_many(
    mode: str, keys: Sequence[bytes], requests: Sequence[BucketRequest], now: float | None
) -> list[bytes]:
    """The multi-bucket script's ARGV as a list, for ``execute_command`` (Cluster and the generic path)."""
    packer, fmt, _, _ = _layout(len(keys))
    return [
        fmt,
        mode_code(mode, keys),
        packer.pack(*numbers_many(mode, requests, now)),
    ]


def pack_many(
    head: bytes, mode: str, keys: Sequence[bytes], requests: Sequence[BucketRequest], now: float | None
) -> bytes:
    """The whole multi-bucket EVALSHA in Redis's wire format: ``head`` is the store's constant
    ``EVALSHA <sha>``, the layout of the numbers is encoded once per bucket count."""
    n = len(keys)
    packer, _, fmt, size = _layout(n)
    parts = [b"*%d\r\n%b$%d\r\n%d\r\n" % (n + 6, head, len(str(n)), n)]
    parts += [b"$%d\r\n%b\r\n" % (len(k), k) for k in keys]
    parts.append(b"%b$1\r\n%b\r\n%b" % (fmt, mode_code(mode, keys), size))
    parts.append(packer.pack(*numbers_many(mode, requests, now)))
    parts.append(b"\r\n")
    return b"".join(parts)


def parse_many(mode: str, requests: Sequence[BucketRequest], reply: Sequence[int | bytes]) -> MultiResult:
    """Turn the script's integers (per bucket: ahead when it allows, -1 - ahead when it refuses) into
    results."""
    new = tuple.__new__  # BucketResult's own __new__ is Python-level; this is its fast path
    results = []
    allowed = True
    for value, r in zip(reply, requests, strict=True):
        if value.__class__ is not int:
            value = int(value)
        lim = r.limit
        if value >= 0:  # _gcra.from_ahead for an allowed bucket, inlined: the common case
            ahead = value / _MICROS
            result = (r.key, True, left(lim.burst, ahead * lim.rate), 0.0, ahead, lim.burst, STORE)
        else:
            allowed = False
            rest, retry, reset = _gcra.from_ahead(
                mode, False, (-1 - value) / _MICROS, lim.rate, lim.burst, r.cost
            )
            result = (r.key, False, rest, retry, reset, lim.burst, STORE)
        results.append(new(BucketResult, result))
    return MultiResult(allowed, tuple(results))


def parse_one(key: str, limit: Limit, cost: float, reply: int | bytes) -> BucketResult:
    """A ``gcra_one`` reply (ahead when allowed, -1 - ahead when refused) as a BucketResult."""
    value = reply if reply.__class__ is int else int(reply)
    if value >= 0:  # _gcra.from_ahead for an allowed bucket, inlined
        ahead = value / _MICROS
        result = (key, True, left(limit.burst, ahead * limit.rate), 0.0, ahead, limit.burst, STORE)
    else:
        rest, retry, reset = _gcra.from_ahead(
            _gcra.CONSUME, False, (-1 - value) / _MICROS, limit.rate, limit.burst, cost
        )
        result = (key, False, rest, retry, reset, limit.burst, STORE)
    return tuple.__new__(BucketResult, result)


def pack_one(head: bytes, head_now: bytes, key: bytes, limit: Limit, cost: float, now: float | None) -> bytes:
    """The single-bucket EVALSHA in Redis's wire format; ``head`` / ``head_now`` are the store's constant
    ``*6`` / ``*7`` command heads (without / with the test clock's "now")."""
    step = b"1e308" if cost > limit.burst else b"%r" % (cost * limit.interval_us)
    if now is None:
        return b"%b$%d\r\n%b\r\n$%d\r\n%b\r\n%b" % (head, len(key), key, len(step), step, limit.resp)
    return b"%b$%d\r\n%b\r\n$%d\r\n%b\r\n%b%b" % (
        head_now,
        len(key),
        key,
        len(step),
        step,
        limit.resp,
        bulk(encode_now(now)),
    )


def argv_one(limit: Limit, cost: float, now: float | None) -> list[bytes]:
    """``gcra_one``'s ARGV as a list, for ``execute_command``."""
    args = [step(_gcra.CONSUME, limit, cost), limit.tolerance_wire]
    return args if now is None else [*args, encode_now(now)]
