"""The checks on PayScope's pods against the real kube-apiserver: pods listed by selector, logs, RBAC.

Each test creates PayScope-like Deployments and pods in its own namespace, with
the pods' status written by hand (the test control plane has no scheduler, no
controller-manager and no kubelet), and runs the catalog's pod checks through the
operator's own ``kube.gateway.Gateway``. Healthy pods pass, a crashing or unready
one fails exactly ``A.workloads.restarts``. Without a kubelet the API server
cannot serve ``pods/log``: these tests prove the reading path up to that point
(the request the operator makes, the API server's refusal, and the log checks
turning Unknown with its reason) and that the chart's rules grant it; judging
real log lines is tested in tests/unit/audit/test_pods.py.

What it must not do: touch objects outside its namespace.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from payscope_operator.api import spec, status
from payscope_operator.audit import catalog
from payscope_operator.audit.sources import kubernetes, pods
from tests.e2e import cluster
from tests.integration import kube_audit

pytestmark = pytest.mark.integration

S = status.CheckStatus
TODAY = datetime.date(2026, 11, 28)
NAMES = {"api": "payscope-api", "worker": "payscope-worker", "ingestion": "payscope-ingestion"}
SPEC = spec.PayScopeSpec.model_validate({"workloads": {role: {"name": name} for role, name in NAMES.items()}})
MINE = frozenset(c.id for c in catalog.CATALOG if c.source in (pods.PODS, kubernetes.WORKLOADS))
POD_CHECKS = ("A.workloads.restarts", "A.workloads.probe_paths", "F.logging.structured", "F.logging.level")


def _pod(api: k8s.ApiClient, namespace: str, deployment: str, n: int, *, ready: bool = True, restarts: int = 0) -> str:
    """A pod bound to a node, as a scheduler would have: no such node (nor kubelet) exists here."""
    return cluster.create_pod(api, namespace, deployment, n, ready=ready, restarts=restarts, node="node-1")


def _installation(api: k8s.ApiClient, namespace: str) -> None:
    for name in NAMES.values():
        cluster.create_deployment(api, namespace, name, node="node-1")  # its pod payscope-...-1, on node-1
    _pod(api, namespace, "someone-else", 1, ready=False, restarts=9)  # not selected by any Deployment


async def _audit(api: k8s.ApiClient, namespace: str) -> dict[str, status.CheckResult]:
    return await kube_audit.audit(api, namespace, SPEC, (c for c in catalog.CATALOG if c.id in MINE), TODAY)


async def test_ready_pods_pass_and_logs_without_a_kubelet_are_unknown_with_the_reason(
    kube_api: k8s.ApiClient, namespace: str
) -> None:
    _installation(kube_api, namespace)
    results = await _audit(kube_api, namespace)
    assert results["A.workloads.restarts"].status == S.PASS, results["A.workloads.restarts"].message
    assert "All 3 pods are ready" in results["A.workloads.restarts"].message
    assert results["A.workloads.probe_paths"].status == S.PASS, results["A.workloads.probe_paths"].message
    for check_id in ("F.logging.structured", "F.logging.level"):
        result = results[check_id]
        assert result.status == S.UNKNOWN, result.message
        # The API server has no node to fetch the log from: the operator's request got that far.
        assert "No pod's log could be read (3 tried; payscope-" in result.message
        assert "Kubernetes API failed to read the log of" in result.message
        assert "the pod's node is unknown to it" in result.message


@pytest.mark.parametrize(
    ("ready", "restarts", "words"),
    [(False, 0, "payscope-worker/payscope-worker-2: not ready"), (True, 6, "CrashLoopBackOff after 6 restarts")],
)
async def test_an_unready_or_crashing_pod_fails_restarts_only(
    kube_api: k8s.ApiClient, namespace: str, ready: bool, restarts: int, words: str
) -> None:
    _installation(kube_api, namespace)
    _pod(kube_api, namespace, NAMES["worker"], 2, ready=ready, restarts=restarts)
    results = await _audit(kube_api, namespace)
    assert results["A.workloads.restarts"].status == S.FAIL
    assert words in results["A.workloads.restarts"].message
    assert "someone-else" not in results["A.workloads.restarts"].message
    assert results["A.workloads.probe_paths"].status == S.PASS


async def test_readiness_probe_on_healthz_fails_probe_paths(kube_api: k8s.ApiClient, namespace: str) -> None:
    _installation(kube_api, namespace)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "app", "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8000}}}]
                }
            }
        }
    }
    k8s.AppsV1Api(kube_api).patch_namespaced_deployment(NAMES["api"], namespace, patch)
    results = await _audit(kube_api, namespace)
    assert results["A.workloads.probe_paths"].status == S.FAIL
    assert "readiness httpGet /healthz :8000" in results["A.workloads.probe_paths"].message


def _narrow(api: k8s.ApiClient, namespace: str, rules: list[k8s.V1PolicyRule], path: Path) -> k8s.ApiClient:
    """A client acting as a service account holding only ``rules`` in the namespace."""
    core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="narrow")))
    rbac.create_namespaced_role(namespace, k8s.V1Role(metadata=k8s.V1ObjectMeta(name="narrow"), rules=rules))
    rbac.create_namespaced_role_binding(
        namespace,
        k8s.V1RoleBinding(
            metadata=k8s.V1ObjectMeta(name="narrow"),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="narrow"),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name="narrow", namespace=namespace)],
        ),
    )
    return k8s_config.new_client_from_config(
        config_file=str(cluster.service_account_kubeconfig(api, namespace, "narrow", path))
    )


DEPLOYMENTS = k8s.V1PolicyRule(api_groups=["apps"], resources=["deployments"], verbs=["get"])
PODS = k8s.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])
LOGS = k8s.V1PolicyRule(api_groups=[""], resources=["pods/log"], verbs=["get"])


@pytest.mark.parametrize(
    ("rules", "check_id", "words"),
    [
        ([DEPLOYMENTS, PODS], "F.logging.structured", "the operator may not read the log of"),
        ([DEPLOYMENTS, LOGS], "A.workloads.restarts", "the operator may not list the pods of"),
    ],
    ids=["without-pods-log", "without-pods-list"],
)
async def test_a_missing_permission_turns_exactly_what_needs_it_unknown(
    kube_api: k8s.ApiClient, namespace: str, tmp_path: Path, rules: list[k8s.V1PolicyRule], check_id: str, words: str
) -> None:
    _installation(kube_api, namespace)
    narrow = _narrow(kube_api, namespace, rules, tmp_path / "kubeconfig")
    try:
        results = await _audit(narrow, namespace)
    finally:
        narrow.close()
    assert results[check_id].status == S.UNKNOWN
    assert words in results[check_id].message
    if check_id == "F.logging.structured":  # the pods were listed: their states are still judged
        assert results["A.workloads.restarts"].status == S.PASS


async def test_the_chart_grants_what_the_pod_checks_read(
    kube_api: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """With exactly the chart's rules, only the kubelet's absence stands between the operator and the logs."""
    rules = [
        k8s.V1PolicyRule(api_groups=r["apiGroups"], resources=r["resources"], verbs=r["verbs"])
        for doc in cluster.render_chart(namespace, f"watchNamespaces={{{namespace}}}")
        if doc.get("kind") == "Role"
        for r in doc["rules"]
    ]
    _installation(kube_api, namespace)
    narrow = _narrow(kube_api, namespace, rules, tmp_path / "kubeconfig")
    try:
        results = await _audit(narrow, namespace)
    finally:
        narrow.close()
    assert results["A.workloads.restarts"].status == S.PASS
    assert "may not" not in results["F.logging.structured"].message
    assert "Kubernetes API failed to read the log of" in results["F.logging.structured"].message
