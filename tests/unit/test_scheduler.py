"""The scheduler remembers what a pass wrote, so the next pass neither re-writes nor trips the lock.

The watch echoes each status write some time later; until then, the next pass
must start from the status and resourceVersion the write produced, or it would
diff against an old status and send a write the API server refuses (409).
Liveness, on the other hand, must keep comparing what the *watch* delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from payscope_operator import telemetry
from payscope_operator.kube import gateway
from payscope_operator.reconcile import reconciler, scheduler
from payscope_operator.standalone import LocalCluster


class CountingCluster(LocalCluster):
    def __init__(self) -> None:
        super().__init__()
        self.patches = 0
        self.reads = 0

    async def patch_status(
        self, ref: gateway.ObjectRef, changes: Mapping[str, Any], *, resource_version: str | None
    ) -> str | None:
        self.patches += 1
        return await super().patch_status(ref, changes, resource_version=resource_version)

    async def read_status(self, ref: gateway.ObjectRef) -> gateway.StoredStatus | None:
        self.reads += 1
        return await super().read_status(ref)


async def _two_passes() -> tuple[CountingCluster, scheduler.Entry, int]:
    cluster = CountingCluster()
    sched = scheduler.Scheduler(reconciler.Dependencies(cluster=cluster, observer=telemetry.Metrics()))
    sched.observe(reconciler.Resource("ns", "psd", "uid-1", 1, "0", {}, {}, None))
    entry = sched.entries["uid-1"]
    limit = asyncio.Semaphore(1)
    await sched._pass(entry, limit)
    after_first = cluster.patches
    await sched._pass(entry, limit)
    return cluster, entry, after_first


def test_the_next_pass_starts_from_what_the_last_one_wrote() -> None:
    cluster, entry, after_first = asyncio.run(_two_passes())
    assert after_first == 2  # Reconciling, then the pass's status
    assert cluster.patches == after_first  # the second pass found nothing to write
    assert cluster.reads == 0  # and never hit the lock
    assert entry.resource.resource_version == str(cluster.version)
    assert entry.resource.status is None  # kept packed beside it
    assert scheduler.unpack(entry.status) == cluster.status


def test_liveness_compares_the_watchs_version_not_the_writes() -> None:
    _, entry, _ = asyncio.run(_two_passes())
    assert entry.seen_version == "0"  # no watch event since: the writes' versions are not the watch's
