"""The guard behind a middleware: the one passed with ``guard=``, or one built from simple options.

Anyone needing more than ``storage`` / ``observe_only`` builds the engine's ``AsyncGuard`` / ``Guard``
(policy, linkage, limiter failure policy...) and hands it over with ``guard=``, or passes the engine's
keyword arguments as ``guard_options``. ``account_rpm`` is the adapter's own request quota
(``_quota.py``) and works with either.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

from ..engine import AsyncGuard, Guard, Policy


def _check_rpm(account_rpm: float | None) -> None:
    if account_rpm is None:
        return
    if isinstance(account_rpm, bool) or not isinstance(account_rpm, (int, float)):
        raise ValueError(f"account_rpm must be a number of requests per minute, got {account_rpm!r}")
    if not (math.isfinite(account_rpm) and account_rpm > 0):
        raise ValueError(f"account_rpm must be positive and finite, got {account_rpm!r}")


def is_async_callable(fn: object) -> bool:
    """``async def`` functions and methods, and objects whose ``__call__`` is one (``functools.partial``
    of either included)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 (an instance's __call__, not callable())
    return not inspect.isfunction(fn) and not inspect.ismethod(fn) and inspect.iscoroutinefunction(call)


def _plain_function(fn: object) -> bool:
    """A ``def`` (not ``async def``) function or method: one whose result is known not to be awaited."""
    return (inspect.isfunction(fn) or inspect.ismethod(fn)) and not inspect.iscoroutinefunction(fn)


def check_sync_callable(fn: Callable[..., Any] | None, name: str, what: str) -> None:
    """Reject an ``async def`` where a middleware calls ``fn`` inline and uses its result."""
    if fn is not None and is_async_callable(fn):
        raise ValueError(f"{name} must be a plain function (it runs inline on every request): {what}")


def _check_guard_kind(guard: Any, asynchronous: bool) -> None:
    """The ASGI middleware awaits ``check``/``settle``; the WSGI one calls them: a guard of the other kind
    would fail every request (and fail open), so it is refused here."""
    check, settle = guard.check, guard.settle
    if asynchronous:
        wrong = isinstance(guard, Guard) or _plain_function(check) or _plain_function(settle)
        if wrong:
            raise ValueError(
                f"the ASGI middleware needs an AsyncGuard (async def check() and settle()), "
                f"got {type(guard).__name__}; use AsyncGuard(...) or GuardrailWSGI"
            )
    elif isinstance(guard, AsyncGuard) or is_async_callable(check) or is_async_callable(settle):
        raise ValueError(
            f"the WSGI middleware needs a Guard (plain def check() and settle()), "
            f"got {type(guard).__name__}; use Guard(...) or the ASGI Guardrail"
        )


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
        _check_guard_kind(guard, asynchronous)
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
