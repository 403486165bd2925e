"""Prometheus metrics, an optional extra (``pip install -e '.[prometheus]'`` from a checkout).

``prometheus_client`` is imported lazily, when a ``Metrics`` is built: without it, every method is a no-op
and one line is logged, so code can always call ``metrics.observe_decision(...)`` without checking.

Metric names (``namespace`` defaults to ``guardrail``):

==========================================  =========  =====================================================
``guardrail_decisions_total``               counter    decisions, by ``action`` and ``route``
``guardrail_bucket_refusals_total``         counter    refusals, by the ``bucket`` that refused (account,
                                                       ip, template, cluster, ...)
``guardrail_clusters``                      gauge      clusters of linked accounts, by ``size`` band
``guardrail_clustered_accounts``            gauge      accounts in any cluster
``guardrail_largest_cluster_accounts``      gauge      accounts in the largest cluster
``guardrail_templates_tracked``             gauge      templates the index currently tracks
``guardrail_inspection_seconds``            histogram  time guardrail spent deciding one request
``guardrail_store_errors_total``            counter    state-store failures, by ``store``
==========================================  =========  =====================================================

Label values are bounded: routes beyond ``max_routes`` distinct values are counted as ``"other"``, so a
client cannot grow the series set by inventing paths.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from guardrail.report._events import as_mapping

__all__ = ["SIZE_BANDS", "Metrics"]

logger = logging.getLogger("guardrail.metrics")

SIZE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("2-4", 2, 4),
    ("5-19", 5, 19),
    ("20-99", 20, 99),
    ("100-999", 100, 999),
    ("1000+", 1000, None),
)
_LATENCY_BUCKETS = (
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
_BUCKET_KINDS = frozenset({"account", "ip", "template", "cluster", "subnet", "global"})


def _band(size: int) -> str | None:
    for name, low, high in SIZE_BANDS:
        if size >= low and (high is None or size <= high):
            return name
    return None


class Metrics:
    """Prometheus collectors for one guardrail deployment.

    ``registry`` defaults to ``prometheus_client.REGISTRY`` (what ``start_http_server`` and the usual
    ``/metrics`` handlers expose); pass a ``CollectorRegistry`` to keep them apart (tests, several guards).
    ``enabled`` is False when ``prometheus_client`` is not installed.
    """

    def __init__(self, *, registry: Any = None, namespace: str = "guardrail", max_routes: int = 50) -> None:
        if max_routes < 1:
            raise ValueError(f"max_routes must be >= 1, got {max_routes}")
        self.namespace = namespace
        self.max_routes = max_routes
        self._routes: set[str] = set()
        try:
            prom = importlib.import_module("prometheus_client")
        except ImportError:
            logger.warning(
                "prometheus_client is not installed: guardrail metrics are disabled "
                "(pip install prometheus-client: guardrail's 'prometheus' extra)"
            )
            self.enabled = False
            return
        self.enabled = True
        self.registry = prom.REGISTRY if registry is None else registry
        kw: dict[str, Any] = {"namespace": namespace, "registry": self.registry}
        self._decisions = prom.Counter(
            "decisions", "Decisions by action and route.", ["action", "route"], **kw
        )
        self._refusals = prom.Counter(
            "bucket_refusals", "Refusals by the bucket that refused.", ["bucket"], **kw
        )
        self._clusters = prom.Gauge("clusters", "Clusters of linked accounts by size band.", ["size"], **kw)
        self._clustered = prom.Gauge("clustered_accounts", "Accounts that belong to a cluster.", **kw)
        self._largest = prom.Gauge("largest_cluster_accounts", "Accounts in the largest cluster.", **kw)
        self._templates = prom.Gauge("templates_tracked", "Templates the index currently tracks.", **kw)
        self._latency = prom.Histogram(
            "inspection_seconds",
            "Time guardrail spent deciding one request.",
            buckets=_LATENCY_BUCKETS,
            **kw,
        )
        self._store_errors = prom.Counter("store_errors", "State-store failures by store.", ["store"], **kw)
        for name, _, _ in SIZE_BANDS:
            self._clusters.labels(name).set(0)

    def _route(self, route: str) -> str:
        if route in self._routes:
            return route
        if len(self._routes) < self.max_routes:
            self._routes.add(route)
            return route
        return "other"

    def observe_decision(
        self,
        *,
        action: str,
        route: str,
        seconds: float | None = None,
        refused_by: Iterable[str] = (),
    ) -> None:
        """Count one decision (``action`` is "allow" / "throttle" / "block"); time it; note who refused."""
        if not self.enabled:
            return
        self._decisions.labels(action, self._route(route)).inc()
        if seconds is not None and seconds >= 0:
            self._latency.observe(seconds)
        for bucket in refused_by:
            self._refusals.labels(bucket if bucket in _BUCKET_KINDS else "other").inc()

    def observe_inspection(self, seconds: float) -> None:
        """Time spent deciding one request, when it is measured apart from ``observe_decision``."""
        if self.enabled and seconds >= 0:
            self._latency.observe(seconds)

    def set_clusters(self, sizes: Iterable[int]) -> None:
        """The current clusters' sizes (accounts each); replaces the previous picture."""
        if not self.enabled:
            return
        counts = dict.fromkeys((name for name, _, _ in SIZE_BANDS), 0)
        total = largest = 0
        for size in sizes:
            band = _band(size)
            if band is None:
                continue
            counts[band] += 1
            total += size
            largest = max(largest, size)
        for name, n in counts.items():
            self._clusters.labels(name).set(n)
        self._clustered.set(total)
        self._largest.set(largest)

    def set_templates(self, count: int) -> None:
        if self.enabled:
            self._templates.set(count)

    def store_error(self, store: str = "redis") -> None:
        if self.enabled:
            self._store_errors.labels(store).inc()

    def on_event(self, event: Any) -> None:
        """An ``on_event`` hook for the middleware: counts the decision an adapter event carries.

        Accepts the adapter's event object or its ``as_dict()`` mapping. Events without an engine action
        (oversized bodies, disconnects) are not decisions and are skipped; ``"error"`` outcomes count as
        store errors, since that is how a failing store reaches the adapter.
        """
        if not self.enabled:
            return
        data = as_mapping(event)
        if str(data.get("kind", "")).startswith("cluster."):
            return  # cluster changes are counted from the table: see set_clusters
        if data.get("kind") == "decision":
            # The engine's own decision event (a non-allow); the route is not known at that level.
            self.observe_decision(action=str(data.get("action")), route="engine")
            return
        if data.get("outcome") == "error":
            self.store_error(str(data.get("store") or "unknown"))
        action = data.get("would_action") or data.get("action")
        if not action:
            return
        evidence = data.get("evidence") or {}
        if not isinstance(evidence, Mapping):
            evidence = {}
        refused_by = evidence.get("refused_by", ())
        if isinstance(refused_by, str):
            refused_by = (refused_by,)
        if not refused_by and data.get("outcome") in ("throttled", "blocked"):
            # The engine's decision says which bucket governed it: its cluster's, else the account's own.
            refused_by = ("cluster",) if evidence.get("cluster") else ("account",)
        seconds = data.get("inspection_seconds")
        self.observe_decision(
            action=str(action),
            route=str(data.get("path") or data.get("route") or ""),
            seconds=float(seconds) if isinstance(seconds, (int, float)) else None,
            refused_by=[str(b) for b in refused_by]
            if data.get("outcome") in ("throttled", "blocked")
            else (),
        )

    def observe_guard(self, guard: Any) -> None:
        """Refresh the cluster gauges from a guard's last re-clustering, and the templates gauge when its
        store can count them (a ``template_count()`` method); call it periodically or after ``recluster``."""
        if not self.enabled:
            return
        self.set_clusters(len(c.accounts) for c in getattr(guard, "clusters", ()))
        count = getattr(getattr(guard, "store", None), "template_count", None)
        if callable(count):
            self.set_templates(int(count()))

    def instrument(self, guard: Any) -> Any:
        """Wrap a ``Guard`` or ``AsyncGuard`` so every ``check`` is timed (``guardrail_inspection_seconds``)
        and every exception it raises is counted (``guardrail_store_errors_total``) before propagating.

        The wrapper has the guard's interface (other attributes pass through), so it goes wherever the
        guard would: ``Guardrail(app, guard=metrics.instrument(AsyncGuard(...)), on_event=metrics.on_event)``.
        """
        check = getattr(guard, "check", None)
        if not callable(check):
            raise TypeError(f"instrument() needs a Guard or AsyncGuard, got {type(guard).__name__}")
        if inspect.iscoroutinefunction(check):
            return _TimedAsyncGuard(guard, self)
        return _TimedGuard(guard, self)


def _store_of(guard: Any) -> str:
    store = type(getattr(guard, "store", None)).__name__.lower()
    return "redis" if "redis" in store else "memory" if "memory" in store else "unknown"


class _TimedGuard:
    """A ``Guard`` whose ``check`` feeds the latency histogram and the store-error counter."""

    def __init__(self, inner: Any, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def check(self, facts: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self._inner.check(facts)
        except Exception:
            self._metrics.store_error(_store_of(self._inner))
            raise
        finally:
            self._metrics.observe_inspection(time.perf_counter() - t0)


class _TimedAsyncGuard(_TimedGuard):
    """The ``AsyncGuard`` twin of ``_TimedGuard``."""

    async def check(self, facts: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await self._inner.check(facts)
        except Exception:
            self._metrics.store_error(_store_of(self._inner))
            raise
        finally:
            self._metrics.observe_inspection(time.perf_counter() - t0)
