"""A change the watch did not deliver is acted on from the periodic list, and only such a change.

After an outage a renewed watch may stay silent until kopf gives it up; the operator's
own list of PayScopeDeployments then hands the scheduler any resource whose generation it
has not seen, so the pass starts at once. A listed snapshot never replaces a newer or an
equal one the watch already delivered (the list may be older than the watch).
"""

from __future__ import annotations

import asyncio
from typing import Any

from payscope_operator import main, telemetry
from payscope_operator.reconcile import reconciler, scheduler
from payscope_operator.standalone import LocalCluster


def _item(uid: str, generation: int, version: str, name: str = "psd") -> dict[str, Any]:
    meta = {"namespace": "ns", "name": name, "uid": uid, "generation": generation, "resourceVersion": version}
    return {"metadata": meta, "spec": {"workloads": {"api": {"name": f"api-{generation}"}}}}


def _catch_up(sched: scheduler.Scheduler, items: list[dict[str, Any]]) -> list[str]:
    """Catch up from the items' metadata, reading whole items as the API server would; the names read."""
    read: list[str] = []

    async def reader(namespace: str, name: str) -> dict[str, Any] | None:
        read.append(name)
        return next((i for i in reversed(items) if i["metadata"]["name"] == name), None)

    asyncio.run(main._catch_up(sched, [i["metadata"] for i in items], reader))
    return read


def _scheduler_at(generation: int) -> scheduler.Scheduler:
    sched = scheduler.Scheduler(reconciler.Dependencies(cluster=LocalCluster(), observer=telemetry.Metrics()))
    sched.observe(reconciler.Resource("ns", "psd", "uid-1", generation, "10", {}, {}, None))
    entry = sched.entries["uid-1"]
    entry.handled_generation, entry.due = generation, 1e12  # handled: nothing due until the interval
    return sched


def test_a_newer_generation_found_by_listing_is_due_at_once() -> None:
    sched = _scheduler_at(1)
    assert _catch_up(sched, [_item("uid-1", 2, "20")]) == ["psd"]
    entry = sched.entries["uid-1"]
    assert (entry.resource.generation, entry.resource.spec, entry.due) == (
        2,
        {"workloads": {"api": {"name": "api-2"}}},
        0.0,
    )


def test_the_same_or_an_older_generation_changes_nothing() -> None:
    sched = _scheduler_at(3)
    before = sched.entries["uid-1"].resource
    assert _catch_up(sched, [_item("uid-1", 3, "35"), _item("uid-1", 2, "20")]) == []  # nothing read whole
    entry = sched.entries["uid-1"]
    assert entry.resource is before
    assert entry.due == 1e12


def test_a_resource_the_watch_never_delivered_is_scheduled() -> None:
    sched = _scheduler_at(1)
    _catch_up(sched, [_item("uid-2", 1, "40", name="late")])
    assert sched.entries["uid-2"].resource.name == "late"
    assert sched.entries["uid-2"].due == 0.0


def test_a_resource_deleted_and_created_again_meanwhile_is_left_to_the_watch() -> None:
    sched = _scheduler_at(1)
    listed = _item("uid-2", 1, "40", name="late")
    again = _item("uid-3", 1, "41", name="late")

    async def reader(namespace: str, name: str) -> dict[str, Any] | None:
        return again

    asyncio.run(main._catch_up(sched, [listed["metadata"]], reader))
    assert set(sched.entries) == {"uid-1"}
