"""Prometheus metrics and the operator's own health endpoints.

One small aiohttp server on the operator's metrics port serves ``/metrics``,
``/healthz`` (liveness: fails when the event loop is stuck, or when the watch
has missed changes the API server holds for longer than ``--watch-stale-after``)
and ``/readyz``. Metric
labels carry namespace, name, condition, dimension and check id: never a value
read from a Secret. Every series of a resource lives in one compact record
(``resource_series``), rendered when scraped, so ``forget`` removes all of them,
whatever the metric, when the resource is gone (a deleted resource leaves no series
behind), and a thousand resources' series cost kilobytes each, not a client object
per series. A scrape renders in a thread, so a large one never stalls the event loop.
The registry is per instance, not prometheus_client's global one, so tests can run
several operators in one process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from payscope_operator import resource_series
from payscope_operator.api import conditions as api_conditions
from payscope_operator.api import status


@dataclass
class Metrics:
    """Every metric the operator exports."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.resources = resource_series.ResourceSeries()
        """Every per-resource series (checks, conditions, scores, durations, counters), rendered at scrape time."""
        r.register(self.resources)
        self.last_event = Gauge(
            "payscope_watch_last_event_timestamp_seconds", "Unix time the last watch event arrived.", registry=r
        )
        self.watch_stale = Gauge(
            "payscope_watch_stale_resources",
            "Resources whose version on the API server the watch has not delivered (two checks in a row).",
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

    async def render(self) -> bytes:
        """The exposition, rendered off the event loop (the task count is read on it first)."""
        self.tasks.set(len(asyncio.all_tasks()))
        return await asyncio.to_thread(generate_latest, self.registry)

    def set_shard(self, index: int, total: int) -> None:
        self.shard.labels(str(index), str(total)).set(1)

    # reconciler.Observer
    def pass_finished(
        self, resource: object, result: status.PayScopeStatus, seconds: float, audit_seconds: float
    ) -> None:
        series = self.resources.of(*_names(resource))
        series.reconcile = series.reconcile or resource_series.Histogram()
        series.reconcile.observe(seconds)
        series.audit = series.audit or resource_series.Histogram()
        series.audit.observe(audit_seconds)
        series.last_audit = time.time()
        shared = self.resources.shared_all
        series.conditions = shared([(c.type, c.status.value, c.reason) for c in result.conditions])
        series.checks = shared([(c.id, c.dimension.value, c.severity.value, c.status.value) for c in result.checks])
        if result.dimensions is not None:
            scores = ((d.value, result.dimensions.get(d)) for d in api_conditions.Dimension)
            series.scores = tuple((d, float(s.score)) for d, s in scores if s is not None)

    def transitions(self, resource: object, changed: int) -> None:
        if changed:
            self.resources.of(*_names(resource)).transitions += changed

    def provisioned(self, resource: object, applied: Sequence[object]) -> None:
        """Count the changes a pass applied (``backends.base.Action``: system, verb, drift)."""
        if not applied:
            return
        series = self.resources.of(*_names(resource))
        for action in applied:
            system = str(getattr(action, "system"))  # noqa: B009 - duck-typed: telemetry does not import backends
            key = (system, str(getattr(action, "verb")))  # noqa: B009
            series.changes[key] = series.changes.get(key, 0.0) + 1
            if getattr(action, "drift", False):
                series.drift[system] = series.drift.get(system, 0.0) + 1

    def error(self, resource: object, stage: str) -> None:
        series = self.resources.of(*_names(resource))
        series.errors[stage] = series.errors.get(stage, 0.0) + 1

    def forget(self, resource: object) -> None:
        """Remove every series of a resource that is gone, whatever the metric."""
        self.resources.forget(*_names(resource))

    def series_of(self, namespace: str, name: str) -> int:
        """How many series the operator exports for one resource (tests and benchmarks read it)."""
        found = self.resources.records.get((namespace, name))
        return found.count() if found is not None else 0


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
        return web.Response(body=await metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

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
