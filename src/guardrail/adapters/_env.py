"""Configuration from the environment, for servers that instantiate a middleware class themselves.

vLLM's ``--middleware guardrail.adapters.GuardrailFromEnv`` calls ``app.add_middleware(cls)`` with no
options, and uvicorn workers each build their own app: the environment is the one channel they share.

==============================  ==================================================  ===================
``GUARDRAIL_STORAGE``           storage URI                                         ``memory://``
``GUARDRAIL_ACCOUNT_RPM``       requests per minute per account                     none (no quota)
``GUARDRAIL_OBSERVE_ONLY``      ``1`` / ``true``: decide and record, never refuse   off
``GUARDRAIL_TRUSTED_PROXIES``   comma-separated proxy IPs / CIDRs                   none
``GUARDRAIL_PROXY_HEADER``      ``x-forwarded-for`` or ``forwarded``                ``x-forwarded-for``
``GUARDRAIL_MAX_BODY_BYTES``    body cap                                            8 MiB
``GUARDRAIL_ON_OVERSIZE``       ``refuse`` or ``pass``                              ``refuse``
``GUARDRAIL_SECRET``            keyed-hash secret (read by ``guardrail._hashing``)  weak public default
==============================  ==================================================  ===================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .._types import ASGIApp
from ._asgi import Guardrail

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``Guardrail`` keyword arguments named by ``GUARDRAIL_*`` variables (clear errors if invalid)."""
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = {"storage": env.get("GUARDRAIL_STORAGE") or "memory://"}
    rpm = env.get("GUARDRAIL_ACCOUNT_RPM", "").strip()
    if rpm:
        try:
            settings["account_rpm"] = float(rpm)
        except ValueError:
            raise ValueError(f"GUARDRAIL_ACCOUNT_RPM must be a number, got {rpm!r}") from None
    if "GUARDRAIL_OBSERVE_ONLY" in env:
        settings["observe_only"] = _bool("GUARDRAIL_OBSERVE_ONLY", env["GUARDRAIL_OBSERVE_ONLY"])
    proxies = env.get("GUARDRAIL_TRUSTED_PROXIES", "").strip()
    if proxies:
        settings["trusted_proxies"] = proxies
    header = env.get("GUARDRAIL_PROXY_HEADER", "").strip()
    if header:
        settings["proxy_header"] = header
    cap = env.get("GUARDRAIL_MAX_BODY_BYTES", "").strip()
    if cap:
        if not (cap.isascii() and cap.isdigit()):
            raise ValueError(f"GUARDRAIL_MAX_BODY_BYTES must be an integer, got {cap!r}")
        settings["max_body_bytes"] = int(cap)
    oversize = env.get("GUARDRAIL_ON_OVERSIZE", "").strip()
    if oversize:
        settings["on_oversize"] = oversize
    return settings


class GuardrailFromEnv(Guardrail):
    """``Guardrail`` configured from ``GUARDRAIL_*`` environment variables; extra keywords override."""

    def __init__(self, app: ASGIApp, **overrides: Any) -> None:
        settings = settings_from_env()
        settings.update(overrides)
        if "guard" in overrides and "storage" not in overrides:
            settings.pop("storage", None)  # a given guard brings its own storage
        super().__init__(app, **settings)
