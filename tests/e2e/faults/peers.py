"""Two operator replicas with kopf peering, for the HA test and the takeover benchmark.

Both replicas run as the chart renders them with ``peering.enabled``, in
namespaced mode (a KopfPeering in the watched namespace), each with a
ServiceAccount of its own so that the API server's audit log tells their writes
apart. ``take_over`` SIGKILLs the working replica (no goodbye: its keep-alive
just stops), changes the spec at once and times how long the standby takes to
reconcile that change.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client as k8s

from tests.e2e import cluster
from tests.e2e.faults import status
from tests.e2e.faults.identity import Identity, install_identity
from tests.testenv import process

PEERING = "payscope-faults"
CRDS = cluster.CHART / "charts" / "kopf-peering-crds" / "crds" / "kopf.dev_peerings.yaml"
SPEC = {"workloads": {"api": {"name": "payscope-api"}}, "audit": {"interval": "10s", "probeTimeout": "3s"}}
WORKLOADS = ("payscope-api", "payscope-api-v2")


@dataclass(frozen=True)
class Write:
    user: str
    at: str  # RFC 3339 with microseconds: sortable as text


def install(api: k8s.ApiClient, namespace: str, folder: Path) -> tuple[Identity, Identity]:
    """kopf's peering CRDs, a KopfPeering in ``namespace``, the Deployments, and two replicas' identities."""
    cluster.apply_documents([d for d in yaml.safe_load_all(CRDS.read_text()) if d])
    extensions = k8s.ApiextensionsV1Api(api)
    cluster.wait_for(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in extensions.read_custom_resource_definition("kopfpeerings.kopf.dev").status.conditions or []
        ),
        what="kopf's peering CRD",
        timeout=30,
    )
    k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}},
    )  # fmt: skip
    for name in WORKLOADS:
        cluster.create_deployment(api, namespace, name)
    values = ("peering.enabled=true", f"peering.name={PEERING}", f"watchNamespaces={{{namespace}}}")
    return (
        install_identity(api, folder, *values, "fullnameOverride=payscope-first"),
        install_identity(api, folder, *values, "fullnameOverride=payscope-second"),
    )


def replica(who: Identity, namespace: str, log: Path, priority: int) -> cluster.OperatorProcess:
    args = ("--peering", PEERING, "--priority", str(priority))
    return cluster.start_operator(who.kubeconfig, log, namespaces=(namespace,), extra_args=args)


def peers(api: k8s.ApiClient, namespace: str) -> dict[str, object]:
    found = k8s.CustomObjectsApi(api).get_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", PEERING)
    return {who: entry for who, entry in (found.get("status") or {}).items() if entry}


def pair(
    api: k8s.ApiClient, namespace: str, ids: tuple[Identity, Identity], folder: Path
) -> tuple[cluster.OperatorProcess, cluster.OperatorProcess]:
    """The working replica (priority 200), then the standby (100), once both are in the peering."""
    first = replica(ids[0], namespace, folder / "first.log", priority=200)
    second = replica(ids[1], namespace, folder / "second.log", priority=100)
    cluster.wait_for(lambda: len(peers(api, namespace)) >= 2, what="both replicas in the peering", timeout=30)
    return first, second


def take_over(api: k8s.ApiClient, namespace: str, name: str, active: cluster.OperatorProcess) -> float:
    """SIGKILL the working replica, change ``name``'s spec at once; seconds until the change is reconciled."""
    current = cluster.psd(api, namespace, name)["spec"]["workloads"]["api"]["name"]
    other = WORKLOADS[1] if current == WORKLOADS[0] else WORKLOADS[0]
    os.kill(active.pid, signal.SIGKILL)
    clock = status.Clock()
    patched = cluster.patch_psd(api, namespace, name, {"spec": {"workloads": {"api": {"name": other}}}})
    status.wait_reflects(api, namespace, name, patched["metadata"]["generation"], timeout=120)
    seconds = clock.seconds
    process.wait_until(lambda: not process.is_alive(active.pid), what="the killed replica gone", timeout=10)
    return seconds


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
