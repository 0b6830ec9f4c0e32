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
from payscope_operator.kube import policies, workloads
from payscope_operator.reconcile import secrets
from tests.unit.audit import pods

S = status.CheckStatus
CHECKS = {c.id: c for c in catalog.CATALOG if c.source in (kubernetes.WORKLOADS, kubernetes.SECRETS)}
WORKLOAD_CHECKS = ("A.workloads.probes", "A.workloads.resources")
SHUTDOWN_CHECKS = ("F.shutdown.grace_period", "F.shutdown.pre_stop")
NAMES = pods.NAMES
SPEC = spec.PayScopeSpec.model_validate(
    {
        "workloads": {role: {"name": name} for role, name in NAMES.items()},
        "postgres": {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}},
    }
)
CONTAINER = pods.CONTAINER
deployment = pods.deployment
evidence = pods.evidence


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
    got, message = evaluate(f"A.workloads.{role}_available", pods.with_role(role, value))
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
    ids=["grace-3s", "grace-0s", "grace-at-minimum", "grace-unset"],
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

    async def list_disruption_budgets(self, namespace: str) -> tuple[policies.DisruptionBudgetFacts, ...]:
        return (pods.BUDGET,)

    async def list_network_policies(self, namespace: str) -> tuple[policies.NetworkPolicyFacts, ...]:
        return (pods.POLICY,)


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


# The api survives a node's loss and a drain ------------------------------------------------------

API = NAMES["api"]
HOSTNAME = "kubernetes.io/hostname"


def spread(kind: str, key: str, **labels: str) -> workloads.SpreadTerm:
    return workloads.SpreadTerm(kind, key, pods.selector(**labels) if labels else None)


@pytest.mark.parametrize(
    ("facts", "expected", "words"),
    [
        ({}, S.PASS, "runs 2 replicas"),
        ({"replicas": 3}, S.PASS, "runs 3 replicas"),
        ({"replicas": 1}, S.FAIL, "runs 1 replica(s): run at least 2"),
        ({"replicas": 0}, S.FAIL, "runs 0 replica(s)"),
    ],
    ids=["two", "three", "one", "zero"],
)
def test_api_replicas(facts: dict[str, Any], expected: status.CheckStatus, words: str) -> None:
    got, message = evaluate("A.workloads.api_replicas", evidence(api=deployment(API, **facts)))
    assert (got, words in message) == (expected, True), message


@pytest.mark.parametrize(
    ("terms", "expected", "words"),
    [
        ((spread("topologySpreadConstraint", HOSTNAME, app=API),), S.PASS, "topologySpreadConstraint on kubernetes"),
        ((spread("preferred podAntiAffinity", HOSTNAME, app=API),), S.PASS, "preferred podAntiAffinity"),
        ((spread("required podAntiAffinity", "topology.kubernetes.io/zone", tier="payscope"),), S.PASS, "zone"),
        ((), S.FAIL, "Nothing keeps the api's replicas off one node: add"),
        (
            (spread("topologySpreadConstraint", HOSTNAME, app="payscope-worker"),),
            S.FAIL,
            "do not select its own pods over nodes: topologySpreadConstraint on kubernetes.io/hostname selecting"
            " app=payscope-worker",
        ),
        ((spread("required podAntiAffinity", "example.com/rack", app=API),), S.FAIL, "on example.com/rack"),
        ((spread("required podAntiAffinity", HOSTNAME),), S.FAIL, "selecting None"),
    ],
    ids=["spread", "preferred-anti-affinity", "zone", "none", "other-pods", "other-key", "no-selector"],
)
def test_api_spread(terms: tuple[workloads.SpreadTerm, ...], expected: status.CheckStatus, words: str) -> None:
    got, message = evaluate("A.workloads.api_spread", evidence(api=deployment(API, spread=terms)))
    assert (got, words in message) == (expected, True), message


def budget(name: str = "api", *, selector: Any = "api", **sizes: str) -> policies.DisruptionBudgetFacts:
    chosen = pods.selector(app=API) if selector == "api" else selector
    return policies.DisruptionBudgetFacts(name, chosen, **sizes)


@pytest.mark.parametrize(
    ("budgets", "replicas", "expected", "words"),
    [
        ((budget(min_available="1"),), 2, S.PASS, "PodDisruptionBudget api keeps part of the api up"),
        ((budget(max_unavailable="1"),), 3, S.PASS, "keeps part"),
        ((budget(min_available="50%"),), 4, S.PASS, "keeps part"),
        ((budget(max_unavailable="34%"),), 3, S.PASS, "keeps part"),
        ((), 2, S.FAIL, "No PodDisruptionBudget selects the api's pods"),
        ((budget(selector=pods.selector(app="payscope-worker"), min_available="1"),), 2, S.FAIL, "No PodDisruption"),
        ((budget(selector=None, min_available="1"),), 2, S.FAIL, "No PodDisruptionBudget"),
        ((budget(selector=policies.LabelSelector(), min_available="1"),), 2, S.PASS, "keeps part"),
        ((budget(min_available="0"),), 2, S.FAIL, "api lets all 2 pods go at once"),
        ((budget(max_unavailable="100%"),), 2, S.FAIL, "lets all 2 pods go at once"),
        ((budget(),), 2, S.FAIL, "sets neither minAvailable nor maxUnavailable"),
        ((budget(min_available="2"),), 2, S.WARN, "lets no pod go: node drains wait on it forever"),
        ((budget(max_unavailable="0"),), 2, S.WARN, "lets no pod go"),
        ((budget(min_available="100%"),), 3, S.WARN, "lets no pod go"),
        ((budget(min_available="1"), budget("other", max_unavailable="1")), 2, S.FAIL, "2 PodDisruptionBudgets"),
    ],
    ids=[
        "min-1",
        "max-1",
        "min-50%",
        "max-34%",
        "none",
        "other-pods",
        "null-selector",
        "empty-selector",
        "min-0",
        "max-100%",
        "no-bound",
        "min-all",
        "max-0",
        "min-100%",
        "two-budgets",
    ],
)
def test_api_pdb(
    budgets: tuple[policies.DisruptionBudgetFacts, ...], replicas: int, expected: status.CheckStatus, words: str
) -> None:
    value = evidence(api=deployment(API, replicas=replicas), budgets=budgets)
    got, message = evaluate("A.workloads.api_pdb", value)
    assert (got, words in message) == (expected, True), message


@pytest.mark.parametrize("check_id", ["A.workloads.api_replicas", "A.workloads.api_spread", "A.workloads.api_pdb"])
def test_api_guards_are_unknown_without_an_api_and_apply_only_to_a_declared_one(check_id: str) -> None:
    got, message = evaluate(check_id, evidence(api=None))
    assert (got, message) == (S.UNKNOWN, "The api Deployment does not exist, so there is nothing to judge.")
    applies = CHECKS[check_id].applies
    assert applies is not None
    assert applies(SPEC)
    assert not applies(spec.PayScopeSpec.model_validate({"workloads": {"worker": {"name": "w"}}}))


def test_budgets_that_could_not_be_listed_turn_only_the_budget_check_unknown() -> None:
    value = evidence(budgets="the operator may not list PodDisruptionBudgets in ns (HTTP 403)")
    got, message = evaluate("A.workloads.api_pdb", value)
    assert got == S.UNKNOWN
    assert (
        message
        == "PodDisruptionBudgets could not be listed: the operator may not list PodDisruptionBudgets in ns (HTTP 403)"
    )
    assert all(evaluate(c, value)[0] == S.PASS for c in CHECKS if c not in ("A.workloads.api_pdb", "A.secrets.present"))
