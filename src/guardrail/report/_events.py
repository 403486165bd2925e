"""Structured JSON events for operators: one per decision that is not a plain allow, one per cluster change.

``JsonEvents`` is an ``on_event`` hook for the middleware (it accepts the adapter's event objects or plain
mappings) and also takes cluster changes from whoever recomputes clusters. Each event becomes one JSON
object, logged on the ``guardrail.events`` logger (``JsonFormatter`` prints it as one line) and handed to
an optional user hook as a dict.

Identifiers in events are keyed hashes only: a value under an identifier key that is not already a
32-hex digest is hashed here with the deployment secret before it leaves, so a caller's mistake cannot
put a raw API key into a log.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from guardrail._hashing import default_secret, hash_identifier

__all__ = ["EVENT_LOGGER", "JsonEvents", "JsonFormatter", "as_mapping"]

EVENT_LOGGER = "guardrail.events"
_DIGEST = re.compile(r"^[0-9a-f]{32}$")
_ID_KEYS = frozenset({"account", "ip", "accounts"})
_PLAIN_ALLOW = frozenset({"allowed"})

UserHook = Callable[[dict[str, Any]], object]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "value") and isinstance(value.value, str):  # str enums such as Action
        return value.value
    return str(value)


def as_mapping(event: Any) -> Mapping[str, Any]:
    """An event as a mapping: the adapter's ``as_dict()``, a dataclass's fields, or a mapping as is."""
    if hasattr(event, "as_dict"):
        data: Mapping[str, Any] = event.as_dict()
        return data
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    if isinstance(event, Mapping):
        return event
    raise TypeError(f"an event must be a mapping, a dataclass or have as_dict(), got {type(event).__name__}")


class JsonEvents:
    """Turns decisions and cluster changes into JSON events (logger + optional ``hook``).

    ``include_allows`` also emits plain allows (noisy: one per request). ``secret`` keys the hashing of
    any identifier that arrives unhashed (default: ``GUARDRAIL_SECRET``).
    """

    def __init__(
        self,
        *,
        hook: UserHook | None = None,
        logger: logging.Logger | str = EVENT_LOGGER,
        level: int = logging.INFO,
        include_allows: bool = False,
        secret: bytes | str | None = None,
    ) -> None:
        self.hook = hook
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = level
        self.include_allows = include_allows
        raw = default_secret() if secret is None else secret
        self._secret = raw.encode() if isinstance(raw, str) else raw

    def _hashed(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._hashed(v) for v in value]
        text = str(value)
        return text if _DIGEST.match(text) else hash_identifier(text, self._secret, namespace="account")

    def _emit(self, event: dict[str, Any]) -> None:
        for key in _ID_KEYS & event.keys():
            event[key] = self._hashed(event[key])
        if self.logger.isEnabledFor(self.level):
            self.logger.log(self.level, "guardrail %s", event["event"], extra={"guardrail": event})
        if self.hook is not None:
            try:
                self.hook(event)
            except Exception:
                self.logger.exception("guardrail events hook raised; ignored")

    def __call__(self, event: Any) -> None:
        """An ``on_event`` hook for the middleware or the engine.

        Adapter events (``outcome``) and engine decision events become ``decision`` events unless they are
        a plain allow; engine cluster events (``kind`` "cluster.flagged" / "cluster.changed" /
        "cluster.cleared") become ``cluster`` events.
        """
        data = as_mapping(event)
        kind = data.get("kind")
        if isinstance(kind, str) and kind.startswith("cluster."):
            out = {"event": "cluster", "change": kind.split(".", 1)[1]}
            for key, value in data.items():
                if key != "kind":
                    out.setdefault(key, _jsonable(value))
            self._emit(out)
            return
        outcome = data.get("outcome") or data.get("action") or "unknown"
        if outcome in _PLAIN_ALLOW or (outcome == "allow" and data.get("would_action") in (None, "allow")):
            if not self.include_allows:
                return
        out = {"event": "decision", "ts": data.get("ts", time.time()), "outcome": _jsonable(outcome)}
        for key, value in data.items():
            if key not in out:
                out[key] = _jsonable(value)
        self._emit(out)

    def decision(self, data: Mapping[str, Any]) -> None:
        """Same as calling the instance with a mapping."""
        self(data)

    def cluster_changed(
        self,
        *,
        cluster: str,
        change: str,
        accounts: Iterable[str],
        score: float | None = None,
        templates: Iterable[str] = (),
        reasons: Iterable[str] = (),
        ts: float | None = None,
    ) -> None:
        """A cluster was formed, grew, shrank, merged or dissolved (``change``); accounts are hashed."""
        members = list(accounts)
        self._emit(
            {
                "event": "cluster",
                "ts": time.time() if ts is None else ts,
                "cluster": cluster,
                "change": change,
                "size": len(members),
                "accounts": members,
                "score": score,
                "templates": list(templates),
                "reasons": list(reasons),
            }
        )


class JsonFormatter(logging.Formatter):
    """Formats records that carry a ``guardrail`` event as that event's JSON (one line); others as JSON
    with the message, so a handler on the ``guardrail`` logger writes a clean JSON-lines stream."""

    def format(self, record: logging.LogRecord) -> str:
        payload = getattr(record, "guardrail", None)
        if isinstance(payload, Mapping):
            data = dict(_jsonable(payload))
        else:
            data = {"event": "log", "ts": record.created, "message": record.getMessage()}
        data.setdefault("level", record.levelname.lower())
        data.setdefault("logger", record.name)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)
