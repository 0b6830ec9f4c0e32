"""Two replicas with kopf peering: the active one is SIGKILLed, the standby takes over.

Both replicas run as the chart renders them with ``peering.enabled`` (each with a
ServiceAccount of its own here, so the API server's audit log tells their writes
apart), in namespaced mode with a KopfPeering in the watched namespace. The active
replica has the higher priority; the standby pauses in its favour. After the
SIGKILL (no goodbye, its keep-alive simply stops), a spec change made at once must
be reconciled by the standby within 30 s, and the audit log must show that the two
never wrote the resource's status in the same period: every write of the first
replica comes before every write of the second.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from tests.e2e import cluster
from tests.e2e.faults import status
from tests.e2e.faults.conftest import Identity, install_identity
from tests.testenv import process

WITHIN = 30.0
PEERING = "payscope-faults"
CRDS = cluster.CHART / "charts" / "kopf-peering-crds" / "crds" / "kopf.dev_peerings.yaml"


@dataclass(frozen=True)
class Write:
    user: str
    at: str  # RFC 3339 with microseconds: sortable as text


def status_writes(namespace: str, name: str) -> list[Write]:
    """Every successful write of the resource's status, from the kube-apiserver's audit log, in order."""
    found = []
    for line in Path(os.environ["PAYSCOPE_KUBE_AUDIT_LOG"]).read_text().splitlines():
        entry = json.loads(line)
        ref = entry.get("objectRef", {})
        if (
            entry.get("stage") == "ResponseComplete"
            and entry.get("verb") == "patch"
            and ref.get("resource") == "payscopedeployments"
            and ref.get("subresource") == "status"
            and (ref.get("namespace"), ref.get("name")) == (namespace, name)
            and entry.get("responseStatus", {}).get("code") == 200
        ):
            found.append(Write(entry["user"]["username"], entry["requestReceivedTimestamp"]))
    return sorted(found, key=lambda w: w.at)


@pytest.fixture
def peers(fault_api: k8s.ApiClient, fault_namespace: str, tmp_path: Path) -> tuple[Identity, Identity]:
    cluster.apply_documents([d for d in yaml.safe_load_all(CRDS.read_text()) if d])
    cluster.wait_for(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in k8s.ApiextensionsV1Api(fault_api)
            .read_custom_resource_definition("kopfpeerings.kopf.dev")
            .status.conditions
            or []
        ),
        what="kopf's peering CRD",
        timeout=30,
    )
    k8s.CustomObjectsApi(fault_api).create_namespaced_custom_object(
        "kopf.dev", "v1", fault_namespace, "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}},
    )  # fmt: skip
    values = ("peering.enabled=true", f"peering.name={PEERING}", f"watchNamespaces={{{fault_namespace}}}")
    return (
        install_identity(fault_api, tmp_path, *values, "fullnameOverride=payscope-first"),
        install_identity(fault_api, tmp_path, *values, "fullnameOverride=payscope-second"),
    )


def _peers(api: k8s.ApiClient, namespace: str) -> dict[str, object]:
    found = k8s.CustomObjectsApi(api).get_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", PEERING)
    return dict(found.get("status") or {})


def _replica(who: Identity, namespace: str, log: Path, priority: int) -> cluster.OperatorProcess:
    args = ("--peering", PEERING, "--priority", str(priority))
    return cluster.start_operator(who.kubeconfig, log, namespaces=(namespace,), extra_args=args)


def test_the_standby_takes_over_after_a_sigkill(
    peers: tuple[Identity, Identity], fault_api: k8s.ApiClient, fault_namespace: str, tmp_path: Path
) -> None:
    first_id, second_id = peers
    ns = fault_namespace
    first = _replica(first_id, ns, tmp_path / "first.log", priority=200)
    second = _replica(second_id, ns, tmp_path / "second.log", priority=100)
    try:
        cluster.wait_for(lambda: len(_peers(fault_api, ns)) == 2, what="both replicas in the peering", timeout=30)
        assert "Resuming operations" not in second.log.read_text(), "the standby works while the first lives"
        for name in ("payscope-api", "payscope-api-v2"):
            cluster.create_deployment(fault_api, ns, name)
        spec = {"workloads": {"api": {"name": "payscope-api"}}, "audit": {"interval": "10s", "probeTimeout": "3s"}}
        cluster.create_psd(fault_api, ns, "psd", spec)
        status.wait_reflects(fault_api, ns, "psd", 1, timeout=30)

        os.kill(first.pid, signal.SIGKILL)
        clock = status.Clock()
        patched = cluster.patch_psd(fault_api, ns, "psd", {"spec": {"workloads": {"api": {"name": "payscope-api-v2"}}}})
        status.wait_reflects(fault_api, ns, "psd", patched["metadata"]["generation"], timeout=60)
        took = clock.seconds
        print(f"the standby reconciled a change made at the SIGKILL after {took:.1f}s")
        assert took < WITHIN
    finally:
        first.stop()
        second.stop()
    process.wait_until(lambda: not process.is_alive(first.pid), what="first replica gone", timeout=10)
    writes = status_writes(ns, "psd")
    by_first = [w.at for w in writes if w.user == first_id.username]
    by_second = [w.at for w in writes if w.user == second_id.username]
    assert by_first, "the active replica wrote the first status"
    assert by_second, "the standby wrote after the takeover"
    assert max(by_first) < min(by_second), "the two replicas wrote the status in the same period"
