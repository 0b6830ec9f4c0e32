"""The status writer: when it writes, what it sends, and how a failed write is retried alone.

The decisions are table-tested on ``report`` (pure): each case starts from a
status the server holds and says whether the writer must write and which
top-level fields the merge patch carries. The writer's behaviour (409 re-read,
backoff, giving up, Events after the write) runs against the standalone CLI's
in-memory cluster, which keeps resourceVersions and refuses a stale one as the
API server does; ``tests/integration/test_status_writer.py`` repeats the
important cases against the real kube-apiserver.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from typing import Any, Literal

import pytest

from payscope_operator import errors, telemetry
from payscope_operator.api import conditions, status
from payscope_operator.backends import base
from payscope_operator.kube import gateway
from payscope_operator.reconcile import readiness, reconciler, report, status_writer
from payscope_operator.standalone import LocalCluster

T0 = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=1)
CS = status.ConditionStatus
R = conditions.Reason
REF = gateway.ObjectRef("ns", "psd", "uid-1", "1")


def check(check_id: str, state: status.CheckStatus = status.CheckStatus.PASS) -> status.CheckResult:
    return status.CheckResult(
        id=check_id, dimension=conditions.Dimension.of_check(check_id), status=state, severity=status.Severity.HIGH
    )


HEALTHY = tuple(check(f"{d.letter}.x.ok") for d in conditions.Dimension)
PROVISIONED = readiness.Provisioning(CS.TRUE, R.PROVISIONED, "ok")
TABLE = base.Plan("postgres", objects=(base.ObjectState("Table", "public.t", status.ProvisionState.READY),))


def draft(*checks: status.CheckResult, generation: int = 3, plans: tuple[base.Plan, ...] = (TABLE,)) -> report.Draft:
    results = checks or HEALTHY
    return report.Draft(readiness.Facts(generation, results, PROVISIONED), checks=results, plans=plans)


def held(d: report.Draft | None = None, at: datetime.datetime = T0) -> dict[str, Any]:
    """The wire form of the status ``d`` (healthy by default) produces, as the server would hold it."""
    return report.to_wire(report.build(d or draft(), previous=None, now=at))


def _with(raw: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    return {**raw, **changes}


def _respelled(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The same status with every timestamp written +00:00 instead of Z."""
    conds = [{**c, "lastTransitionTime": c["lastTransitionTime"].replace("Z", "+00:00")} for c in raw["conditions"]]
    return {**raw, "conditions": conds, "lastAuditTime": raw["lastAuditTime"].replace("Z", "+00:00")}


FAILING = draft(*HEALTHY, check("B.postgres.rls", status.CheckStatus.FAIL))

# (id, stored status, draft, expected top-level keys of the merge patch; None: no write)
DECISIONS: list[tuple[str, dict[str, Any] | None, report.Draft, set[str] | None]] = [
    ("unchanged a minute later: nothing to write (lastAuditTime alone never moves)", held(), draft(), None),
    ("same status spelled differently: nothing to write", _respelled(held()), draft(), None),
    (
        "no status yet: the whole status",
        None,
        draft(),
        {"observedGeneration", "conditions", "dimensions", "checks", "provisioned", "plan", "lastAuditTime"},
    ),
    (
        "the CRD's default status only: the rest is added",
        {"observedGeneration": -1},
        draft(),
        {"observedGeneration", "conditions", "dimensions", "checks", "provisioned", "plan", "lastAuditTime"},
    ),
    (
        "a check fails: only what changed, observedGeneration untouched",
        held(),
        FAILING,
        {"conditions", "dimensions", "checks", "lastAuditTime"},
    ),
    (
        "a new generation, same results: observedGeneration and conditions",
        held(),
        draft(generation=4),
        {"observedGeneration", "conditions", "lastAuditTime"},
    ),
    ("provisioning no longer reported: removed with null", held(), draft(plans=()), {"provisioned", "lastAuditTime"}),
    (
        "a status this version cannot read is rewritten: the unknown field removed, transitions start anew",
        _with(held(), retiredField="x"),
        draft(),
        {"retiredField", "conditions", "checks", "lastAuditTime"},  # checks: each one's since starts anew too
    ),
]


@pytest.mark.parametrize(("stored", "new", "expected"), [c[1:] for c in DECISIONS], ids=[c[0] for c in DECISIONS])
def test_what_the_writer_sends(stored: dict[str, Any] | None, new: report.Draft, expected: set[str] | None) -> None:
    parsed = report.parse(stored)
    candidate = report.build(new, previous=parsed, now=T1)
    patch = report.changes(stored, parsed, candidate)
    if expected is None:
        assert patch is None
        return
    assert patch is not None
    assert set(patch) == expected
    assert report.apply_merge_patch(stored, patch) == report.to_wire(candidate)  # the server ends with exactly it


def test_a_removed_key_is_sent_as_null() -> None:
    patch = report.changes(held(), report.parse(held()), report.build(draft(plans=()), previous=None, now=T0))
    assert patch is not None
    assert patch["provisioned"] is None


def test_a_nested_change_sends_only_the_changed_branch() -> None:
    assert report.merge_patch({"a": {"x": 1, "y": 2}, "b": [1]}, {"a": {"x": 1, "y": 3}, "b": [1]}) == {"a": {"y": 3}}
    assert report.merge_patch({"b": [1, 2]}, {"b": [2]}) == {"b": [2]}  # lists are replaced whole


def test_a_newer_generations_status_is_never_overwritten_by_an_older_pass() -> None:
    newer = report.parse(held(draft(generation=5)))
    assert report.superseded(newer, draft(generation=4))
    assert not report.superseded(newer, draft(generation=5))
    assert not report.superseded(None, draft(generation=1))


# The writer against the in-memory cluster.


class Cluster(LocalCluster):
    """The in-memory cluster, recording every call in order, optionally failing some."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[str] = []
        self.failures: list[errors.PayScopeError] = []  # raised by the next patches, in order
        self.apply_then_fail = False  # the failing patch reaches the server anyway (a timeout after the write)
        self.event_failure: errors.PayScopeError | None = None

    async def read_status(self, ref: gateway.ObjectRef) -> gateway.StoredStatus | None:
        self.calls.append("read")
        return await super().read_status(ref)

    async def patch_status(
        self, ref: gateway.ObjectRef, changes: Mapping[str, Any], *, resource_version: str | None
    ) -> str | None:
        self.calls.append("patch")
        if self.failures:
            failure = self.failures.pop(0)
            if self.apply_then_fail:
                await super().patch_status(ref, changes, resource_version=resource_version)
            raise failure
        return await super().patch_status(ref, changes, resource_version=resource_version)

    async def post_event(
        self, ref: gateway.ObjectRef, *, kind: Literal["Normal", "Warning"], reason: str, message: str, action: str = ""
    ) -> None:
        self.calls.append(f"event:{reason}")
        if self.event_failure is not None:
            raise self.event_failure
        await super().post_event(ref, kind=kind, reason=reason, message=message, action=action)


def writer_for(
    cluster: Cluster, stored: dict[str, Any] | None, version: str
) -> tuple[status_writer.StatusWriter, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    backoff = status_writer.Backoff(first=0.5, factor=2.0, cap=4.0, attempts=5, jitter=0.0)
    ref = gateway.ObjectRef("ns", "psd", "uid-1", version)
    return status_writer.StatusWriter(cluster, ref, stored, backoff=backoff, sleep=sleep), slept


def _server(stored: dict[str, Any] | None, version: int) -> Cluster:
    cluster = Cluster()
    cluster.status, cluster.version = stored, version
    return cluster


def test_a_stale_resource_version_is_reread_and_the_write_converges() -> None:
    cluster = _server(held(), 7)  # someone wrote since the snapshot at version 5
    writer, slept = writer_for(cluster, held(), "5")
    published = asyncio.run(writer.publish(FAILING, now=T1))
    assert published.written
    assert cluster.calls[:3] == ["patch", "read", "patch"]
    assert cluster.status == report.to_wire(published.status)
    assert writer.resource_version == "8"
    assert slept == []  # the first conflict is re-read at once


def test_a_conflict_with_the_status_already_there_writes_nothing() -> None:
    target = report.to_wire(report.build(FAILING, previous=report.parse(held()), now=T1))
    cluster = _server(target, 7)  # another writer already wrote exactly this
    writer, _ = writer_for(cluster, held(), "5")
    published = asyncio.run(writer.publish(FAILING, now=T1))
    assert not published.written
    assert cluster.calls == ["patch", "read"]
    assert cluster.version == 7


def test_an_unchanged_status_sends_nothing_at_all() -> None:
    cluster = _server(held(), 5)
    writer, _ = writer_for(cluster, held(), "5")
    published = asyncio.run(writer.publish(draft(), now=T1))
    assert not published.written
    assert cluster.calls == []


def test_a_failed_write_is_retried_alone_with_exponential_backoff() -> None:
    cluster = _server(held(), 5)
    cluster.failures = [errors.DependencyUnavailable("HTTP 503"), errors.DependencyUnavailable("timed out")]
    writer, slept = writer_for(cluster, held(), "5")
    published = asyncio.run(writer.publish(FAILING, now=T1))
    assert published.written
    assert cluster.calls[:3] == ["patch", "patch", "patch"]
    assert slept == [0.5, 1.0]
    assert cluster.status == report.to_wire(published.status)


def test_a_write_that_landed_before_failing_is_found_by_the_retry_and_announced_once() -> None:
    cluster = _server(held(), 5)
    cluster.failures, cluster.apply_then_fail = [errors.DependencyUnavailable("read timed out")], True
    writer, _ = writer_for(cluster, held(), "5")
    published = asyncio.run(writer.publish(FAILING, now=T1))
    assert published.written
    assert [c for c in cluster.calls if not c.startswith("event")] == ["patch", "patch", "read"]
    assert cluster.version == 6  # written once
    assert [e[1] for e in cluster.events].count("ChecksFailing") == 2  # DataLayerReady and Ready, once each


def test_a_write_that_keeps_failing_is_given_up_after_the_attempts_and_says_why() -> None:
    cluster = _server(held(), 5)
    cluster.failures = [errors.DependencyUnavailable("HTTP 500")] * 10
    writer, slept = writer_for(cluster, held(), "5")
    writer.note("Normal", "DriftCorrected", "restored a constraint")
    published = asyncio.run(writer.publish(FAILING, now=T1))
    assert not published.written
    assert published.failure == "HTTP 500"
    assert cluster.calls.count("patch") == 5
    assert slept == [0.5, 1.0, 2.0, 4.0, 4.0]  # capped
    assert cluster.calls[-1] == "event:DriftCorrected"  # what the pass did is still told


def test_rate_limiting_waits_at_least_as_long_as_the_server_asks() -> None:
    cluster = _server(held(), 5)
    cluster.failures = [errors.RateLimited("HTTP 429", delay=3.0)]
    writer, slept = writer_for(cluster, held(), "5")
    assert asyncio.run(writer.publish(FAILING, now=T1)).written
    assert slept == [3.0]


def test_a_permission_problem_is_not_retried() -> None:
    cluster = _server(held(), 5)
    cluster.failures = [errors.PermissionDenied("HTTP 403")]
    writer, slept = writer_for(cluster, held(), "5")
    published = asyncio.run(writer.publish(FAILING, now=T1))
    assert (published.written, published.failure) == (False, "HTTP 403")
    assert cluster.calls.count("patch") == 1
    assert slept == []


def test_events_follow_the_write_and_a_failing_event_never_aborts() -> None:
    cluster = _server(held(), 5)
    cluster.event_failure = errors.DependencyUnavailable("events refused")
    writer, _ = writer_for(cluster, held(), "5")
    writer.note("Warning", "WaiverExpired", "a waiver expired")
    published = asyncio.run(writer.publish(FAILING, now=T1))
    assert published.written
    assert cluster.calls[0] == "patch"
    assert cluster.calls[1:] == ["event:ChecksFailing", "event:ChecksFailing", "event:WaiverExpired"]


def test_the_resource_gone_ends_the_write_quietly() -> None:
    class Gone(Cluster):
        async def read_status(self, ref: gateway.ObjectRef) -> gateway.StoredStatus | None:
            self.calls.append("read")
            return None

    cluster = Gone()
    cluster.status, cluster.version = held(), 9
    writer, _ = writer_for(cluster, held(), "5")
    published = asyncio.run(writer.publish(FAILING, now=T1))
    assert (published.written, published.failure) == (False, "the resource is gone")


def test_a_pass_whose_write_fails_once_runs_its_audit_once() -> None:
    cluster = Cluster()
    cluster.failures = [errors.DependencyUnavailable("HTTP 503")]
    metrics = telemetry.Metrics()
    deps = reconciler.Dependencies(
        cluster=cluster, observer=metrics, backoff=status_writer.Backoff(first=0.01, jitter=0.0)
    )
    resource = reconciler.Resource("ns", "psd", "uid-1", 1, None, {}, {}, None)
    result = asyncio.run(reconciler.reconcile(deps, resource, now=T0))
    assert result.written
    passes = metrics.registry.get_sample_value(
        "payscope_reconcile_duration_seconds_count", {"namespace": "ns", "name": "psd"}
    )
    assert passes == 1
    assert cluster.calls.count("patch") == 3  # Reconciling (failed once, then written), then the pass's status
    assert cluster.status == dict(result.stored or {})


def _announcement(generation: int = 3) -> report.Draft:
    facts = readiness.Facts(generation, (), reconciling=f"Reconciling generation {generation}.")
    return report.Draft(facts)


def test_the_first_status_over_the_announcement_posts_only_what_needs_attention() -> None:
    async def first_pass(cluster: Cluster) -> None:
        writer, _ = writer_for(cluster, None, "0")
        await writer.publish(_announcement(), now=T0, placeholder=True)
        await writer.publish(FAILING, now=T1)

    cluster = _server(None, 0)
    asyncio.run(first_pass(cluster))
    kinds = {(kind, reason) for kind, reason, _ in cluster.events}
    assert kinds, "the failing dimensions must be announced"
    assert all(kind == "Warning" for kind, _ in kinds), kinds  # not Reconciling=False, nor dimensions True

    # The same statuses, the first not a placeholder (a later generation's announcement): the good news is posted.
    cluster = _server(None, 0)

    async def later_pass() -> None:
        writer, _ = writer_for(cluster, None, "0")
        await writer.publish(_announcement(), now=T0)
        await writer.publish(FAILING, now=T1)

    asyncio.run(later_pass())
    assert any(kind == "Normal" for kind, _, _ in cluster.events)
