"""The guard behind a middleware: the one passed with ``guard=``, or one built from simple options.

Anyone needing more than ``storage`` / ``observe_only`` builds the engine's ``AsyncGuard`` / ``Guard``
(policy, linkage, limiter failure policy...) and hands it over with ``guard=``, or passes the engine's
keyword arguments as ``guard_options``. ``account_rpm`` is the adapter's own request quota
(``_quota.py``) and works with either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, overload

from ..engine import AsyncGuard, Guard, Policy


def _check_rpm(account_rpm: float | None) -> None:
    if account_rpm is None:
        return
    if isinstance(account_rpm, bool) or not isinstance(account_rpm, (int, float)):
        raise ValueError(f"account_rpm must be a number of requests per minute, got {account_rpm!r}")
    if not (math.isfinite(account_rpm) and account_rpm > 0):
        raise ValueError(f"account_rpm must be positive and finite, got {account_rpm!r}")


@overload
def resolve_guard(
    *,
    asynchronous: Literal[True],
    guard: object,
    storage: str | None,
    account_rpm: float | None,
    observe_only: bool,
    secret: bytes,
    options: Mapping[str, Any] | None,
) -> AsyncGuard: ...


@overload
def resolve_guard(
    *,
    asynchronous: Literal[False],
    guard: object,
    storage: str | None,
    account_rpm: float | None,
    observe_only: bool,
    secret: bytes,
    options: Mapping[str, Any] | None,
) -> Guard: ...


def resolve_guard(
    *,
    asynchronous: bool,
    guard: object,
    storage: str | None,
    account_rpm: float | None,
    observe_only: bool,
    secret: bytes,
    options: Mapping[str, Any] | None,
) -> Any:
    """Validate the options and return the guard to use (duck-typed when given: ``check`` + ``settle``)."""
    _check_rpm(account_rpm)
    if guard is not None:
        if storage is not None or options:
            raise ValueError("pass either guard= or storage/guard_options, not both")
        if not callable(getattr(guard, "check", None)) or not callable(getattr(guard, "settle", None)):
            kind = (
                "an AsyncGuard (async check() and settle())"
                if asynchronous
                else "a Guard (check() and settle())"
            )
            raise ValueError(f"guard must be {kind}")
        return guard
    uri = "memory://" if storage is None else storage
    if not isinstance(uri, str) or "://" not in uri:
        raise ValueError(
            f"storage must be a storage URI such as 'memory://' or 'redis://host:6379', got {uri!r}"
        )
    kwargs: dict[str, Any] = {"secret": secret}
    if observe_only:
        kwargs["policy"] = Policy(observe_only=True)
    if options:
        kwargs.update(options)
    cls = AsyncGuard if asynchronous else Guard
    try:
        return cls(uri, **kwargs)
    except TypeError as exc:
        raise ValueError(f"cannot build {cls.__name__} from {sorted(kwargs)}: {exc}") from exc
