"""Deletion: Retain adds no finalizer and never waits on the operator; Delete adds one.

No other operator runs during this module (the ``operator`` fixture is per module),
so deleting with the operator stopped truly means no operator at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.e2e import cluster


def _spec() -> dict[str, Any]:
    return {"workloads": {"api": {"name": "payscope-api"}}, "audit": {"interval": "2s", "probeTimeout": "1s"}}


def test_retain_deletion_completes_with_the_operator_stopped(
    operator_identity: tuple[str, Path, str], kube_api: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    _, kubeconfig, _ = operator_identity
    running = cluster.start_operator(kubeconfig, tmp_path / "op.log", namespaces=(namespace,))
    try:
        cluster.create_psd(kube_api, namespace, "retained", _spec())
        cluster.wait_for(
            lambda: (cluster.psd(kube_api, namespace, "retained").get("status") or {}).get("conditions"),
            what="first status",
            timeout=10,
        )
        cluster.create_psd(kube_api, namespace, "deleted", {**_spec(), "deletionPolicy": "Delete"})
        cluster.wait_for(
            lambda: (
                "payscope.io/finalizer"
                in (cluster.psd(kube_api, namespace, "deleted")["metadata"].get("finalizers") or [])
            ),
            what="finalizer on a Delete resource",
            timeout=10,
        )
        assert not cluster.psd(kube_api, namespace, "retained")["metadata"].get("finalizers")
    finally:
        running.stop()
    custom = k8s.CustomObjectsApi(kube_api)
    custom.delete_namespaced_custom_object("payscope.io", "v1alpha1", namespace, "payscopedeployments", "retained")
    remaining = custom.list_namespaced_custom_object("payscope.io", "v1alpha1", namespace, "payscopedeployments")
    assert "retained" not in [i["metadata"]["name"] for i in remaining["items"]]
    cluster.remove_resources(kube_api, namespace, grace=0)  # "deleted" keeps its finalizer: no operator runs
