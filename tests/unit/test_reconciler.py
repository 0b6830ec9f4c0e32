"""The pass never raises for problems of the resource: they become Stalled with a reason naming the field.

These run the real reconciler against the standalone CLI's in-memory cluster (the
same code path ``payscope-operator audit`` uses), with sections that need no
server, so they are fast and exact.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest
from pydantic import SecretStr

from payscope_operator import telemetry
from payscope_operator.reconcile import reconciler
from payscope_operator.standalone import LocalCluster

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)


def _run(spec: dict[str, Any], cluster: LocalCluster | None = None, **meta: Any) -> tuple[Any, LocalCluster]:
    cluster = cluster or LocalCluster()
    deps = reconciler.Dependencies(cluster=cluster, observer=telemetry.Metrics())
    resource = reconciler.Resource("ns", "psd", "uid-1", 3, None, meta.get("annotations", {}), spec, meta.get("status"))
    result = asyncio.run(reconciler.reconcile(deps, resource, now=NOW))
    return result, cluster


def _conditions(result: Any) -> dict[str, Any]:
    return {c.type: c for c in result.status.conditions}


def test_unknown_waiver_check_is_spec_invalid_naming_the_field() -> None:
    spec = {"audit": {"waivers": [{"check": "F.metrics.nonexistent", "reason": "r", "expires": "2027-01-01"}]}}
    result, cluster = _run(spec)
    stalled = _conditions(result)["Stalled"]
    assert (stalled.status.value, stalled.reason) == ("True", "SpecInvalid")
    assert "spec.audit.waivers[0].check" in stalled.message
    assert "F.metrics.nonexistent" in stalled.message
    assert cluster.status is not None  # written, with the reason
    assert _conditions(result)["Ready"].reason == "SpecInvalid"


@pytest.mark.parametrize(
    ("check", "words"),
    [("F.nothing.*", "no check id starts with 'F.nothing.'"), ("F.metrics.nonexistent", "unknown check id")],
)
def test_a_waiver_that_names_nothing_is_spec_invalid(check: str, words: str) -> None:
    result, _ = _run({"audit": {"waivers": [{"check": check, "reason": "r", "expires": "2027-01-01"}]}})
    stalled = _conditions(result)["Stalled"]
    assert (stalled.status.value, stalled.reason) == ("True", "SpecInvalid")
    assert words in stalled.message


@pytest.mark.parametrize("check", ["D.*", "F.metrics.*", "A.workloads.restart_policy"])
def test_dimension_area_and_retired_check_waivers_are_accepted(check: str) -> None:
    result, _ = _run({"audit": {"waivers": [{"check": check, "reason": "r", "expires": "2027-01-01"}]}})
    assert _conditions(result)["Stalled"].status.value == "False"


def test_an_empty_spec_is_not_ready_until_every_dimension_is_configured_or_waived() -> None:
    result, _ = _run({})
    ready = _conditions(result)["Ready"]
    assert (ready.status.value, ready.reason) == ("False", "DimensionsNotConfigured")
    assert "Infrastructure, DataLayer, Pipeline, Agents, APIs, Observability, Security" in ready.message


def test_invalid_spec_names_the_offending_field() -> None:
    result, _ = _run({"redis": {"connection": {"secretRef": {"name": "Bad Name!", "key": "url"}}}})
    stalled = _conditions(result)["Stalled"]
    assert stalled.reason == "SpecInvalid"
    assert stalled.message.startswith("spec.redis.connection.secretRef.name")


def test_missing_secret_key_is_secret_not_found_naming_secret_key_and_field() -> None:
    cluster = LocalCluster(secrets={"redis": {"other": SecretStr("x")}})
    result, _ = _run({"redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}}}, cluster)
    stalled = _conditions(result)["Stalled"]
    assert stalled.reason == "SecretNotFound"
    assert "'redis'" in stalled.message
    assert "'url'" in stalled.message
    assert "spec.redis.connection.secretRef" in stalled.message
    assert _conditions(result)["Reconciling"].status.value == "False"


def test_an_unchanged_second_pass_writes_nothing() -> None:
    cluster = LocalCluster()
    first, _ = _run({}, cluster)
    written = dict(cluster.status or {})
    cluster.status = None
    second, _ = _run({}, cluster, status=written)
    assert not second.written
    assert cluster.status is None
    assert second.status == first.status


def test_paused_is_reported_and_nothing_is_applied() -> None:
    result, _ = _run({}, annotations={"payscope.io/paused": "true"})
    ready = _conditions(result)["Ready"]
    assert (ready.status.value, ready.reason) == ("False", "Paused")


def test_secret_values_never_reach_status_or_events() -> None:
    cluster = LocalCluster(secrets={"redis": {"url": SecretStr("redis://:hunter2-secret@127.0.0.1:1/0")}})
    _run({"redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}}}, cluster)
    text = str(cluster.status) + str(cluster.events)
    assert "hunter2-secret" not in text
