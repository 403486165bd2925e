"""What the ASGI and WSGI middlewares share: validated settings, identity, the verdict, events.

Everything here is computed once per middleware (routes compiled, proxies parsed, secret resolved) or is a
pure function of one request, so the two twins behave the same by construction.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from .._hashing import default_secret, hash_identifier
from ..engine import Action, AsyncGuard, Decision, Guard, RequestFacts
from ..engine._core import Core as EngineCore
from ..limiter import MultiResult
from ._build import check_sync_callable
from ._encoding import INFLATE_LATE, REFUSED_BODIES
from ._events import GuardrailEvent, OnEvent, emit, log_failure, logger
from ._identity import Identify, RequestView, TrustedProxies, api_key
from ._quota import RequestQuota, quota_for
from ._refusal import Headers, Refusal, rate_limit_headers, refusal, spent_quota
from ._routes import Provider, RouteTable

OnOversize = Literal["refuse", "pass"]

#: Default cap on an inspected request body (8 MiB: long contexts fit, a flood of huge bodies does not).
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
#: Default time allowed for the whole body to arrive.
DEFAULT_BODY_TIMEOUT = 30.0
#: Default time the engine gets to decide (and to settle) before the request goes through undecided.
DEFAULT_CHECK_TIMEOUT = 5.0
#: The largest JSON response kept (as a side copy) to read its ``usage``.
MAX_USAGE_BODY = 2 * 1024 * 1024

_OUTCOME = {Action.THROTTLE: "throttled", Action.BLOCK: "blocked"}


#: The refusal an unread body gets when enforcing, by how its read ended.
_UNREAD_STATUS = {**REFUSED_BODIES, "timeout": 408}
#: Why the engine decided a request passed on without reading its prompt, when it was asked all the same.
_UNREAD_NOTES = {
    "unsupported": "body coding not undone: read as it came",
    INFLATE_LATE: "body not inflated in time: decided unread",
}


def by_address(ip: str | None) -> str:
    """The account of a request counted by its address (no key, or identity that failed)."""
    return f"ip:{ip}" if ip else "anonymous"


class Core:
    """Validated, precomputed settings plus the per-request pure logic."""

    __slots__ = (
        "_explicit_secret",
        "body_timeout",
        "check_timeout",
        "expose_engine_limits",
        "headers_on_allow",
        "identify",
        "max_body_bytes",
        "namespace",
        "observe_only",
        "on_event",
        "on_oversize",
        "quota",
        "quota_in_check",
        "refuse_unread",
        "routes",
        "secret",
        "trusted",
    )

    def __init__(
        self,
        *,
        routes: Mapping[str, str] | None,
        identify: Identify | None,
        trusted_proxies: Iterable[str] | str,
        max_body_bytes: int,
        on_oversize: str,
        body_timeout: float,
        observe_only: bool,
        rate_limit_headers: bool,
        on_event: OnEvent | None,
        secret: str | bytes | None,
        check_timeout: float = DEFAULT_CHECK_TIMEOUT,
        proxy_header: str = "x-forwarded-for",
        expose_engine_limits: bool = False,
    ) -> None:
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 0:
            raise ValueError(f"max_body_bytes must be a non-negative integer, got {max_body_bytes!r}")
        if on_oversize not in ("refuse", "pass"):
            raise ValueError(f"on_oversize must be 'refuse' or 'pass', got {on_oversize!r}")
        if isinstance(body_timeout, bool) or not isinstance(body_timeout, (int, float)):
            raise ValueError(f"body_timeout must be a number of seconds, got {body_timeout!r}")
        if not (math.isfinite(body_timeout) and body_timeout > 0):
            raise ValueError(f"body_timeout must be positive and finite, got {body_timeout!r}")
        if isinstance(check_timeout, bool) or not isinstance(check_timeout, (int, float)):
            raise ValueError(f"check_timeout must be a number of seconds, got {check_timeout!r}")
        if not (math.isfinite(check_timeout) and check_timeout > 0):
            raise ValueError(f"check_timeout must be positive and finite, got {check_timeout!r}")
        if identify is not None and not callable(identify):
            raise ValueError("identify must be a callable taking a RequestView")
        check_sync_callable(
            identify, "identify", "it returns the account for a RequestView (do async lookups in your auth)"
        )
        if on_event is not None and not callable(on_event):
            raise ValueError("on_event must be a callable taking a GuardrailEvent")
        if secret is not None and not isinstance(secret, (str, bytes)):
            raise ValueError("secret must be str or bytes")
        self.routes = RouteTable(routes)
        self.trusted = TrustedProxies(trusted_proxies, header=proxy_header)
        self.identify = identify
        self.max_body_bytes = max_body_bytes
        self.on_oversize: OnOversize = "refuse" if on_oversize == "refuse" else "pass"
        self.body_timeout = float(body_timeout)
        self.check_timeout = float(check_timeout)
        self.expose_engine_limits = bool(expose_engine_limits)
        self.observe_only = bool(observe_only)
        #: Whether a body that could not be read whole (too large, bad length, stalled) is refused.
        #: Observe-only refuses nothing: such a request goes to the app uninspected, as without us.
        self.refuse_unread = self.on_oversize == "refuse" and not self.observe_only
        self.headers_on_allow = bool(rate_limit_headers)
        self.on_event = on_event
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        self.secret: bytes = secret if secret else default_secret()
        self._explicit_secret = bool(secret)
        #: The engine's key namespace (``AsyncGuard(namespace=...)``): the request quota's keys use it too.
        self.namespace = "gr"
        self.quota: RequestQuota | None = None
        #: Whether the quota's bucket rides in the guard's own limiter call (``check(..., extra=...)``)
        #: rather than a second call of its own.
        self.quota_in_check = False

    def adopt_guard(self, guard: object) -> None:
        """Take the engine guard's secret and namespace, so events, logs and the quota's keys hash an
        account as the engine and its reports do (a different ``secret=`` here is a mistake: refused)."""
        engine = getattr(guard, "core", None) if isinstance(guard, (Guard, AsyncGuard)) else None
        if isinstance(engine, EngineCore):
            if self._explicit_secret and engine.secret != self.secret:
                raise ValueError(
                    "secret= differs from the guard's own secret: pass it to the guard only "
                    "(AsyncGuard(..., secret=...)), so every hash of an account is the same"
                )
            self.secret = engine.secret
            self.namespace = engine.namespace

    def attach_quota(self, account_rpm: float | None, guard: object) -> None:
        """Enforce ``account_rpm`` on the guard's limiter (its store and failure policy), if any."""
        self.quota, self.quota_in_check = quota_for(account_rpm, guard, self.secret, self.namespace)

    # -- identity ---------------------------------------------------------------------------------

    def who(
        self,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        peer: str | None,
        provider: str = "openai",
    ) -> tuple[str, str | None]:
        """``(account, client ip)``: the user callable's account, else the API key, else the address."""
        ip = self.client_ip(peer, headers)
        account: str | None = None
        if self.identify is not None:
            view = RequestView(method, path, query, tuple(headers), ip)
            try:
                account = self.identify(view)
            except Exception as exc:  # its message may quote the request: every value it saw is masked
                # (a custom header such as x-user-token is as secret as the standard credentials).
                values = [value for _, value in headers]
                values += [part for value in values for part in value.split()]
                values += [part.partition("=")[2] for part in query.split("&")]
                log_failure("identify callable raised; using the API key", exc, (*values, ip))
                account = None
            if type(account) is not str and inspect.isawaitable(account):  # an async identify after all
                if inspect.iscoroutine(account):
                    account.close()
                logger.warning("guardrail identify callable returned an awaitable; using the API key")
                account = None
            if account is not None and not isinstance(account, str):
                account = str(account)
        if not account:
            # Azure OpenAI reads its ``api-key`` header before Authorization on its deployment paths (not
            # on ``/openai/v1/``: other OpenAI-compatible gateways serve that path and read Authorization
            # only, where ``api-key`` first would let a rotating decoy in).
            if provider == "openai" and "/openai/deployments/" in path.lower():  # routes match case-blind
                provider = "azure"
            account = api_key(headers, query, provider)
        return (account or by_address(ip)), ip

    def client_ip(self, peer: str | None, headers: list[tuple[str, str]]) -> str | None:
        """The client's address: the socket peer, or what the trusted proxies say it is."""
        return self.trusted.client_ip(peer, headers) if self.trusted else peer

    @staticmethod
    def facts(account: str, ip: str | None, path: str, body: bytes | None) -> RequestFacts:
        return RequestFacts(account=account, ip=ip, path=path, body=body)

    def ambiguous(
        self, path: str, provider: str, headers: list[tuple[str, str]], peer: str | None
    ) -> tuple[str, str | None]:
        """A request with several different ``key`` query values: a ``bad_credentials`` event, refused
        with 400 by the caller; in observe-only mode counted by its client address instead (logged, and
        its one event the one the request ends with)."""
        ip = self.client_ip(peer, headers)
        if self.observe_only:
            logger.info("guardrail observed several different 'key' values on %s; counted by address", path)
        else:
            self.event(
                path=path, provider=provider, account=None, ip=ip, outcome="bad_credentials", status=400
            )
        return by_address(ip), ip

    # -- verdict ----------------------------------------------------------------------------------

    def verdict(
        self, decision: Decision, provider: Provider, quota: MultiResult | None = None
    ) -> Refusal | None:
        """The refusal to send for this decision, or ``None`` to let the request through."""
        if self.observe_only or decision.action == Action.ALLOW:
            return None
        if decision.action == Action.BLOCK:
            return refusal(provider, 403)
        if quota is not None and not quota.allowed:
            # The quota's own figures, its wait too: ``decision.limit``, ``retry_after`` etc. describe the
            # tightest or longest-waiting bucket overall, which may be an engine bucket refusing as well.
            return refusal(
                provider,
                429,
                retry_after=quota.retry_after,
                limit=quota.limit,
                reset_after=quota.reset_after,
                unit="requests",
            )
        # The engine's buckets (an account's or a flagged cluster's shared one) would tell a client when
        # detection changed its limits: their figures are shown only when explicitly exposed. With a
        # quota, whose headers every answer carries, the refusal is worn as a spent quota's, headers and
        # wait alike: a 429 without them, or with a wait no quota gives, would set a flagged account's
        # refusals apart from a quota's.
        if self.quota is not None and not self.expose_engine_limits:
            limit = self.quota.limit
            return spent_quota(provider, limit.rate, limit.burst, decision.retry_after)
        return refusal(
            provider,
            429,
            retry_after=decision.retry_after,
            limit=decision.limit if self.expose_engine_limits else None,
            reset_after=decision.reset_after,
            unit="tokens",
        )

    def allow_headers(self, decision: Decision, quota: MultiResult | None = None) -> Headers:
        """Rate-limit headers for an allowed response: the request quota's if any, else (only when
        ``expose_engine_limits``) the engine's, whose appearance would reveal a flagged cluster."""
        if not self.headers_on_allow:
            return []
        if quota is not None and quota.results:
            return rate_limit_headers(quota.limit, quota.remaining, quota.reset_after, "requests")
        if decision.limit is None or not self.expose_engine_limits:
            return []
        return rate_limit_headers(decision.limit, decision.remaining, decision.reset_after, "tokens")

    # -- events -----------------------------------------------------------------------------------

    def wants_event(self, outcome: str) -> bool:
        """Whether building an event is worth it (a hook, a refusal, or debug logging)."""
        if self.on_event is not None or outcome != "allowed":
            return True
        return logger.isEnabledFor(logging.DEBUG)

    def event(
        self,
        *,
        path: str,
        provider: str,
        account: str | None,
        ip: str | None,
        outcome: str,
        decision: Decision | None = None,
        status: int | None = None,
        error: str | None = None,
        note: str | None = None,
    ) -> None:
        """Build and emit one event (identifiers hashed with the deployment secret); ``note``: a reason of
        the adapter's own, after the engine's."""
        if not self.wants_event(outcome):
            return
        action = would = None
        retry_after = 0.0
        reasons: tuple[str, ...] = ()
        evidence: Mapping[str, Any] = {}
        if decision is not None:
            action = str(Action(decision.action).value)
            would = str(Action(decision.would_action).value)
            retry_after = decision.retry_after
            reasons = tuple(decision.reasons)
            evidence = decision.evidence
        if note is not None:
            reasons = (*reasons, note)
        emit(
            GuardrailEvent(
                ts=time.time(),
                path=path,
                provider=provider,
                account=hash_identifier(account, self.secret, namespace="account") if account else None,
                ip=hash_identifier(ip, self.secret, namespace="ip") if ip else None,
                outcome=outcome,
                action=action,
                would_action=would,
                status=status,
                retry_after=retry_after,
                reasons=reasons,
                evidence=evidence,
                error=error,
            ),
            self.on_event,
        )

    def passed(self, body: str, decision: Decision) -> tuple[str, int | None, str | None]:
        """``(outcome, status, note)`` of the event of a request passed on to the app; ``body``: how its
        read (or decoding) ended. A body that failed a check enforcing would refuse on, in observe-only
        mode: ``observed``, with the status enforcing would send (413 / 400 / 408 / 415 / 503) and why; one
        passed without inspection: ``passed_uninspected``, also a coding not undone (the engine read the
        bytes as they came, which is seldom a prompt) and one not inflated in time (decided without its
        prompt), unless the engine would have refused it anyway; else the engine's outcome."""
        if body == "complete":
            return self.outcome(decision, None), None, None
        code = _UNREAD_STATUS.get(body)
        if self.observe_only and code is not None and (body == "timeout" or self.on_oversize == "refuse"):
            return "observed", code, f"body {body.replace('_', ' ')}: would be refused with {code}"
        note = _UNREAD_NOTES.get(body)
        if note is not None:
            outcome = self.outcome(decision, None)
            return ("passed_uninspected" if outcome == "allowed" else outcome), None, note
        return "passed_uninspected", None, None

    def outcome(self, decision: Decision, refused: Refusal | None) -> str:
        if refused is not None:
            return _OUTCOME.get(Action(decision.action), "throttled")
        if decision.action != Action.ALLOW or decision.would_action != Action.ALLOW:
            return "observed"
        return "allowed"
