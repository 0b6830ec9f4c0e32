"""The workload checks (A.workloads, F.shutdown, G.workloads) against real objects in the real kube-apiserver.

Each test creates PayScope-like Deployments, PodDisruptionBudgets and
NetworkPolicies in its own namespace (Deployment status written by hand: the
test control plane has no controller-manager), reads them through the
operator's own ``kube.gateway.Gateway`` inside a real ``PassSession``, and runs
the full catalog. Hardened, guarded Deployments pass every workload check; each
fault, a patch as a user would apply it, then breaks exactly its checks, with the
words an on-call engineer acts on, while every other check stays where it was.
The acceptance case of issue 11, a naive Deployment written by hand, fails each
check it should.

What it must not do: touch objects outside its namespace.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from payscope_operator.api import spec, status
from payscope_operator.audit import catalog
from payscope_operator.audit.sources import pods
from payscope_operator.kube import gateway
from tests.e2e import cluster
from tests.integration import kube_audit

S = status.CheckStatus
TODAY = datetime.date(2026, 11, 28)
NAMES = {"api": "payscope-api", "worker": "payscope-worker", "ingestion": "payscope-ingestion"}
SPEC = spec.PayScopeSpec.model_validate({"workloads": {role: {"name": name} for role, name in NAMES.items()}})
MINE = frozenset(
    c.id
    for c in catalog.CATALOG
    if c.id.startswith(("A.workloads.", "F.shutdown.", "G.workloads.")) and c.source is not pods.PODS
)
Patch = Callable[[k8s.ApiClient, str, str], None]


async def _audit(
    api: k8s.ApiClient, namespace: str, desired: spec.PayScopeSpec = SPEC
) -> dict[str, status.CheckResult]:
    # The checks on the pods themselves (no pod exists here) are tested in test_audit_pods.
    not_pods = (c for c in catalog.CATALOG if c.source is not pods.PODS)
    return await kube_audit.audit(api, namespace, desired, not_pods, TODAY)


def _not_passing(results: dict[str, status.CheckResult]) -> dict[str, tuple[status.CheckStatus, str]]:
    """Every check that neither passes nor is outside the spec (NotConfigured)."""
    return {i: (r.status, r.message) for i, r in results.items() if r.status not in (S.PASS, S.NOT_CONFIGURED)}


async def test_hardened_guarded_deployments_pass_every_workload_check(kube_api: k8s.ApiClient, namespace: str) -> None:
    for name in NAMES.values():
        cluster.create_deployment(kube_api, namespace, name)
    results = await _audit(kube_api, namespace)
    expected = {f"A.workloads.{r}_available" for r in NAMES} | {"A.workloads.probe_paths"}
    assert expected | {"G.workloads.env_secrets", "A.workloads.api_pdb"} <= MINE
    assert {i: results[i].status for i in MINE} == dict.fromkeys(MINE, S.PASS)
    assert _not_passing(results) == {}
    assert all(n in (results["A.workloads.probes"].evidence or "") for n in NAMES.values())
    assert "has all 2 replicas available" in results["A.workloads.api_available"].message
    assert (
        results["A.workloads.api_pdb"].message
        == "PodDisruptionBudget payscope-api keeps part of the api up through a drain."
    )
    assert all(results[i].grade == status.EvidenceGrade.OBSERVED for i in MINE)


def _patch(body: dict[str, Any]) -> Patch:
    """A strategic merge patch of the Deployment, then its status caught up (as a controller would)."""

    def apply(api: k8s.ApiClient, namespace: str, name: str) -> None:
        k8s.AppsV1Api(api).patch_namespaced_deployment(
            name, namespace, body, _content_type="application/strategic-merge-patch+json"
        )
        replicas = int(body.get("spec", {}).get("replicas", 2))
        cluster.set_deployment_available(api, namespace, name, replicas, replicas)

    return apply


def _pod(**fields: Any) -> Patch:
    return _patch({"spec": {"template": {"spec": fields}}})


def _app(**fields: Any) -> Patch:
    return _pod(containers=[{"name": "app", **fields}])


def _app_security(**fields: Any) -> Patch:
    return _app(securityContext=fields)


def _delete_budget(api: k8s.ApiClient, namespace: str, name: str) -> None:
    k8s.PolicyV1Api(api).delete_namespaced_pod_disruption_budget(name, namespace)


def _second_budget(api: k8s.ApiClient, namespace: str, name: str) -> None:
    cluster.create_disruption_budget(api, namespace, f"{name}-extra", {"app": name})


def _delete_network_policy(api: k8s.ApiClient, namespace: str, name: str) -> None:
    k8s.NetworkingV1Api(api).delete_namespaced_network_policy(name, namespace)


def _one_of_two(api: k8s.ApiClient, namespace: str, name: str) -> None:
    cluster.set_deployment_available(api, namespace, name, 1, 2)


@dataclass(frozen=True)
class Fault:
    role: str
    check: str
    words: str
    create: dict[str, Any] = field(default_factory=dict)
    after: Patch | None = None
    absent: bool = False
    result: status.CheckStatus = S.FAIL
    also: dict[str, status.CheckStatus] = field(default_factory=dict)  # checks the same change breaks by nature

    def __str__(self) -> str:
        return f"{self.check}-{self.role}" + ("-absent" if self.absent else "")


API_GUARDS_UNKNOWN = dict.fromkeys(
    ("A.workloads.api_replicas", "A.workloads.api_spread", "A.workloads.api_pdb"), S.UNKNOWN
)
"""Without an api Deployment, its replicas, spread and budget cannot be judged."""


def _new_template_not_observed(api: k8s.ApiClient, namespace: str, name: str) -> None:
    """A spec change the Deployment controller has not caught up with: the old status still says available."""
    patch = {"spec": {"template": {"metadata": {"annotations": {"rollout": "2"}}}}}
    k8s.AppsV1Api(api).patch_namespaced_deployment(name, namespace, patch)


def _half_rolled_out(api: k8s.ApiClient, namespace: str, name: str) -> None:
    _new_template_not_observed(api, namespace, name)
    cluster.set_deployment_available(api, namespace, name, 2, 2)
    k8s.AppsV1Api(api).patch_namespaced_deployment_status(name, namespace, {"status": {"updatedReplicas": 1}})


FAULTS = [
    Fault(
        "worker", "A.workloads.probes", "payscope-worker/app: no livenessProbe and no readinessProbe", {"probes": False}
    ),
    Fault(
        "ingestion",
        "A.workloads.resources",
        "payscope-ingestion/app: missing requests.cpu, requests.memory, limits.memory",
        {"resources": False},
    ),
    Fault("api", "F.shutdown.pre_stop", "payscope-api/app: no lifecycle.preStop hook", {"pre_stop": False}),
    Fault(
        "worker",
        "F.shutdown.grace_period",
        "payscope-worker: terminationGracePeriodSeconds is 3 (< 10)",
        after=_pod(terminationGracePeriodSeconds=3),
    ),
    *(
        Fault(role, f"A.workloads.{role}_available", f"Deployment {NAMES[role]} has 0 of 2", {"available": False})
        for role in NAMES
    ),
    *(
        Fault(
            role,
            f"A.workloads.{role}_available",
            f"Deployment {NAMES[role]} (spec.workloads.{role}) does not exist",
            absent=True,
            also=API_GUARDS_UNKNOWN if role == "api" else {},
        )
        for role in NAMES
    ),
    Fault("api", "A.workloads.api_available", "Deployment payscope-api has 1 of 2", after=_one_of_two),
    Fault("ingestion", "A.workloads.ingestion_available", "is scaled to zero", {"replicas": 0}),
    # The api survives a node's loss and a drain.
    Fault(
        "api",
        "A.workloads.api_replicas",
        "Deployment payscope-api runs 1 replica(s): run at least 2",
        after=_patch({"spec": {"replicas": 1}}),
        also={"A.workloads.api_pdb": S.WARN},  # minAvailable 1 of 1 replica lets no pod go
    ),
    Fault(
        "api",
        "A.workloads.api_spread",
        "Nothing keeps the api's replicas off one node",
        after=_pod(topologySpreadConstraints=None),
    ),
    Fault("api", "A.workloads.api_pdb", "No PodDisruptionBudget selects the api's pods", after=_delete_budget),
    Fault("api", "A.workloads.api_pdb", "2 PodDisruptionBudgets select the api's pods", after=_second_budget),
    # Pod security, one change each, as a user would patch it.
    Fault(
        "worker",
        "G.workloads.run_as_non_root",
        "payscope-worker/app: runAsUser is 0 (root)",
        after=_pod(securityContext={"runAsUser": 0, "runAsNonRoot": None}),
    ),
    Fault(
        "api",
        "G.workloads.privileged",
        "payscope-api/app: privileged: true",
        after=_app_security(privileged=True, allowPrivilegeEscalation=None),
        also={"G.workloads.privilege_escalation": S.FAIL},  # a privileged container can always escalate
    ),
    Fault(
        "worker",
        "G.workloads.privilege_escalation",
        "payscope-worker/app: allowPrivilegeEscalation is not set (true)",
        after=_app_security(allowPrivilegeEscalation=None),
    ),
    Fault(
        "ingestion",
        "G.workloads.capabilities",
        "payscope-ingestion/app: adds NET_RAW",
        after=_app_security(capabilities={"add": ["NET_RAW"], "drop": ["ALL"]}),
    ),
    Fault(
        "api",
        "G.workloads.read_only_root_fs",
        "payscope-api/app: readOnlyRootFilesystem is not true",
        after=_app_security(readOnlyRootFilesystem=False),
    ),
    Fault(
        "worker",
        "G.workloads.seccomp",
        "payscope-worker/app: seccompProfile is Unconfined",
        after=_pod(securityContext={"seccompProfile": {"type": "Unconfined"}}),
    ),
    Fault("worker", "G.workloads.host_namespaces", "payscope-worker: hostPID: true", after=_pod(hostPID=True)),
    Fault(
        "ingestion",
        "G.workloads.host_path",
        "payscope-ingestion: hostPath volume(s) logs: /var/log",
        after=_pod(volumes=[{"name": "logs", "hostPath": {"path": "/var/log"}}]),
    ),
    Fault(
        "api",
        "G.workloads.host_ports",
        "payscope-api/app: hostPort 8080",
        after=_app(ports=[{"containerPort": 8080, "hostPort": 8080}]),
    ),
    Fault(
        "worker",
        "G.workloads.image_pinned",
        "payscope-worker/app: registry.invalid/payscope:latest uses :latest",
        after=_app(image="registry.invalid/payscope:latest"),
    ),
    Fault(
        "ingestion",
        "G.workloads.env_secrets",
        "payscope-ingestion/app: literal value in env JWT_SECRET",
        after=_app(env=[{"name": "JWT_SECRET", "value": "not-a-real-signing-key"}]),
    ),
    Fault(
        "api",
        "G.workloads.service_account_token",
        "payscope-api mount(s) a ServiceAccount token",
        after=_pod(automountServiceAccountToken=True),
        result=S.WARN,
    ),
    Fault(
        "worker",
        "G.workloads.network_policy",
        "No NetworkPolicy restricts ingress to payscope-worker:",
        after=_delete_network_policy,
    ),
    Fault("api", "A.workloads.api_available", "rollout has not been observed yet", {}, _new_template_not_observed),
    Fault("worker", "A.workloads.worker_available", "1 of 2 replicas run the current template", {}, _half_rolled_out),
]


@pytest.mark.parametrize("fault", FAULTS, ids=str)
async def test_a_fault_breaks_exactly_its_checks(kube_api: k8s.ApiClient, namespace: str, fault: Fault) -> None:
    for role, name in NAMES.items():
        if role != fault.role:
            cluster.create_deployment(kube_api, namespace, name)
        elif not fault.absent:
            cluster.create_deployment(kube_api, namespace, name, **fault.create)
    if fault.after is not None:
        fault.after(kube_api, namespace, NAMES[fault.role])
    results = await _audit(kube_api, namespace)
    failing = _not_passing(results)
    assert {i: s for i, (s, _) in failing.items()} == {fault.check: fault.result, **fault.also}
    assert fault.words in failing[fault.check][1]
    if fault.absent:  # the container and shutdown checks judged the two Deployments that exist
        judged = results["A.workloads.probes"].evidence or ""
        assert NAMES[fault.role] not in judged
        assert all(name in judged for role, name in NAMES.items() if role != fault.role)


# The acceptance case of issue 11 ----------------------------------------------------------------

NAIVE_PASSWORD = "hunter2-in-the-manifest"


def _naive_api(api: k8s.ApiClient, namespace: str) -> None:
    """What a new user writes: privileged, root, :latest, hostPath, hostNetwork, one replica, a password in env."""
    probe = k8s.V1Probe(http_get=k8s.V1HTTPGetAction(path="/healthz", port=8000))
    container = k8s.V1Container(
        name="api",
        image="payscope/api:latest",
        security_context=k8s.V1SecurityContext(privileged=True, run_as_user=0),
        env=[k8s.V1EnvVar(name="DB_PASSWORD", value=NAIVE_PASSWORD), k8s.V1EnvVar(name="PORT", value="8000")],
        volume_mounts=[k8s.V1VolumeMount(name="data", mount_path="/data")],
        liveness_probe=probe,
        readiness_probe=probe,
        resources=k8s.V1ResourceRequirements(requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": "512Mi"}),
    )
    labels = {"app": "payscope-api"}
    body = k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="payscope-api", labels=labels),
        spec=k8s.V1DeploymentSpec(
            replicas=1,
            selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(
                    containers=[container],
                    host_network=True,
                    volumes=[k8s.V1Volume(name="data", host_path=k8s.V1HostPathVolumeSource(path="/srv/payscope"))],
                ),
            ),
        ),
    )
    k8s.AppsV1Api(api).create_namespaced_deployment(namespace, body)


async def test_the_naive_deployment_of_issue_11_fails_each_corresponding_check(
    kube_api: k8s.ApiClient, namespace: str
) -> None:
    _naive_api(kube_api, namespace)  # no status: nothing runs it, as in the issue
    desired = spec.PayScopeSpec.model_validate({"workloads": {"api": {"name": "payscope-api"}}})
    results = await _audit(kube_api, namespace, desired)
    fails = {i for i, r in results.items() if r.status == S.FAIL}
    named_in_the_issue = {
        "G.workloads.privileged": "payscope-api/api: privileged: true",
        "G.workloads.run_as_non_root": "payscope-api/api: runAsUser is 0 (root)",
        "G.workloads.image_pinned": "payscope-api/api: payscope/api:latest uses :latest",
        "G.workloads.host_path": "payscope-api: hostPath volume(s) data: /srv/payscope",
        "G.workloads.host_namespaces": "payscope-api: hostNetwork: true",
        "A.workloads.api_replicas": "runs 1 replica(s)",
        "A.workloads.api_pdb": "No PodDisruptionBudget selects the api's pods",
        "G.workloads.network_policy": "No NetworkPolicy restricts ingress to payscope-api",
        "G.workloads.env_secrets": "payscope-api/api: literal value in env DB_PASSWORD",
    }
    for check_id, words in named_in_the_issue.items():
        assert results[check_id].status == S.FAIL, (check_id, results[check_id].message)
        assert words in results[check_id].message, results[check_id].message
    # What failed before this issue, and what else such a pod gets wrong.
    assert fails == set(named_in_the_issue) | {
        "A.workloads.api_available",
        "F.shutdown.pre_stop",
        "A.workloads.api_spread",
        "A.workloads.probe_paths",  # liveness and readiness on the same /healthz
        "G.workloads.privilege_escalation",
        "G.workloads.capabilities",
        "G.workloads.read_only_root_fs",
        "G.workloads.seccomp",
    }
    assert results["G.workloads.service_account_token"].status == S.WARN
    assert all(NAIVE_PASSWORD not in (r.message + (r.evidence or "")) for r in results.values())


# A list the operator may not read turns only its own check Unknown --------------------------------


def _identity_without_budgets(api: k8s.ApiClient, namespace: str, tmp: Path) -> k8s.ApiClient:
    """A ServiceAccount that may read Deployments and list NetworkPolicies, but not PodDisruptionBudgets."""
    core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="audit")))
    rules = [
        k8s.V1PolicyRule(api_groups=["apps"], resources=["deployments"], verbs=["get"]),
        k8s.V1PolicyRule(api_groups=["networking.k8s.io"], resources=["networkpolicies"], verbs=["list"]),
    ]
    rbac.create_namespaced_role(namespace, k8s.V1Role(metadata=k8s.V1ObjectMeta(name="audit"), rules=rules))
    rbac.create_namespaced_role_binding(
        namespace,
        k8s.V1RoleBinding(
            metadata=k8s.V1ObjectMeta(name="audit"),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="audit"),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name="audit", namespace=namespace)],
        ),
    )
    path = cluster.service_account_kubeconfig(api, namespace, "audit", tmp / "kubeconfig")
    return gateway.load_api_client(str(path))


async def test_budgets_the_operator_may_not_list_leave_every_other_check_judged(
    kube_api: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    for name in NAMES.values():
        cluster.create_deployment(kube_api, namespace, name)
    limited = _identity_without_budgets(kube_api, namespace, tmp_path)
    try:
        results = await _audit(limited, namespace)
    finally:
        limited.close()
    assert _not_passing(results) == {
        "A.workloads.api_pdb": (
            S.UNKNOWN,
            f"PodDisruptionBudgets could not be listed: the operator may not list PodDisruptionBudgets in {namespace}"
            " (HTTP 403)",
        )
    }
    assert results["A.workloads.api_pdb"].reason == status.CheckReason.INCONCLUSIVE
