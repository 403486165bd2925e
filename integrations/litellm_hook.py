"""guardrail inside a LiteLLM proxy, as a pre-call hook (``CustomLogger.async_pre_call_hook``).

LiteLLM proxy config (``config.yaml``)::

    litellm_settings:
      callbacks: integrations.litellm_hook.proxy_handler_instance

The hook sees the parsed request (``data``) and LiteLLM's authenticated key (``user_api_key_dict``): the
account is the key's ``user_id`` (else its team, else the hashed key LiteLLM hands over), so budgets
follow LiteLLM's own identities. A refusal is raised as LiteLLM's ``ProxyException``
(``fastapi.HTTPException`` without it: 429 with ``Retry-After`` / ``retry-after-ms``, or 403 with
``x-should-retry: false``), which LiteLLM turns into its error response.
The success hook settles the actual output tokens from the response's ``usage``; for a streamed call LiteLLM
calls no success hook, so the streaming iterator hook passes every chunk on as it comes and settles from the
largest output-token count the stream carried (OpenAI's final ``usage`` chunk with ``stream_options``, a
Responses ``response.completed`` event, Anthropic's ``message_delta`` in raw SSE bytes), or leaves the
estimate standing when it carried none (a stream cut short; one that failed upstream is refunded, as the
failure hook refunds). Configuration comes from
the same ``GUARDRAIL_*`` variables as the middleware (``GUARDRAIL_STORAGE``, ``GUARDRAIL_ACCOUNT_RPM``...).

Written against the hook signatures LiteLLM documents (custom_callback.md, "CALL HOOKS - proxy only");
litellm itself is optional here: without it the class derives from ``object`` and stays testable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any, cast

from cachetools import TTLCache

from guardrail._hashing import default_secret
from guardrail.adapters import SSEUsageScanner, output_tokens, settings_from_env
from guardrail.adapters._build import resolve_guard
from guardrail.adapters._quota import acheck, awaited, quota_for
from guardrail.adapters._refusal import refusal, spent_quota
from guardrail.engine import Action, AsyncGuard, Decision, RequestFacts, settle_needed

try:  # pragma: no cover - depends on litellm being installed
    from litellm.integrations.custom_logger import CustomLogger as _Base  # type: ignore[import-not-found]
except ImportError:  # litellm is heavy; the hook does not need it to be defined or tested
    _Base = object

try:  # pragma: no cover - depends on litellm being installed
    # LiteLLM's own error keeps its headers on its OpenAI routes; its Anthropic (/v1/messages) handler
    # rebuilds an HTTPException's response and drops them (Retry-After, x-should-retry), and on 1.85 drops
    # those of its own error too.
    from litellm.proxy._types import ProxyException as _ProxyException  # type: ignore[import-not-found]
except ImportError:
    _ProxyException = None

try:
    from fastapi import HTTPException
except ImportError:  # pragma: no cover - LiteLLM's proxy always has fastapi

    class HTTPException(Exception):  # type: ignore[no-redef]
        def __init__(
            self, status_code: int, detail: Any = None, headers: Mapping[str, str] | None = None
        ) -> None:
            super().__init__(detail)
            self.status_code, self.detail, self.headers = status_code, detail, dict(headers or {})


# LiteLLM call type -> the route the engine reads the body as.
_ROUTES = {
    "completion": "/v1/chat/completions",
    "acompletion": "/v1/chat/completions",
    "text_completion": "/v1/completions",
    "atext_completion": "/v1/completions",
    "responses": "/v1/responses",
    "aresponses": "/v1/responses",
    "anthropic_messages": "/v1/messages",
    "aanthropic_messages": "/v1/messages",
}
#: Gemini's own API through LiteLLM (``/v1beta/models/{model}:generateContent`` and its stream): the body is
#: Gemini's, read on a generateContent path named after the request's model.
_GEMINI_CALLS = frozenset(
    {"generate_content", "agenerate_content", "generate_content_stream", "agenerate_content_stream"}
)
_TICKET = "guardrail_ticket"
_BODY_KEYS = frozenset(
    {"model", "messages", "prompt", "input", "system", "instructions", "max_tokens", "stream"}
    | {"contents", "systemInstruction", "system_instruction", "generationConfig", "generation_config"}
)
logger = logging.getLogger("guardrail.adapters")

#: Seconds the engine gets to decide before the call goes through undecided (as the middleware's default).
CHECK_TIMEOUT = 5.0


class GuardrailLiteLLM(_Base):  # type: ignore[misc]
    """LiteLLM proxy hook: check before the model call, settle after it."""

    def __init__(
        self, guard: AsyncGuard | None = None, *, account_rpm: float | None = None, **options: Any
    ) -> None:
        super().__init__()
        settings = settings_from_env()
        if account_rpm is None:
            account_rpm = settings.get("account_rpm")
        if guard is None:
            guard = resolve_guard(
                asynchronous=True,
                guard=None,
                storage=options.pop("storage", settings["storage"]),
                account_rpm=account_rpm,
                observe_only=bool(options.pop("observe_only", settings.get("observe_only", False))),
                secret=default_secret(),
                options=options,
            )
        elif options:
            raise ValueError("pass either guard= or the engine's options, not both")
        self.guard = guard
        #: ``account_rpm``: requests per minute per account, in the engine's own limiter call when it can
        #: (the middleware's quota, same keys: a hook and a middleware on one Redis share a budget).
        core = getattr(guard, "core", None)
        self.quota, self._quota_in_check = quota_for(
            account_rpm,
            guard,
            core.secret if core is not None else default_secret(),
            core.namespace if core is not None else "gr",
        )
        self._pending: TTLCache[str, Decision] = TTLCache(maxsize=100_000, ttl=3600)
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def account_of(user_api_key_dict: Any) -> str:
        for attr in ("user_id", "team_id", "token", "api_key"):
            value = getattr(user_api_key_dict, attr, None)
            if value:
                return f"{attr}:{value}"
        return "anonymous"

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> Any:
        for key in ("litellm_metadata", "metadata"):  # a ticket is ours to write: never the client's
            held = data.get(key)
            if isinstance(held, dict):
                held.pop(_TICKET, None)
        path = _route(str(call_type), data)
        if path is None:  # embeddings, images, moderation...: not a generation, not inspected
            return data
        metadata = _metadata(data)
        ip = metadata.get("requester_ip_address") if metadata else None
        body = {k: v for k, v in data.items() if k in _BODY_KEYS}  # not LiteLLM's own metadata
        account = self.account_of(user_api_key_dict)
        facts = RequestFacts(
            account=account, ip=ip if isinstance(ip, str) and ip else None, path=path, body=body
        )
        try:  # a hung store must not hold the call either: fail open after CHECK_TIMEOUT
            checking = acheck(self.guard, facts, self.quota, self._quota_in_check, observe_only=False)
            decision, _ = await asyncio.wait_for(checking, CHECK_TIMEOUT)
        except Exception:  # guardrail failing must not fail the proxy
            logger.exception("guardrail LiteLLM hook failed; request allowed")
            return data
        if decision.action == Action.BLOCK:
            raise _http(refusal("openai", 403))
        if decision.action == Action.THROTTLE:
            quota = self.quota
            if quota is not None:
                # The quota refused, or an engine bucket did and wears the quota's figures (as the
                # middleware does): a spent quota's headers and wait either way. ``decision.retry_after``
                # is the longest wait of every refusing bucket, an engine bucket's included.
                raise _http(spent_quota("openai", quota.limit.rate, quota.limit.burst, decision.retry_after))
            # No bucket figures: the engine's limits would tell a client its cluster was flagged.
            raise _http(refusal("openai", 429, retry_after=decision.retry_after))
        if not settle_needed(self.guard, decision):
            return data  # nothing to settle (no engine bucket charged): nothing to keep for later
        # Unguessable: a client that could name another call's ticket (in its own ``metadata``, which
        # LiteLLM passes through) could settle that call's charge with its own small usage.
        ticket = secrets.token_urlsafe(16)
        self._pending[ticket] = decision
        # LiteLLM's own metadata: ``litellm_metadata`` where the request's ``metadata`` is the client's
        # field for the provider (/v1/messages, /v1/responses), else ``metadata``.
        key = "litellm_metadata" if isinstance(data.get("litellm_metadata"), dict) else "metadata"
        if key == "metadata" and path in ("/v1/messages", "/v1/responses"):
            key = "litellm_metadata"
        data.setdefault(key, {})
        if isinstance(data[key], dict):
            data[key][_TICKET] = ticket
        return data

    async def async_post_call_success_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any
    ) -> Any:
        decision = self._take(data)
        if decision is not None:
            tokens = _response_tokens(response)
            if tokens is not None:
                await self._settle(decision, tokens)
        return response

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: AsyncIterator[Any], request_data: dict[str, Any]
    ) -> AsyncIterator[Any]:
        """Pass the stream on chunk by chunk; settle its output tokens once it ends (or is abandoned)."""
        decision = self._take(request_data)
        if decision is None:
            async for chunk in response:
                yield chunk
            return
        usage = _StreamUsage()
        failed = False
        try:
            async for chunk in response:
                usage.read(chunk)
                yield chunk
        except Exception:
            failed = True  # the upstream failed mid-stream: LiteLLM's failure hook finds no ticket now
            raise
        finally:
            # Also when the client goes away mid-stream: the server cancels the task, and an await here
            # would be cancelled too, so the settlement runs as a task of its own.
            tokens = usage.tokens if usage.tokens is not None else (0 if failed else None)
            if tokens is not None:
                self._spawn(self._settle(decision, tokens))

    async def async_post_call_failure_hook(
        self,
        request_data: dict[str, Any],
        original_exception: Exception,
        user_api_key_dict: Any,
        traceback_str: str | None = None,
    ) -> Any:
        decision = self._take(request_data)
        if decision is not None:
            await self._settle(decision, 0)
        return None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task that outlives the request's (kept referenced until it ends)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self, data: Any) -> Decision | None:
        if not isinstance(data, dict):
            return None
        for key in ("litellm_metadata", "metadata"):
            metadata = data.get(key)
            ticket = metadata.get(_TICKET) if isinstance(metadata, dict) else None
            if isinstance(ticket, str):
                return self._pending.pop(ticket, None)
        return None

    async def _settle(self, decision: Decision, tokens: int) -> None:
        try:
            await awaited(self.guard.settle(decision, tokens))
        except Exception:
            logger.exception("guardrail settle failed; ignored")


def _route(call_type: str, data: Mapping[str, Any]) -> str | None:
    """The API path the engine reads a call of ``call_type`` as, or ``None`` for a call that generates
    no text from a prompt (embeddings, images, moderation, files...)."""
    path = _ROUTES.get(call_type)
    if path is not None or call_type not in _GEMINI_CALLS:
        return path
    model = str(data.get("model") or "")
    model = model.rsplit("/", 1)[-1].replace(":", "") or "model"  # "gemini/gemini-2.5-pro"
    verb = "streamGenerateContent" if "stream" in call_type else "generateContent"
    return f"/v1beta/models/{model}:{verb}"


def _response_tokens(response: Any) -> int | None:
    """The output tokens a LiteLLM response or stream chunk names: a dict read as the middleware reads a
    body (OpenAI, Anthropic, Responses, Gemini ``usageMetadata``), an object by the same fields."""
    if isinstance(response, dict):
        return output_tokens(response)
    tokens = _output_tokens(_get(response, "usage"))
    if tokens is None:
        tokens = _output_tokens(_get(_get(response, "response"), "usage"))
    if tokens is None:  # Gemini's response object (google-genai names, or the REST ones): read as its dict
        meta = _get(response, "usage_metadata") or _get(response, "usageMetadata")
        if meta is not None:
            counts = {
                "candidatesTokenCount": _first(meta, "candidates_token_count", "candidatesTokenCount"),
                "thoughtsTokenCount": _first(meta, "thoughts_token_count", "thoughtsTokenCount"),
            }
            tokens = output_tokens({"usageMetadata": counts})
    return tokens


def _first(obj: Any, *names: str) -> Any:
    """The first of ``obj``'s fields ``names`` that is set."""
    for name in names:
        value = _get(obj, name)
        if value is not None:
            return value
    return None


def _output_tokens(usage: Any) -> int | None:
    """The output tokens of a ``usage`` (a mapping or an object; OpenAI's or Anthropic/Responses' name)."""
    if usage is None:
        return None
    tokens = _get(usage, "completion_tokens")
    if tokens is None:
        tokens = _get(usage, "output_tokens")
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0 else None


class _StreamUsage:
    """The last output-token count a LiteLLM stream carried: chunk objects or dicts with ``usage``
    (chat completions), events whose ``response`` has one (Responses API), or raw SSE bytes (passed-through
    Anthropic streams). A chunk it cannot read is skipped: the stream itself is never touched."""

    __slots__ = ("_sse", "tokens")

    def __init__(self) -> None:
        self.tokens: int | None = None
        self._sse: SSEUsageScanner | None = None

    def read(self, chunk: Any) -> None:
        try:
            if isinstance(chunk, (bytes, bytearray, str)):
                if self._sse is None:
                    self._sse = SSEUsageScanner()
                self._sse.feed(chunk.encode() if isinstance(chunk, str) else bytes(chunk))
                found = self._sse.tokens
            else:
                found = _response_tokens(chunk)
        except Exception:  # an odd chunk must not break the stream
            return
        # Counts in a stream are running totals: the largest is the stream's. A zero is no count: LiteLLM's
        # translated Gemini stream ends with ``candidatesTokenCount: 0`` whatever was generated, and
        # taking it would refund the whole estimate.
        if found is not None and found > 0 and (self.tokens is None or found > self.tokens):
            self.tokens = found


def _metadata(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """LiteLLM's request metadata (``litellm_metadata`` on the routes where ``metadata`` is the client's)."""
    for key in ("litellm_metadata", "metadata"):
        value = data.get(key)
        if isinstance(value, dict) and "requester_ip_address" in value:
            return value
    value = data.get("litellm_metadata")
    return value if isinstance(value, dict) else None


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _http(r: Any) -> Exception:
    """The refusal ``r`` as the exception LiteLLM answers with: its ``ProxyException`` (status, OpenAI error
    fields and headers kept, but for /v1/messages on LiteLLM 1.85) when LiteLLM is there, else FastAPI's
    ``HTTPException``."""
    headers = {k.decode(): v.decode() for k, v in r.headers if k not in (b"content-length", b"content-type")}
    error = json.loads(r.body)["error"]
    if _ProxyException is not None:
        try:
            exc = cast(
                Exception,
                _ProxyException(
                    message=error["message"],
                    type=error["type"],
                    param=None,
                    code=r.status,
                    headers=headers,
                    openai_code=error.get("code"),
                ),
            )
        except TypeError:  # a LiteLLM whose ProxyException takes no headers yet
            pass
        else:
            # LiteLLM releases before ~1.90 rebuild any exception but HTTPException with
            # ``getattr(e, "status_code", 500)``: without it, a 429 would go out as a 500.
            exc.status_code = r.status  # type: ignore[attr-defined]
            return exc
    return HTTPException(status_code=r.status, detail=error, headers=headers)


def __getattr__(name: str) -> Any:
    """``proxy_handler_instance`` is built on first use, from the environment (LiteLLM imports it by name)."""
    if name == "proxy_handler_instance":
        instance = GuardrailLiteLLM()
        globals()[name] = instance
        return instance
    raise AttributeError(name)
