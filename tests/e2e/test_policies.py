"""managementPolicy ObserveOnly and deletionPolicy Delete, end to end on the real stores."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import neo4j
import pytest
from kubernetes import client as k8s

from tests.e2e import cluster
from tests.testenv import s3


@pytest.fixture
def own_operator(
    operator_identity: tuple[str, Path, str], namespace: str, tmp_path: Path
) -> Iterator[cluster.OperatorProcess]:
    _, kubeconfig, _ = operator_identity
    running = cluster.start_operator(kubeconfig, tmp_path / "op.log", namespaces=(namespace,))
    try:
        yield running
    finally:
        running.stop()


def _secrets(api: k8s.ApiClient, namespace: str, env: dict[str, str]) -> None:
    cluster.create_secret(
        api, namespace, "neo4j", {"username": env["PAYSCOPE_NEO4J_USER"], "password": env["PAYSCOPE_NEO4J_PASSWORD"]}
    )
    cluster.create_secret(
        api,
        namespace,
        "s3",
        {"accessKeyId": env["PAYSCOPE_S3_ACCESS_KEY"], "secretAccessKey": env["PAYSCOPE_S3_SECRET_KEY"]},
    )


def _spec(env: dict[str, str], label: str, buckets: list[str], **top: Any) -> dict[str, Any]:
    return {
        **top,
        "neo4j": {
            "connection": {"uri": env["PAYSCOPE_NEO4J_URI"], "secretRef": {"name": "neo4j"}},
            "constraints": [{"label": label, "properties": ["id"], "type": "Unique"}],
        },
        "objectStorage": {
            "endpoint": env["PAYSCOPE_S3_ENDPOINT"],
            "forcePathStyle": True,
            "credentialsSecretRef": {"name": "s3"},
            "buckets": [{"name": b, "versioning": True} for b in buckets],
        },
        "audit": {"interval": "3s", "probeTimeout": "2s"},
    }


def _constraints(env: dict[str, str], label: str) -> list[str]:
    auth = (env["PAYSCOPE_NEO4J_USER"], env["PAYSCOPE_NEO4J_PASSWORD"])
    with neo4j.GraphDatabase.driver(env["PAYSCOPE_NEO4J_URI"], auth=auth) as driver:
        records, _, _ = driver.execute_query(
            "SHOW CONSTRAINTS YIELD name, labelsOrTypes WHERE $label IN labelsOrTypes RETURN name", label=label
        )
    return [r["name"] for r in records]


def _buckets(env: dict[str, str]) -> set[str]:
    return {b["Name"] for b in s3.client(env).list_buckets().get("Buckets", [])}


def test_observe_only_previews_the_plan_and_changes_nothing(
    own_operator: cluster.OperatorProcess, kube_api: k8s.ApiClient, namespace: str, testenv: dict[str, str]
) -> None:
    label, bucket = f"T{uuid.uuid4().hex[:8]}Obs", f"payscope-obs-{uuid.uuid4().hex[:8]}"
    _secrets(kube_api, namespace, testenv)
    cluster.create_psd(kube_api, namespace, "observer", _spec(testenv, label, [bucket], managementPolicy="ObserveOnly"))

    def previewed() -> Any:
        obj = cluster.psd(kube_api, namespace, "observer")
        return (obj.get("status") or {}).get("plan") and obj

    obj = cluster.wait_for(previewed, what="status.plan", timeout=15)
    plan = obj["status"]["plan"]
    assert any(line.startswith("neo4j: create constraint") for line in plan), plan
    assert any(line.startswith(f"objectStorage: create Bucket {bucket}") for line in plan), plan
    assert cluster.conditions(obj)["Provisioned"]["reason"] == "ObserveOnly"
    assert _constraints(testenv, label) == []
    assert bucket not in _buckets(testenv)


def test_delete_policy_removes_managed_objects_but_never_data(
    own_operator: cluster.OperatorProcess, kube_api: k8s.ApiClient, namespace: str, testenv: dict[str, str]
) -> None:
    label = f"T{uuid.uuid4().hex[:8]}Del"
    empty, full = f"payscope-del-e-{uuid.uuid4().hex[:8]}", f"payscope-del-f-{uuid.uuid4().hex[:8]}"
    _secrets(kube_api, namespace, testenv)
    cluster.create_psd(kube_api, namespace, "doomed", _spec(testenv, label, [empty, full], deletionPolicy="Delete"))

    cluster.wait_condition(kube_api, namespace, "doomed", "Provisioned", timeout=20)
    assert _constraints(testenv, label)
    s3.client(testenv).put_object(Bucket=full, Key="ledger.csv", Body=b"bank-a,10\n")

    k8s.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
        "payscope.io", "v1alpha1", namespace, "payscopedeployments", "doomed"
    )

    def gone() -> bool:
        items = k8s.CustomObjectsApi(kube_api).list_namespaced_custom_object(
            "payscope.io", "v1alpha1", namespace, "payscopedeployments"
        )["items"]
        return not items

    cluster.wait_for(gone, what="the finalizer released", timeout=30)
    assert _constraints(testenv, label) == []
    remaining = _buckets(testenv)
    assert empty not in remaining
    assert full in remaining  # data is never deleted
    events = k8s.CoreV1Api(kube_api).list_namespaced_event(namespace).items
    kept = [e for e in events if e.reason == "ObjectKept"]
    assert kept
    assert kept[0].type == "Warning"
    assert full in (kept[0].message or "")
