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
import types
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

from ..engine import AsyncGuard, Guard, Policy
from ..limiter._uri import display_uri


def _check_rpm(account_rpm: float | None) -> None:
    if account_rpm is None:
        return
    if isinstance(account_rpm, bool) or not isinstance(account_rpm, (int, float)):
        raise ValueError(f"account_rpm must be a number of requests per minute, got {account_rpm!r}")
    if not (math.isfinite(account_rpm) and account_rpm > 0):
        raise ValueError(f"account_rpm must be positive and finite, got {account_rpm!r}")


def is_async_callable(fn: object) -> bool:
    """Whether ``fn`` is certainly an ``async def``: a real function or method defined so (through
    ``functools.partial`` too), or an object whose class defines ``async def __call__``. Anything else
    (mocks, wrappers of unknown kind) is given the benefit of the doubt."""
    try:
        # Exact types: a spec'd mock claims the class of what it mocks to ``isinstance``.
        while type(fn) is functools.partial:
            fn = fn.func
        if type(fn) is types.MethodType:
            fn = fn.__func__
        if type(fn) is types.FunctionType:
            return inspect.iscoroutinefunction(fn)
        call = getattr(type(fn), "__call__", None)  # noqa: B004 (the class's __call__, not callable())
        return type(call) is types.FunctionType and inspect.iscoroutinefunction(call)
    except Exception:  # an exotic object's introspection must not break construction
        return False


def check_sync_callable(fn: Callable[..., Any] | None, name: str, what: str) -> None:
    """Reject an ``async def`` where a middleware calls ``fn`` inline and uses its result."""
    if fn is not None and is_async_callable(fn):
        raise ValueError(f"{name} must be a plain function (it runs inline on every request): {what}")


def _check_guard_kind(guard: Any, asynchronous: bool) -> None:
    """The ASGI middleware awaits ``check``/``settle``; the WSGI one calls them: the engine's guard of the
    other kind, or a guard whose methods are certainly of the other kind, would fail every request (and
    fail open), so it is refused here. A plain ``def`` may return an awaitable (a delegating wrapper), so
    only the WSGI side judges by definition."""
    if asynchronous:
        if isinstance(guard, Guard):
            raise ValueError(
                f"the ASGI middleware needs an AsyncGuard (async def check() and settle()), "
                f"got {type(guard).__name__}; use AsyncGuard(...) or GuardrailWSGI"
            )
    elif isinstance(guard, AsyncGuard) or is_async_callable(guard.check) or is_async_callable(guard.settle):
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
            "storage must be a storage URI such as 'memory://' or 'redis://host:6379', "
            f"got {display_uri(uri) if isinstance(uri, str) else uri!r}"
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
