"""Permission denied is Stalled with its reason, and recovers once the permission is granted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.e2e import cluster

RULES_WITHOUT_SECRETS = [
    k8s.V1PolicyRule(api_groups=["payscope.io"], resources=["payscopedeployments"], verbs=["list", "watch", "patch"]),
    k8s.V1PolicyRule(api_groups=["payscope.io"], resources=["payscopedeployments/status"], verbs=["get", "patch"]),
    k8s.V1PolicyRule(api_groups=["apps"], resources=["deployments"], verbs=["get"]),
    k8s.V1PolicyRule(api_groups=[""], resources=["events"], verbs=["create"]),
]


def _role(rules: list[k8s.V1PolicyRule]) -> k8s.V1Role:
    return k8s.V1Role(metadata=k8s.V1ObjectMeta(name="narrow-operator"), rules=rules)


def test_missing_secret_permission_stalls_then_recovers_when_granted(
    kube_api: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    cluster.install_crd(kube_api)
    core, rbac = k8s.CoreV1Api(kube_api), k8s.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="narrow")))
    rbac.create_namespaced_role(namespace, _role(RULES_WITHOUT_SECRETS))
    rbac.create_namespaced_role_binding(
        namespace,
        k8s.V1RoleBinding(
            metadata=k8s.V1ObjectMeta(name="narrow-operator"),
            role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="narrow-operator"),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name="narrow", namespace=namespace)],
        ),
    )
    kubeconfig = cluster.service_account_kubeconfig(kube_api, namespace, "narrow", tmp_path / "kubeconfig")
    cluster.create_secret(kube_api, namespace, "redis", {"url": "redis://127.0.0.1:1/0"})
    running = cluster.start_operator(kubeconfig, tmp_path / "op.log", namespaces=(namespace,))
    try:
        spec = {
            "redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}},
            "audit": {"interval": "2s", "probeTimeout": "1s"},
        }
        cluster.create_psd(kube_api, namespace, "narrow", spec)

        def stalled() -> Any:
            conds = cluster.conditions(cluster.psd(kube_api, namespace, "narrow"))
            return conds.get("Stalled", {}).get("status") == "True" and conds

        conds = cluster.wait_for(stalled, what="Stalled", timeout=15)
        assert conds["Stalled"]["reason"] == "PermissionDenied"
        assert "Secret" in conds["Stalled"]["message"]
        assert conds["Ready"]["status"] == "False"

        granted = [*RULES_WITHOUT_SECRETS, k8s.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["get"])]
        rbac.replace_namespaced_role("narrow-operator", namespace, _role(granted))
        cluster.wait_for(
            lambda: cluster.conditions(cluster.psd(kube_api, namespace, "narrow"))["Stalled"]["status"] == "False",
            what="recovery once granted",
            timeout=15,
        )
    finally:
        running.stop()
