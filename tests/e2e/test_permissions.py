"""Permission denied is Stalled with its reason, and recovers once the permission is granted."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client as k8s

from tests.e2e import cluster

RULES_WITHOUT_SECRETS = [
    k8s.V1PolicyRule(api_groups=["payscope.io"], resources=["payscopedeployments"], verbs=["list", "watch", "patch"]),
    k8s.V1PolicyRule(api_groups=["payscope.io"], resources=["payscopedeployments/status"], verbs=["get", "patch"]),
    k8s.V1PolicyRule(api_groups=["apps"], resources=["deployments"], verbs=["get"]),
    k8s.V1PolicyRule(api_groups=[""], resources=["events"], verbs=["create"]),
]


def test_missing_secret_permission_stalls_then_recovers_when_granted(
    kube_api: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    cluster.install_crd(kube_api)
    cluster.grant(kube_api, namespace, "narrow", "narrow-operator", RULES_WITHOUT_SECRETS)
    kubeconfig = cluster.service_account_kubeconfig(kube_api, namespace, "narrow", tmp_path / "kubeconfig")
    cluster.create_secret(kube_api, namespace, "redis", {"url": "redis://127.0.0.1:1/0"})
    running = cluster.start_operator(kubeconfig, tmp_path / "op.log", namespaces=(namespace,))
    try:
        spec = {
            "redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}},
            "audit": {"interval": "2s", "probeTimeout": "1s"},
        }
        cluster.create_psd(kube_api, namespace, "narrow", spec)

        conds = cluster.wait_condition(kube_api, namespace, "narrow", "Stalled", timeout=15)
        assert conds["Stalled"]["reason"] == "PermissionDenied"
        assert "Secret" in conds["Stalled"]["message"]
        assert conds["Ready"]["status"] == "False"

        granted = [*RULES_WITHOUT_SECRETS, k8s.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["get"])]
        role = k8s.V1Role(metadata=k8s.V1ObjectMeta(name="narrow-operator"), rules=granted)
        k8s.RbacAuthorizationV1Api(kube_api).replace_namespaced_role("narrow-operator", namespace, role)
        cluster.wait_condition(kube_api, namespace, "narrow", "Stalled", "False", timeout=15)
    finally:
        running.stop()
