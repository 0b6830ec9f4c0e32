"""Dimension A's Secret and Deployment checks (and F's shutdown checks), table-tested.

The evidence is what the pipeline and ``kube.workloads.facts_of`` hand the
checks: ``secrets.Missing`` entries and ``DeploymentFacts`` per declared role.
Healthy by default; each case breaks one thing and asserts the status and the
words an on-call engineer acts on. No server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from dataclasses import dataclass
from typing import Any

import pytest

from payscope_operator.api import secret_references, spec, status
from payscope_operator.audit import catalog, runner
from payscope_operator.audit.sources import kubernetes
from payscope_operator.kube import workloads
from payscope_operator.reconcile import secrets

S = status.CheckStatus
CHECKS = {c.id: c for c in catalog.CATALOG if c.source in (kubernetes.WORKLOADS, kubernetes.SECRETS)}
WORKLOAD_CHECKS = ("A.workloads.probes", "A.workloads.resources", "A.workloads.restart_policy")
SHUTDOWN_CHECKS = ("F.shutdown.grace_period", "F.shutdown.pre_stop")
NAMES = {"api": "payscope-api", "worker": "payscope-worker", "ingestion": "payscope-ingestion"}
SPEC = spec.PayScopeSpec.model_validate(
    {
        "workloads": {role: {"name": name} for role, name in NAMES.items()},
        "postgres": {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}},
    }
)
CONTAINER = workloads.ContainerFacts(
    name="app",
    liveness_probe=True,
    readiness_probe=True,
    startup_probe=False,
    requests=("cpu", "memory"),
    limits=("memory",),
    pre_stop=True,
    liveness_handler="httpGet /healthz :8000",
    readiness_handler="httpGet /readyz :8000",
)


def deployment(
    name: str = "payscope-api", *, container: workloads.ContainerFacts = CONTAINER, **changes: Any
) -> workloads.DeploymentFacts:
    facts = workloads.DeploymentFacts(
        name=name,
        replicas=2,
        available_replicas=2,
        ready_replicas=2,
        updated_replicas=2,
        generation=1,
        observed_generation=1,
        restart_policy="Always",
        termination_grace_period_seconds=30,
        containers=(container, dataclasses.replace(CONTAINER, name="sidecar")),
        available_condition=True,
    )
    return dataclasses.replace(facts, **changes)


def evidence(**changes: workloads.DeploymentFacts | None) -> kubernetes.WorkloadEvidence:
    found: dict[str, workloads.DeploymentFacts | None] = {role: deployment(name) for role, name in NAMES.items()}
    return kubernetes.WorkloadEvidence({**found, **changes})


def evaluate(check_id: str, value: Any, desired: spec.PayScopeSpec = SPEC) -> tuple[status.CheckStatus, str]:
    finding = CHECKS[check_id].judge(value, desired)
    return finding.status, finding.message


# Every workload check passes on healthy evidence ------------------------------------------------


@pytest.mark.parametrize("check_id", sorted(c for c in CHECKS if c != "A.secrets.present"))
def test_healthy_deployments_pass(check_id: str) -> None:
    assert evaluate(check_id, evidence())[0] == S.PASS


# A.workloads.<role>_available -------------------------------------------------------------------


@pytest.mark.parametrize("role", kubernetes.ROLES)
@pytest.mark.parametrize(
    ("facts", "expected", "words"),
    [
        ("healthy", S.PASS, "has all 2 replicas available"),
        (None, S.FAIL, "does not exist"),
        ({"replicas": 0, "available_replicas": 0}, S.FAIL, "is scaled to zero"),
        ({"available_replicas": 1}, S.FAIL, "has 1 of 2 replicas available"),
        ({"available_replicas": 0, "available_condition": False}, S.FAIL, "has 0 of 2 replicas available"),
        ({"generation": 2}, S.FAIL, "rollout has not been observed yet (observedGeneration 1 < generation 2)"),
        ({"updated_replicas": 1}, S.FAIL, "is rolling out: 1 of 2 replicas run the current template"),
    ],
    ids=["pass", "missing", "scaled-to-zero", "partially-available", "unavailable", "unobserved", "rolling-out"],
)
def test_role_available(role: str, facts: Any, expected: status.CheckStatus, words: str) -> None:
    name = NAMES[role]
    value = facts if facts is None else deployment(name, **({} if facts == "healthy" else facts))
    got, message = evaluate(f"A.workloads.{role}_available", evidence(**{role: value}))
    assert got == expected
    assert words in message
    assert name in message


def test_availability_of_one_role_ignores_the_others() -> None:
    value = evidence(worker=None, ingestion=deployment(NAMES["ingestion"], available_replicas=0))
    assert evaluate("A.workloads.api_available", value)[0] == S.PASS
    assert evaluate("A.workloads.worker_available", value)[0] == S.FAIL
    assert evaluate("A.workloads.ingestion_available", value)[0] == S.FAIL


@pytest.mark.parametrize("role", kubernetes.ROLES)
def test_availability_applies_only_where_the_role_is_declared(role: str) -> None:
    others = {r: {"name": n} for r, n in NAMES.items() if r != role}
    without = spec.PayScopeSpec.model_validate({"workloads": others})
    check = CHECKS[f"A.workloads.{role}_available"]
    assert check.applies is not None
    assert check.applies(SPEC)
    assert not check.applies(without)
    assert not check.applies(spec.PayScopeSpec())


# Per-container and per-Deployment checks --------------------------------------------------------


@pytest.mark.parametrize(
    ("check_id", "container", "words"),
    [
        ("A.workloads.probes", {"liveness_probe": False}, "payscope-worker/app: no livenessProbe"),
        ("A.workloads.probes", {"readiness_probe": False}, "payscope-worker/app: no readinessProbe"),
        (
            "A.workloads.probes",
            {"liveness_probe": False, "readiness_probe": False},
            "no livenessProbe and no readinessProbe",
        ),
        ("A.workloads.resources", {"requests": ("memory",)}, "payscope-worker/app: missing requests.cpu"),
        ("A.workloads.resources", {"requests": ("cpu",)}, "payscope-worker/app: missing requests.memory"),
        ("A.workloads.resources", {"limits": ("cpu",)}, "payscope-worker/app: missing limits.memory"),
        (
            "A.workloads.resources",
            {"requests": (), "limits": ()},
            "missing requests.cpu, requests.memory, limits.memory",
        ),
        ("F.shutdown.pre_stop", {"pre_stop": False}, "payscope-worker/app: no lifecycle.preStop hook"),
    ],
    ids=[
        "no-liveness",
        "no-readiness",
        "no-probes",
        "no-cpu-request",
        "no-memory-request",
        "no-memory-limit",
        "no-resources",
        "no-pre-stop",
    ],
)
def test_a_container_missing_something_fails_its_check_only(
    check_id: str, container: dict[str, Any], words: str
) -> None:
    broken = dataclasses.replace(CONTAINER, **container)
    value = evidence(worker=deployment(NAMES["worker"], container=broken))
    got, message = evaluate(check_id, value)
    assert got == S.FAIL
    assert words in message
    assert "sidecar" not in message
    assert "payscope-api" not in message
    for other in set(CHECKS) - {check_id, "A.secrets.present"}:
        assert evaluate(other, value)[0] == S.PASS, other


@pytest.mark.parametrize(
    ("check_id", "facts", "expected", "words"),
    [
        ("A.workloads.restart_policy", {"restart_policy": "OnFailure"}, S.FAIL, "restartPolicy is OnFailure"),
        ("A.workloads.restart_policy", {"restart_policy": "Never"}, S.FAIL, "restartPolicy is Never"),
        (
            "F.shutdown.grace_period",
            {"termination_grace_period_seconds": 3},
            S.FAIL,
            "terminationGracePeriodSeconds is 3 (< 10)",
        ),
        (
            "F.shutdown.grace_period",
            {"termination_grace_period_seconds": 0},
            S.FAIL,
            "terminationGracePeriodSeconds is 0 (< 10)",
        ),
        ("F.shutdown.grace_period", {"termination_grace_period_seconds": 10}, S.PASS, "termination grace period"),
        ("F.shutdown.grace_period", {"termination_grace_period_seconds": None}, S.PASS, "termination grace period"),
    ],
    ids=["on-failure", "never", "grace-3s", "grace-0s", "grace-at-minimum", "grace-unset"],
)
def test_per_deployment_checks(check_id: str, facts: dict[str, Any], expected: status.CheckStatus, words: str) -> None:
    got, message = evaluate(check_id, evidence(ingestion=deployment(NAMES["ingestion"], **facts)))
    assert got == expected
    assert words in message
    if expected == S.FAIL:
        assert message.count("payscope-ingestion: ") == 1
        assert "payscope-api:" not in message


@pytest.mark.parametrize("check_id", WORKLOAD_CHECKS + SHUTDOWN_CHECKS)
def test_a_missing_deployment_is_left_to_availability_and_the_others_are_judged(check_id: str) -> None:
    assert evaluate(check_id, evidence(api=None))[0] == S.PASS
    no_deployment: dict[str, workloads.DeploymentFacts | None] = dict.fromkeys(NAMES)
    got, message = evaluate(check_id, kubernetes.WorkloadEvidence(no_deployment))
    assert got == S.UNKNOWN
    assert "no pod template to judge" in message


# A.secrets.present ------------------------------------------------------------------------------

DSN = secret_references.Reference("spec.postgres.connection.secretRef", "pg", "dsn")


@pytest.mark.parametrize(
    ("missing", "expected", "words"),
    [
        ((), S.PASS, "All 1 referenced Secret keys exist"),
        ((secrets.Missing(DSN, secret_exists=False),), S.FAIL, "pg/dsn (Secret missing, spec.postgres"),
        ((secrets.Missing(DSN, secret_exists=True),), S.FAIL, "pg/dsn (key missing, spec.postgres"),
    ],
    ids=["pass", "secret-missing", "key-missing"],
)
def test_secrets_present(missing: tuple[secrets.Missing, ...], expected: status.CheckStatus, words: str) -> None:
    got, message = evaluate("A.secrets.present", missing)
    assert got == expected
    assert words in message


# NotConfigured through the runner ---------------------------------------------------------------


class HealthyCluster:
    """Every Deployment asked for exists and is healthy."""

    async def read_deployment(self, namespace: str, name: str) -> workloads.DeploymentFacts | None:
        return deployment(name)


@dataclass
class FakeSession:
    spec: spec.PayScopeSpec
    namespace: str = "ns"
    cluster: HealthyCluster = dataclasses.field(default_factory=HealthyCluster)
    missing: tuple[secrets.Missing, ...] = ()


def run(desired: spec.PayScopeSpec) -> dict[str, status.CheckResult]:
    report = asyncio.run(runner.run(CHECKS.values(), FakeSession(desired), today=datetime.date(2026, 11, 28)))
    return {r.id: r for r in report.results}


def test_without_spec_workloads_every_workload_check_is_not_configured() -> None:
    results = run(spec.PayScopeSpec())
    for check_id in set(CHECKS) - {"A.secrets.present"}:
        assert results[check_id].status == S.NOT_CONFIGURED
        assert results[check_id].message == "spec.workloads names no Deployment."
    assert results["A.secrets.present"].status == S.NOT_CONFIGURED
    assert results["A.secrets.present"].message == "The spec references no Secret."


def test_an_undeclared_role_is_not_configured_while_the_declared_ones_are_audited() -> None:
    results = run(spec.PayScopeSpec.model_validate({"workloads": {"api": {"name": "payscope-api"}}}))
    for role in ("worker", "ingestion"):
        assert results[f"A.workloads.{role}_available"].status == S.NOT_CONFIGURED
        assert results[f"A.workloads.{role}_available"].message.startswith("Not declared in the spec")
    for check_id in ("A.workloads.api_available", *WORKLOAD_CHECKS, *SHUTDOWN_CHECKS):
        assert results[check_id].status == S.PASS, check_id
        evidence = results[check_id].evidence or ""
        assert "payscope-api" in evidence
        assert "payscope-worker" not in evidence
