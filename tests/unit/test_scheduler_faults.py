"""What the scheduler does on a bad day: deadlines, backoff, superseded passes, forgetting, Secret recovery.

The scheduler runs for real (its own loop, real passes of the reconciler) against
the standalone CLI's in-memory cluster, with the policy's seconds scaled down so
each test takes a fraction of a second. Each test asserts what an operator would
see: how many passes ran and when, what was written, which Secrets were read,
which metric series exist.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import generate_latest
from pydantic import SecretStr

from payscope_operator import errors, telemetry
from payscope_operator.egress import policy
from payscope_operator.kube import gateway
from payscope_operator.reconcile import reconciler, scheduler
from payscope_operator.standalone import LocalCluster

FAST = scheduler.Policy(deadline=0.5, deadline_probes=0, failure_first=0.05, failure_cap=0.4, secret_first=0.05)
REDIS = {"redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}}}


class Cluster(LocalCluster):
    """The in-memory cluster, with faults a test switches on, and a record of what was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.secret_reads: list[str] = []
        self.patch_times: list[float] = []
        self.crash = False
        self.gone = False
        self.read_delay = 0.0
        self.forbidden: set[str] = set()

    async def read_secret(self, namespace: str, name: str) -> dict[str, SecretStr] | None:
        self.secret_reads.append(name)
        await asyncio.sleep(self.read_delay)
        if name in self.forbidden:
            raise errors.PermissionDenied(f"the operator may not read Secret {namespace}/{name} (HTTP 403)")
        return await super().read_secret(namespace, name)

    async def patch_status(
        self, ref: gateway.ObjectRef, changes: Mapping[str, Any], *, resource_version: str | None
    ) -> str | None:
        self.patch_times.append(time.monotonic())
        if self.crash:
            raise RuntimeError("a bug in the write path")
        if self.gone:
            return None
        return await super().patch_status(ref, changes, resource_version=str(self.version))


def _resource(generation: int = 1, spec: Mapping[str, Any] | None = None, interval: str = "1h") -> reconciler.Resource:
    full = {"audit": {"interval": interval, "probeTimeout": "1s"}, **(spec or {})}
    return reconciler.Resource("ns", "psd", "uid-1", generation, "1", {}, full, None)


@asynccontextmanager
async def _running(cluster: Cluster, metrics: telemetry.Metrics | None = None) -> AsyncIterator[scheduler.Scheduler]:
    loopback = policy.Policy.from_environment({"PAYSCOPE_ALLOWED_EGRESS": "127.0.0.1/32"})  # the specs' endpoints
    deps = reconciler.Dependencies(cluster=cluster, observer=metrics or telemetry.Metrics(), egress=loopback)
    sched = scheduler.Scheduler(deps, policy=FAST)
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop))
    try:
        yield sched
    finally:
        stop.set()
        await task


async def _until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_failing_passes_back_off_exponentially_and_a_new_generation_runs_at_once() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        cluster.crash = True
        async with _running(cluster) as sched:
            sched.observe(_resource(1, interval="10ms"))
            await _until(lambda: len(cluster.patch_times) >= 6, timeout=5)
            gaps = [b - a for a, b in zip(cluster.patch_times, cluster.patch_times[1:], strict=False)]
            assert min(gaps) >= 0.05  # never the 10 ms interval: failures back off ...
            assert gaps[2] > 1.5 * gaps[0]  # ... exponentially ...
            assert max(gaps) < FAST.failure_cap * 1.5  # ... up to the cap
            assert sched.entries["uid-1"].failures >= 5
            cluster.crash = False
            changed = time.monotonic()
            sched.observe(_resource(2, interval="10ms"))
            await _until(lambda: cluster.status is not None and cluster.status.get("observedGeneration") == 2)
            assert time.monotonic() - changed < FAST.failure_first * 2  # not after the backoff
            assert sched.entries["uid-1"].failures == 0

    asyncio.run(scenario())


def test_a_pass_over_its_deadline_is_cancelled_and_counted() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        cluster.secrets["redis"] = {"url": SecretStr("redis://127.0.0.1:1/0")}
        cluster.read_delay = 5.0
        metrics = telemetry.Metrics()
        async with _running(cluster, metrics) as sched:
            started = time.monotonic()
            sched.observe(_resource(1, REDIS))
            await _until(lambda: sched.entries["uid-1"].failures == 1, timeout=3)
            assert time.monotonic() - started < FAST.deadline + 0.3
        scraped = generate_latest(metrics.registry).decode()
        assert 'payscope_reconcile_errors_total{name="psd",namespace="ns",stage="deadline"} 1.0' in scraped

    asyncio.run(scenario())


def test_a_new_generation_cancels_the_pass_in_flight() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        cluster.secrets["redis"] = {"url": SecretStr("redis://127.0.0.1:1/0")}
        cluster.read_delay = 0.3
        async with _running(cluster) as sched:
            sched.observe(_resource(1, REDIS))
            await _until(lambda: len(cluster.secret_reads) == 1)
            changed = time.monotonic()
            cluster.read_delay = 0.0
            sched.observe(_resource(2, REDIS))
            await _until(lambda: cluster.status is not None and cluster.status.get("observedGeneration") == 2)
            assert time.monotonic() - changed < 0.25  # the first pass did not finish its 0.3 s read
            assert sched.entries["uid-1"].failures == 0  # a superseded pass is no failure

    asyncio.run(scenario())


def _series(metrics: telemetry.Metrics) -> list[str]:
    lines = generate_latest(metrics.registry).decode().splitlines()
    return [line for line in lines if not line.startswith("#") and 'name="psd"' in line]


def test_deleted_during_a_pass_forgets_everything_and_the_pass_recreates_nothing() -> None:
    async def scenario() -> None:
        cluster, metrics = Cluster(), telemetry.Metrics()
        async with _running(cluster, metrics) as sched:
            sched.observe(_resource(1))
            await _until(lambda: bool(_series(metrics)))
            metrics.error(_resource(1), "secrets")  # a counter too, not only the gauges of the status
            cluster.secrets["redis"] = {"url": SecretStr("redis://127.0.0.1:1/0")}
            cluster.read_delay = 0.2
            sched.observe(_resource(2, REDIS))
            await _until(lambda: "redis" in cluster.secret_reads)
            sched.deps.clients_of(_resource(2))  # a client cache kept for the resource
            sched.observe(_resource(2, REDIS), deleted=True)
            await _until(lambda: not sched.deps.clients and not _series(metrics))
            await asyncio.sleep(0.4)  # longer than the cancelled pass would have taken
            assert _series(metrics) == []
            assert metrics.series_of("ns", "psd") == 0
            assert "uid-1" not in sched.entries

    asyncio.run(scenario())


def test_a_404_on_the_status_write_forgets_the_resource() -> None:
    async def scenario() -> None:
        cluster, metrics = Cluster(), telemetry.Metrics()
        async with _running(cluster, metrics) as sched:
            sched.observe(_resource(1))
            await _until(lambda: bool(_series(metrics)))
            cluster.gone = True
            sched.observe(_resource(2))
            await _until(lambda: "uid-1" not in sched.entries and not _series(metrics))

    asyncio.run(scenario())


def test_stalled_on_a_missing_secret_rereads_just_it_with_backoff_and_recovers_at_once() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        cluster.secrets["other"] = {"x": SecretStr("y")}
        spec = {**REDIS, "neo4j": {"connection": {"uri": "bolt://127.0.0.1:1", "secretRef": {"name": "other"}}}}
        async with _running(cluster) as sched:
            sched.observe(_resource(1, spec))  # interval 1h: only the Secret re-reads can bring it back
            await _until(lambda: sched.entries["uid-1"].awaiting is not None)
            assert dict(sched.entries["uid-1"].awaiting or {}) == {
                "redis": frozenset({"url"}),
                "other": frozenset({"username", "password"}),
            }
            cluster.secrets["other"] = {"username": SecretStr("u"), "password": SecretStr("p")}
            reads = len(cluster.secret_reads)
            await asyncio.sleep(0.6)
            rereads = cluster.secret_reads[reads:]
            assert set(rereads) <= {"redis", "other"}  # only the Secrets it waits for
            assert 3 <= rereads.count("redis") <= 5  # 0.05, 0.1, 0.2, 0.4 s: doubling, not polling
            cluster.secrets["redis"] = {"url": SecretStr("redis://127.0.0.1:1/0")}
            appeared = time.monotonic()
            await _until(lambda: cluster.status is not None and not _stalled(cluster.status))
            assert time.monotonic() - appeared < 1.0  # the next re-read (0.8 s at most), then a pass

    asyncio.run(scenario())


def test_stalled_on_an_unreadable_secret_recovers_once_it_may_be_read() -> None:
    async def scenario() -> None:
        cluster = Cluster()
        cluster.secrets["redis"] = {"url": SecretStr("redis://127.0.0.1:1/0")}
        cluster.forbidden.add("redis")
        async with _running(cluster) as sched:
            sched.observe(_resource(1, REDIS))
            await _until(lambda: cluster.status is not None and _stalled(cluster.status) == "PermissionDenied")
            assert sched.entries["uid-1"].awaiting == {"redis": frozenset()}
            cluster.forbidden.clear()
            await _until(lambda: cluster.status is not None and not _stalled(cluster.status))

    asyncio.run(scenario())


def _stalled(stored: Mapping[str, Any]) -> str | None:
    """The Stalled condition's reason when it is True, else None."""
    for condition in stored.get("conditions", []):
        if condition["type"] == "Stalled" and condition["status"] == "True":
            return str(condition["reason"])
    return None
