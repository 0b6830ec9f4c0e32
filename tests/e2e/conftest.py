"""The operator under test: a real process, as the chart's ServiceAccount, on the test control plane."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests.conftest import unique
from tests.e2e import cluster


@dataclass
class RunningOperator:
    process: cluster.OperatorProcess
    username: str
    kubeconfig: Path
    namespace: str


@pytest.fixture(scope="session")
def operator_identity(kube_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    """Install the CRD and the chart's RBAC; return (username, kubeconfig, operator namespace)."""
    cluster.install_crd(kube_api)
    ns = unique("payscope-system-")
    k8s.CoreV1Api(kube_api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
    account = cluster.install_rbac(ns)
    name = account["metadata"]["name"]
    kubeconfig = cluster.service_account_kubeconfig(
        kube_api, ns, name, tmp_path_factory.mktemp("operator") / "kubeconfig"
    )
    return f"system:serviceaccount:{ns}:{name}", kubeconfig, ns


@pytest.fixture(scope="module")
def operator(
    operator_identity: tuple[str, Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningOperator]:
    username, kubeconfig, ns = operator_identity
    log = tmp_path_factory.mktemp("operator-log") / "operator.log"
    running = cluster.start_operator(kubeconfig, log)
    try:
        yield RunningOperator(running, username, kubeconfig, ns)
    finally:
        running.stop()
