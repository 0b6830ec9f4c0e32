"""The operator's identity for the fault tests: the chart's ServiceAccount and RBAC, and a kubeconfig for it.

Each call installs the CRD (idempotent), an operator namespace, the RBAC the chart
renders with the given values and a kubeconfig authenticated as its ServiceAccount
through a TokenRequest, so the operator runs with exactly the chart's permissions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s

from tests.conftest import unique
from tests.e2e import cluster


@dataclass(frozen=True)
class Identity:
    """The chart's ServiceAccount the operator runs as, and its kubeconfig."""

    username: str
    kubeconfig: Path
    namespace: str


def install_identity(api: k8s.ApiClient, folder: Path, *values: str) -> Identity:
    """The CRD, an operator namespace, the chart's RBAC rendered with ``values``, and a kubeconfig for its SA."""
    cluster.install_crd(api)
    ns = unique("payscope-system-")
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
    account = cluster.install_rbac(ns, *values)
    name = account["metadata"]["name"]
    kubeconfig = cluster.service_account_kubeconfig(api, ns, name, folder / f"kubeconfig-{name}")
    return Identity(f"system:serviceaccount:{ns}:{name}", kubeconfig, ns)
