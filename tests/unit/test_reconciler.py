"""The pass never raises for problems of the resource: they become Stalled with a reason naming the field.

These run the real reconciler against the standalone CLI's in-memory cluster (the
same code path ``payscope-operator audit`` uses), with sections that need no
server, or with a fake Neo4j provisioner (``fake_provisioner``) that counts its
reads, so they are fast and exact: a pass observes each system once, whoever reads it.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest
from pydantic import SecretStr

from payscope_operator import errors, telemetry
from payscope_operator.reconcile import reconciler
from payscope_operator.standalone import LocalCluster
from tests.unit import fake_provisioner

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)


NEO4J = {"connection": {"uri": "bolt://neo4j:7687", "secretRef": {"name": "neo4j"}},
         "constraints": [{"label": "T", "properties": ["id"]}]}  # fmt: skip
NEO4J_SECRET = {"neo4j": {"username": SecretStr("neo4j"), "password": SecretStr("pw")}}


def _run(
    spec: dict[str, Any], cluster: LocalCluster | None = None, *, fake: fake_provisioner.Fake | None = None, **meta: Any
) -> tuple[Any, LocalCluster]:
    cluster = cluster or LocalCluster()
    factories = (fake_provisioner.factory(fake),) if fake is not None else ()
    deps = reconciler.Dependencies(cluster=cluster, observer=telemetry.Metrics(), provisioners=factories)
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


@pytest.mark.parametrize(
    ("spec", "annotations", "reason"),
    [({"neo4j": NEO4J}, {"payscope.io/paused": "true"}, "Paused"),
     ({"neo4j": NEO4J, "managementPolicy": "ObserveOnly"}, {}, "ObserveOnly")],
)  # fmt: skip
def test_paused_or_observe_only_observes_once_and_previews_but_applies_nothing(
    spec: dict[str, Any], annotations: dict[str, str], reason: str
) -> None:
    fake = fake_provisioner.Fake()
    result, _ = _run(spec, LocalCluster(secrets=dict(NEO4J_SECRET)), fake=fake, annotations=annotations)
    assert (_conditions(result)["Ready"].status.value, _conditions(result)["Ready"].reason) == ("False", reason)
    assert fake.applied == []
    assert result.status.plan == ("neo4j: create Constraint payscope_a (a constraint)",)
    assert fake.reads == 1  # provisioning observed; the audit's Neo4j source read the same observation
    checks = {c.id: c for c in result.status.checks}
    assert checks["A.dependencies.neo4j"].status.value == "Pass"


def test_stalled_on_a_missing_secret_the_audit_still_observes_once_on_its_own() -> None:
    fake = fake_provisioner.Fake(present={"payscope_a"})
    spec = {"neo4j": NEO4J, "redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}}}
    result, _ = _run(spec, LocalCluster(secrets=dict(NEO4J_SECRET)), fake=fake)
    assert _conditions(result)["Stalled"].reason == "SecretNotFound"
    assert fake.applied == []
    assert fake.reads == 1  # no provisioning: the audit observed through the same provisioner
    checks = {c.id: c for c in result.status.checks}
    assert checks["B.neo4j.constraints"].status.value == "Pass"


def test_a_dead_system_costs_one_observation_per_pass_and_its_checks_say_why() -> None:
    fake = fake_provisioner.Fake(failure=errors.DependencyUnavailable("Neo4j did not answer within 5s"))
    result, _ = _run({"neo4j": NEO4J}, LocalCluster(secrets=dict(NEO4J_SECRET)), fake=fake)
    assert fake.reads == 1  # provisioning met the timeout; the audit did not try again
    provisioned = _conditions(result)["Provisioned"]
    assert (provisioned.status.value, provisioned.reason) == ("Unknown", "DependencyUnavailable")
    checks = {c.id: c for c in result.status.checks}
    for check_id in ("A.dependencies.neo4j", "B.neo4j.constraints"):
        assert "Neo4j did not answer within 5s" in checks[check_id].message, check_id
    assert checks["A.dependencies.neo4j"].status.value == "Fail"  # a reachability check fails when unreachable


def test_secret_values_never_reach_status_or_events() -> None:
    cluster = LocalCluster(secrets={"redis": {"url": SecretStr("redis://:hunter2-secret@127.0.0.1:1/0")}})
    _run({"redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}}}, cluster)
    text = str(cluster.status) + str(cluster.events)
    assert "hunter2-secret" not in text
