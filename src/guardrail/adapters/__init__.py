"""Adapters: the engine in front of an HTTP API.

``Guardrail`` (ASGI: Starlette, FastAPI, vLLM's ``--middleware``) and ``GuardrailWSGI`` (Flask, Django,
anything WSGI) share routes, identity, refusal shapes, rate-limit headers and usage settlement.
``GuardrailFromEnv`` is ``Guardrail`` configured from ``GUARDRAIL_*`` environment variables, for servers
that take a middleware class by import path and call it with the app alone.
"""

from ._asgi import Guardrail
from ._body import BodyStatus
from ._core import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES
from ._env import GuardrailFromEnv, settings_from_env
from ._events import GuardrailEvent
from ._identity import RequestView, TrustedProxies, api_key
from ._refusal import rate_limit_headers, refusal
from ._routes import DEFAULT_ROUTES, RouteTable
from ._usage import SSEUsageScanner, output_tokens, usage_from_json
from ._wsgi import GuardrailWSGI

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_ROUTES",
    "BodyStatus",
    "Guardrail",
    "GuardrailEvent",
    "GuardrailFromEnv",
    "GuardrailWSGI",
    "RequestView",
    "RouteTable",
    "SSEUsageScanner",
    "TrustedProxies",
    "api_key",
    "output_tokens",
    "rate_limit_headers",
    "refusal",
    "settings_from_env",
    "usage_from_json",
]
