"""Prometheus metrics and the operator's own health endpoints.

One small aiohttp server on the operator's metrics port serves ``/metrics``,
``/healthz`` (liveness: fails when the event loop is stuck, or when the watch
has missed changes the API server holds for longer than ``--watch-stale-after``)
and ``/readyz``. Metric
labels carry namespace, name, condition, dimension and check id: never a value
read from a Secret. Every series of a resource is recorded as it is created, so
``forget`` removes all of them, whatever the metric, when the resource is gone
(a deleted resource leaves no series behind). The registry is per instance, not prometheus_client's
global one, so tests can run several operators in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase as Metric

from payscope_operator.api import conditions as api_conditions
from payscope_operator.api import status

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass
class Metrics:
    """Every metric the operator exports."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.reconcile_seconds = Histogram(
            "payscope_reconcile_duration_seconds",
            "Duration of one reconcile pass.",
            ["namespace", "name"],
            registry=r,
            buckets=_BUCKETS,
        )
        self.audit_seconds = Histogram(
            "payscope_audit_duration_seconds",
            "Duration of one audit.",
            ["namespace", "name"],
            registry=r,
            buckets=_BUCKETS,
        )
        self.errors = Counter(
            "payscope_reconcile_errors_total",
            "Passes or stages that failed.",
            ["namespace", "name", "stage"],
            registry=r,
        )
        self.condition = Gauge(
            "payscope_condition",
            "1 for the current status of each condition.",
            ["namespace", "name", "type", "status", "reason"],
            registry=r,
        )
        self.check = Gauge(
            "payscope_check_result",
            "1 for the current result of each audit check.",
            ["namespace", "name", "check", "dimension", "severity", "status"],
            registry=r,
        )
        self.score = Gauge(
            "payscope_dimension_score",
            "Readiness score (0-100) per dimension.",
            ["namespace", "name", "dimension"],
            registry=r,
        )
        self.transitions_total = Counter(
            "payscope_condition_transitions_total",
            "Condition status or reason changes.",
            ["namespace", "name"],
            registry=r,
        )
        self.last_audit = Gauge(
            "payscope_audit_last_run_timestamp_seconds",
            "Unix time the last audit of a resource finished.",
            ["namespace", "name"],
            registry=r,
        )
        self.last_event = Gauge(
            "payscope_watch_last_event_timestamp_seconds", "Unix time the last watch event arrived.", registry=r
        )
        self.watch_stale = Gauge(
            "payscope_watch_stale_resources",
            "Resources whose version on the API server the watch has not delivered (two checks in a row).",
            registry=r,
        )
        self.changes = Counter(
            "payscope_provisioning_changes_total",
            "Changes applied to external systems (create, update, replace, drop).",
            ["namespace", "name", "system", "verb"],
            registry=r,
        )
        self.drift = Counter(
            "payscope_drift_corrections_total",
            "Applied changes that corrected an out-of-band change to an object the operator manages.",
            ["namespace", "name", "system"],
            registry=r,
        )
        self.shard = Gauge(
            "payscope_operator_shard",
            "1, labelled with this process's shard and the number of shards sharing the resources.",
            ["shard", "total"],
            registry=r,
        )
        self.tasks = Gauge(
            "payscope_operator_asyncio_tasks",
            "asyncio tasks alive in the operator's event loop (a leak shows as growth under churn).",
            registry=r,
        )
        self.tasks.set_function(_tasks_alive)
        self._series: dict[tuple[str, str], list[tuple[Gauge, tuple[str, ...]]]] = {}
        self._owned: dict[tuple[str, str], set[tuple[Metric, tuple[str, ...]]]] = {}

    def set_shard(self, index: int, total: int) -> None:
        self.shard.labels(str(index), str(total)).set(1)

    def _child(self, metric: Metric, ns: str, name: str, *rest: str) -> Any:
        """The series of ``metric`` for one resource (recorded, so that ``forget`` can remove it)."""
        labels = (ns, name, *rest)
        self._owned.setdefault((ns, name), set()).add((metric, labels))
        return metric.labels(*labels)

    # reconciler.Observer
    def pass_finished(
        self, resource: object, result: status.PayScopeStatus, seconds: float, audit_seconds: float
    ) -> None:
        ns, name = _names(resource)
        self._child(self.reconcile_seconds, ns, name).observe(seconds)
        self._child(self.audit_seconds, ns, name).observe(audit_seconds)
        self._child(self.last_audit, ns, name).set(time.time())
        self._replace_series(ns, name, result)

    def transitions(self, resource: object, changed: int) -> None:
        if changed:
            self._child(self.transitions_total, *_names(resource)).inc(changed)

    def provisioned(self, resource: object, applied: Sequence[object]) -> None:
        """Count the changes a pass applied (``backends.base.Action``: system, verb, drift)."""
        ns, name = _names(resource)
        for action in applied:
            system = str(getattr(action, "system"))  # noqa: B009 - duck-typed: telemetry does not import backends
            self._child(self.changes, ns, name, system, str(getattr(action, "verb"))).inc()  # noqa: B009
            if getattr(action, "drift", False):
                self._child(self.drift, ns, name, system).inc()

    def error(self, resource: object, stage: str) -> None:
        self._child(self.errors, *_names(resource), stage).inc()

    def forget(self, resource: object) -> None:
        """Remove every series of a resource that is gone, whatever the metric."""
        key = _names(resource)
        self._series.pop(key, None)
        for metric, labels in self._owned.pop(key, set()):
            with contextlib.suppress(KeyError):  # already replaced by a later pass
                metric.remove(*labels)

    def series_of(self, namespace: str, name: str) -> int:
        """How many series the operator exports for one resource (tests and benchmarks read it)."""
        return len(self._owned.get((namespace, name), ()))

    def _replace_series(self, ns: str, name: str, result: status.PayScopeStatus) -> None:
        series: list[tuple[Gauge, tuple[str, ...]]] = []
        for cond in result.conditions:
            series.append((self.condition, (ns, name, cond.type, cond.status.value, cond.reason)))
        for check in result.checks:
            series.append(
                (self.check, (ns, name, check.id, check.dimension.value, check.severity.value, check.status.value))
            )
        if result.dimensions is not None:
            for dimension in api_conditions.Dimension:
                summary = result.dimensions.get(dimension)
                if summary is not None:
                    self._child(self.score, ns, name, dimension.value).set(summary.score)
        old = set(self._series.get((ns, name), []))
        owned = self._owned.setdefault((ns, name), set())
        for gauge, labels in old - set(series):
            gauge.remove(*labels)
            owned.discard((gauge, labels))
        for gauge, labels in series:
            self._child(gauge, *labels).set(1)
        self._series[(ns, name)] = series


def _tasks_alive() -> float:
    """Tasks of the running loop (read at scrape time, on the loop); 0 outside one."""
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:
        return 0.0


def _names(resource: object) -> tuple[str, str]:
    """(namespace, name) of a duck-typed resource snapshot (telemetry does not import reconcile)."""
    return str(getattr(resource, "namespace")), str(getattr(resource, "name"))  # noqa: B009


@dataclass
class Health:
    """Liveness: the event loop answers, and the watch has not missed changes for too long.

    A quiet watch is normal (kopf resumes watching from the last resourceVersion and
    an unchanged resource sends nothing), so silence alone proves nothing. Instead,
    ``compare`` is fed, every ``--watch-check-interval`` (a minute by default), the
    resourceVersions the API server lists; when some resource's version on the server
    differs from what the watch delivered on two comparisons in a row, the watch is
    stale, and after ``max_stale`` seconds of that (``--watch-stale-after``, two
    minutes by default) ``/healthz`` fails so the kubelet restarts the operator.
    """

    max_stale: float = 120.0
    stale_since: float | None = None
    _suspects: frozenset[str] = frozenset()
    stale: frozenset[str] = frozenset()

    def compare(self, server: dict[str, str], seen: dict[str, str | None], now: float | None = None) -> None:
        """Record which resources the watch lags behind (uid -> resourceVersion on each side)."""
        moment = time.monotonic() if now is None else now
        differing = frozenset(uid for uid, version in server.items() if seen.get(uid) != version)
        self.stale = differing & self._suspects  # differing twice in a row: not just in flight
        self._suspects = differing
        if not self.stale:
            self.stale_since = None
        elif self.stale_since is None:
            self.stale_since = moment

    def problem(self, now: float | None = None) -> str | None:
        moment = time.monotonic() if now is None else now
        if self.stale_since is not None and moment - self.stale_since > self.max_stale:
            return f"the watch has missed changes to {len(self.stale)} resource(s) for {moment - self.stale_since:.0f}s"
        return None


def make_app(metrics: Metrics, health: Health) -> web.Application:
    async def serve_metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        problem = health.problem()
        return web.json_response(
            {"status": "fail", "reason": problem} if problem else {"status": "ok"}, status=500 if problem else 200
        )

    async def readyz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
