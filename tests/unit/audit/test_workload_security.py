"""Dimension G's pod-security checks, table-tested: each case breaks one thing in one container or pod.

The evidence is ``pods``' healthy installation (every container locked down, the
namespace under a NetworkPolicy); each case changes one fact and asserts the
status, the words an engineer acts on, and that no other pod-security check moved.
No server: ``tests/integration/test_audit_workloads.py`` runs the same checks on
real Deployments.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from payscope_operator.api import spec, status
from payscope_operator.audit import catalog
from payscope_operator.audit.checks import workload_security
from payscope_operator.audit.sources import kubernetes
from payscope_operator.kube import policies
from tests.unit.audit import pods

S = status.CheckStatus
CHECKS = {c.id: c for c in catalog.CATALOG if c.id.startswith("G.workloads.")}
SPEC = spec.PayScopeSpec.model_validate({"workloads": {r: {"name": n} for r, n in pods.NAMES.items()}})
WORKER = pods.NAMES["worker"]


def judge(check_id: str, value: kubernetes.WorkloadEvidence) -> tuple[status.CheckStatus, str]:
    finding = CHECKS[check_id].judge(value, SPEC)
    return finding.status, finding.message


def others_pass(check_id: str, value: kubernetes.WorkloadEvidence) -> None:
    for other in set(CHECKS) - {check_id}:
        assert judge(other, value)[0] == S.PASS, other


def test_every_check_is_observed_on_the_workloads_and_passes_a_hardened_installation() -> None:
    assert set(CHECKS) == {
        "G.workloads.run_as_non_root",
        "G.workloads.privileged",
        "G.workloads.privilege_escalation",
        "G.workloads.capabilities",
        "G.workloads.read_only_root_fs",
        "G.workloads.seccomp",
        "G.workloads.host_namespaces",
        "G.workloads.host_path",
        "G.workloads.host_ports",
        "G.workloads.image_pinned",
        "G.workloads.env_secrets",
        "G.workloads.service_account_token",
        "G.workloads.network_policy",
    }
    for check in CHECKS.values():
        assert check.grade == status.EvidenceGrade.OBSERVED
        assert check.source is kubernetes.WORKLOADS
        assert judge(check.id, pods.evidence())[0] == S.PASS, check.id


# The container's securityContext (changes to the worker's first app container) ------------------


SECURITY_CASES = [
    ("G.workloads.run_as_non_root", {"run_as_user": 0, "run_as_non_root": None}, "app: runAsUser is 0 (root)"),
    ("G.workloads.run_as_non_root", {"run_as_user": 0}, "which runAsNonRoot: true refuses to start"),
    ("G.workloads.run_as_non_root", {"run_as_user": None, "run_as_non_root": None}, "the image's USER"),
    ("G.workloads.run_as_non_root", {"run_as_user": None, "run_as_non_root": False}, "neither runAsNonRoot"),
    ("G.workloads.privileged", {"privileged": True}, "app: privileged: true (root on the node)"),
    ("G.workloads.privilege_escalation", {"allow_privilege_escalation": None}, "is not set (true)"),
    ("G.workloads.privilege_escalation", {"allow_privilege_escalation": True}, "allowPrivilegeEscalation is true"),
    ("G.workloads.capabilities", {"capabilities_drop": ()}, "app: does not drop ALL"),
    ("G.workloads.capabilities", {"capabilities_drop": ("NET_RAW",)}, "does not drop ALL"),
    ("G.workloads.capabilities", {"capabilities_add": ("SYS_ADMIN",)}, "app: adds SYS_ADMIN"),
    ("G.workloads.read_only_root_fs", {"read_only_root_filesystem": False}, "readOnlyRootFilesystem is not true"),
    ("G.workloads.seccomp", {"seccomp": None}, "app: no seccompProfile (Unconfined unless"),
    ("G.workloads.seccomp", {"seccomp": "Unconfined"}, "app: seccompProfile is Unconfined"),
]


@pytest.mark.parametrize(
    ("check_id", "change", "words"), SECURITY_CASES, ids=[f"{c[0][12:]}-{c[2][:24]}" for c in SECURITY_CASES]
)
def test_a_container_security_setting_fails_its_check_only(check_id: str, change: dict[str, Any], words: str) -> None:
    value = pods.evidence(worker=pods.deployment(WORKER, security=change))
    got, message = judge(check_id, value)
    assert got == S.FAIL
    assert f"{WORKER}/{words}" in message or words in message
    assert f"{WORKER}/app" in message
    assert "sidecar" not in message
    assert "payscope-api" not in message
    others_pass(check_id, value)


@pytest.mark.parametrize(
    ("check_id", "change"),
    [
        ("G.workloads.run_as_non_root", {"run_as_user": None, "run_as_non_root": True}),
        ("G.workloads.run_as_non_root", {"run_as_user": 1000, "run_as_non_root": None}),
        ("G.workloads.capabilities", {"capabilities_drop": ("all",), "capabilities_add": ("NET_BIND_SERVICE",)}),
        ("G.workloads.seccomp", {"seccomp": "Localhost"}),
    ],
    ids=["non-root-flag-only", "uid-only", "bind-service", "localhost-profile"],
)
def test_what_each_setting_accepts(check_id: str, change: dict[str, Any]) -> None:
    assert judge(check_id, pods.evidence(worker=pods.deployment(WORKER, security=change)))[0] == S.PASS


def test_init_containers_are_judged_too() -> None:
    root_init = dataclasses.replace(pods.INIT, security=dataclasses.replace(pods.SECURE, privileged=True))
    got, message = judge("G.workloads.privileged", pods.evidence(api=pods.deployment(init=root_init)))
    assert got == S.FAIL
    assert "payscope-api/migrate (init): privileged: true" in message


def test_a_pod_level_setting_reaches_every_container_through_the_facts() -> None:
    """The inheritance itself is resolved by kube.workloads (test_kube_facts); here: every container is named."""
    unconfined = dataclasses.replace(pods.SECURE, seccomp=None)
    bare = dataclasses.replace(pods.CONTAINER, security=unconfined)
    value = pods.evidence(ingestion=pods.deployment(pods.NAMES["ingestion"], container=bare))
    got, message = judge("G.workloads.seccomp", value)
    assert got == S.FAIL
    assert message.startswith("Set seccompProfile: {type: RuntimeDefault} on the pod: payscope-ingestion/app:")


# The pod's reach into its node ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check_id", "change", "words"),
    [
        ("G.workloads.host_namespaces", {"host_network": True}, "payscope-worker: hostNetwork: true"),
        ("G.workloads.host_namespaces", {"host_pid": True, "host_ipc": True}, "hostPID: true, hostIPC: true"),
        ("G.workloads.host_path", {"host_path_volumes": ("docker: /var/run",)}, "hostPath volume(s) docker: /var/run"),
    ],
    ids=["host-network", "host-pid-ipc", "host-path"],
)
def test_a_pod_reaching_into_its_node_fails_its_check_only(check_id: str, change: dict[str, Any], words: str) -> None:
    value = pods.evidence(worker=pods.deployment(WORKER, **change))
    got, message = judge(check_id, value)
    assert (got, words in message) == (S.FAIL, True), message
    others_pass(check_id, value)


def test_a_host_port_fails() -> None:
    value = pods.evidence(
        worker=pods.deployment(WORKER, container=dataclasses.replace(pods.CONTAINER, host_ports=(8080,)))
    )
    got, message = judge("G.workloads.host_ports", value)
    assert (got, "payscope-worker/app: hostPort 8080" in message) == (S.FAIL, True)
    others_pass("G.workloads.host_ports", value)


# Images and the environment ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("registry.example/payscope@sha256:" + "b" * 64, None),
        ("registry.example/payscope:1.4.2", None),
        ("registry.example:5000/payscope:1.4.2", None),
        ("registry.example:5000/payscope", "has no tag (pulls :latest)"),
        ("payscope", "has no tag"),
        ("payscope:latest", "uses :latest"),
        ("registry.example/team/payscope:latest", "uses :latest"),
    ],
)
def test_image_problem(image: str, problem: str | None) -> None:
    found = workload_security.image_problem(image)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_unpinned_images_fail_and_tag_only_images_are_named_in_the_pass() -> None:
    latest = dataclasses.replace(pods.CONTAINER, image="payscope:latest")
    got, message = judge("G.workloads.image_pinned", pods.evidence(worker=pods.deployment(WORKER, container=latest)))
    assert (got, "payscope-worker/app: payscope:latest uses :latest" in message) == (S.FAIL, True)
    tagged = dataclasses.replace(pods.CONTAINER, image="payscope:1.4.2")
    got, message = judge("G.workloads.image_pinned", pods.evidence(worker=pods.deployment(WORKER, container=tagged)))
    assert got == S.PASS
    assert (
        message
        == "All 9 container images are pinned; by tag only (a tag can be moved, a digest cannot): payscope:1.4.2."
    )


@pytest.mark.parametrize(
    ("name", "secretive"),
    [
        ("DB_PASSWORD", True),
        ("PGPASSWORD", True),
        ("JWT_SECRET_KEY", True),
        ("api-key", True),
        ("OPENAI_API_KEY", True),
        ("REDIS_DSN", True),
        ("SLACK_TOKEN", True),
        ("DB_PASSWORD_FILE", False),
        ("JWT_KEY_ID", False),
        ("MAX_TOKENS", False),
        ("KEYCLOAK_URL", False),
        ("PORT", False),
    ],
)
def test_secret_looking_names(name: str, secretive: bool) -> None:
    assert workload_security.secret_looking(name) is secretive


@pytest.mark.parametrize(
    ("literals", "words"),
    [
        ((("DB_PASSWORD", "text"),), "literal value in env DB_PASSWORD"),
        ((("DB_PIN_PASSWORD", "number"),), "literal value in env DB_PIN_PASSWORD"),
        ((("DATABASE_URL", "credential-url"),), "literal value in env DATABASE_URL (a URL with a password)"),
        ((("JWT_SECRET", "text"), ("OPENAI_API_KEY", "text")), "literal value in env JWT_SECRET, OPENAI_API_KEY"),
    ],
    ids=["password", "numeric-password", "url-with-password", "two"],
)
def test_secret_literals_in_env_fail_naming_the_variables(literals: tuple[tuple[str, Any], ...], words: str) -> None:
    container = dataclasses.replace(pods.CONTAINER, env_literals=literals)
    value = pods.evidence(worker=pods.deployment(WORKER, container=container))
    got, message = judge("G.workloads.env_secrets", value)
    assert (got, f"payscope-worker/app: {words}" in message) == (S.FAIL, True), message
    assert message.startswith("Move these into a Secret and use valueFrom.secretKeyRef")
    others_pass("G.workloads.env_secrets", value)


@pytest.mark.parametrize(
    "literals",
    [(("DB_PASSWORD", "reference"),), (("API_KEY", "path"),), (("USE_TOKEN", "boolean"),), (("LOG_LEVEL", "text"),)],
    ids=["reference", "path", "boolean", "harmless-name"],
)
def test_what_env_secrets_lets_through(literals: tuple[tuple[str, Any], ...]) -> None:
    container = dataclasses.replace(pods.CONTAINER, env_literals=literals)
    assert (
        judge("G.workloads.env_secrets", pods.evidence(worker=pods.deployment(WORKER, container=container)))[0]
        == S.PASS
    )


@pytest.mark.parametrize("mounted", [None, True])
def test_a_mounted_service_account_token_warns(mounted: bool | None) -> None:
    value = pods.evidence(worker=pods.deployment(WORKER, automount_service_account_token=mounted))
    got, message = judge("G.workloads.service_account_token", value)
    assert got == S.WARN
    assert message.startswith("payscope-worker mount(s) a ServiceAccount token")
    others_pass("G.workloads.service_account_token", value)


# NetworkPolicies --------------------------------------------------------------------------------


def policy(
    name: str = "np", *, ingress: bool = True, admits_all: bool = False, **labels: str
) -> policies.NetworkPolicyFacts:
    return policies.NetworkPolicyFacts(name, pods.selector(**labels), ingress=ingress, admits_all_ingress=admits_all)


@pytest.mark.parametrize(
    ("listed", "expected", "words"),
    [
        ((policy(),), S.PASS, "restricts ingress to each of the 3 Deployments"),
        ((policy(app="payscope-api"), policy(app="payscope-worker"), policy(app="payscope-ingestion")), S.PASS, ""),
        ((), S.FAIL, "No NetworkPolicy restricts ingress to payscope-api, payscope-worker, payscope-ingestion"),
        ((policy(app="payscope-api"),), S.FAIL, "restricts ingress to payscope-worker, payscope-ingestion"),
        ((policy(ingress=False),), S.FAIL, "No NetworkPolicy restricts ingress"),
        ((policy(tier="other"),), S.FAIL, "No NetworkPolicy"),
        ((policy(admits_all=True),), S.WARN, "Selected only by policies that admit every peer: payscope-api (np)"),
        ((policy(admits_all=True), policy("strict", app="payscope-api")), S.WARN, "payscope-worker (np)"),
    ],
    ids=["namespace-wide", "one-each", "none", "api-only", "egress-only", "other-pods", "admits-all", "partly-open"],
)
def test_network_policy(
    listed: tuple[policies.NetworkPolicyFacts, ...], expected: status.CheckStatus, words: str
) -> None:
    got, message = judge("G.workloads.network_policy", pods.evidence(network_policies=listed))
    assert (got, words in message) == (expected, True), message


def test_network_policies_that_could_not_be_listed_turn_only_that_check_unknown() -> None:
    value = pods.evidence(network_policies="Kubernetes API failed to list NetworkPolicies in ns (HTTP 500)")
    assert judge("G.workloads.network_policy", value) == (
        S.UNKNOWN,
        "NetworkPolicies could not be listed: Kubernetes API failed to list NetworkPolicies in ns (HTTP 500)",
    )
    others_pass("G.workloads.network_policy", value)


@pytest.mark.parametrize("check_id", sorted(CHECKS))
def test_no_deployment_at_all_is_unknown_never_a_pass(check_id: str) -> None:
    value = kubernetes.WorkloadEvidence(dict.fromkeys(pods.NAMES), (), ())
    got, message = judge(check_id, value)
    assert got == S.UNKNOWN
    assert "None of the declared Deployments exists" in message


@pytest.mark.parametrize("check_id", sorted(CHECKS))
def test_a_missing_deployment_leaves_the_others_judged(check_id: str) -> None:
    got, _ = judge(check_id, pods.evidence(worker=None))
    assert got == S.PASS
    assert WORKER not in (CHECKS[check_id].judge(pods.evidence(worker=None), SPEC).evidence or "")
